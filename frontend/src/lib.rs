//! The Yew single-page web app of Spindle, compiled to wasm and served by `spindle graphql`.
//!
//! Empty until the web app issue lands; the foundation only reserves its place.
