//! The vocabulary of Spindle: names and types every other crate agrees on.
//!
//! `schemas` does no IO and has no async runtime, so it also compiles to
//! `wasm32-unknown-unknown` for the web app (`spindle test` checks it). It holds the Kafka topic
//! names, the `spans.raw` payload and S3 archive format (prost, wrapping OTLP's own messages),
//! the `platform.events` events, the canonical enriched span on `spans.enriched` and the model
//! price table with its integer cost arithmetic.

pub mod canonical;
pub mod platform;
pub mod prices;
pub mod raw;
pub mod topics;
pub mod trace_events;
