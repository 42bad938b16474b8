//! The ingest and stream-processing pipeline of Spindle.
//!
//! The OTLP gateway (OTLP/HTTP and OTLP/gRPC in → S3 archive + Kafka `spans.raw`), the
//! processor (`spans.raw` → canonical enriched spans with tokens and cost, and trace
//! completion) and the sink (enriched spans → ClickHouse `spans` rows under the sign protocol).
//! This crate does not serve queries.
//!
//! `replay` re-feeds archived requests from S3 into `spans.raw`, split into records exactly as
//! the gateway split them, so a new price table or processor version rebuilds the store.

pub mod gateway;
pub mod group;
mod offsets;
pub mod processor;
pub mod produce;
pub mod replay;
pub mod sink;
