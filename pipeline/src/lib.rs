//! The ingest and stream-processing pipeline of Spindle.
//!
//! Today: the OTLP gateway (OTLP/HTTP and OTLP/gRPC in → S3 archive + Kafka `spans.raw`),
//! the processor's pure core (OTLP span → canonical enriched span, with tokens and cost) and
//! the sink's ClickHouse write side (canonical span → `spans` rows under the sign protocol).
//! The processor's Kafka loop and the sink's consumer loop arrive with the processing issue. This crate does not serve queries.
//!
//! `replay` re-feeds archived requests from S3 into `spans.raw`, split into records exactly as
//! the gateway split them, so a new price table or processor version rebuilds the store.

pub mod gateway;
pub mod group;
mod offsets;
pub mod processor;
pub mod replay;
pub mod sink;
