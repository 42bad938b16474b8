//! The AI assistant of Spindle: provider clients, the tool-calling loop, tools over the user's
//! traces and the sandbox, sessions and the SSE stream.
//!
//! Empty until the assistant issue lands; the foundation only reserves its place.
