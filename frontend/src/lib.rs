//! The Spindle web app: a Yew single-page app compiled to `wasm32-unknown-unknown` and served
//! by `spindle graphql` at `/`, next to the GraphQL API it reads on the same origin.
//!
//! The pure modules (the traces list's URL state, waterfall geometry, conversations, chart
//! arithmetic, formats and the API's objects) build on every target, so the workspace's host
//! tests run them; the app itself (`api`, `account`, `app`, `pages`, `components`) exists only
//! on wasm32. It is not a second API: every number shown comes from the GraphQL API.

pub mod chart;
pub mod conversation;
pub mod datetime;
pub mod format;
pub mod model;
pub mod query;
pub mod waterfall;

#[cfg(target_arch = "wasm32")]
pub mod account;
#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod app;
#[cfg(target_arch = "wasm32")]
pub mod components;
#[cfg(target_arch = "wasm32")]
pub mod pages;

/// Mounts the app on the page's `<body>`; wasm-bindgen's `init()` calls it.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    yew::Renderer::<app::App>::new().render();
}
