//! The ingest and stream-processing pipeline of Spindle.
//!
//! Today: the OTLP gateway (OTLP/HTTP and OTLP/gRPC in → S3 archive + Kafka `spans.raw`),
//! the processor's pure core (OTLP span → canonical enriched span, with tokens and cost) and
//! the sink's ClickHouse write side (canonical span → `spans` rows under the sign protocol).
//! The processor's Kafka loop, the sink's consumer loop and replay from the S3 archive arrive
//! with the processing issue. This crate does not serve queries.

pub mod gateway;
pub mod processor;
pub mod sink;
