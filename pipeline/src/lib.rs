//! The ingest and stream-processing pipeline of Spindle.
//!
//! This crate will hold the OTLP gateway (OTLP in → S3 archive + Kafka `spans.raw`), the
//! processor (`spans.raw` → LLM-aware `spans.enriched`), the ClickHouse sink and replay from the
//! S3 archive. It holds nothing yet: the foundation (issue 2) only lays out the workspace; the
//! gateway issue fills it. It is not a client library and does not serve queries.
