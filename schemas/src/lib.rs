//! The vocabulary of Spindle: names and types every other crate agrees on.
//!
//! `schemas` does no IO and has no async runtime, so it also compiles to
//! `wasm32-unknown-unknown` for the web app. Today it holds the Kafka topic names; the gateway
//! and processing issues add the canonical span types, the Kafka payloads (prost) and the model
//! price table.

pub mod topics;
