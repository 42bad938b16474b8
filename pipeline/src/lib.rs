//! The ingest and stream-processing pipeline of Spindle.
//!
//! Today: the OTLP gateway (OTLP/HTTP and OTLP/gRPC in → S3 archive + Kafka `spans.raw`). The
//! processor (`spans.raw` → LLM-aware `spans.enriched`), the ClickHouse sink and replay from
//! the S3 archive arrive with the processing issue. This crate does not serve queries.

pub mod gateway;
