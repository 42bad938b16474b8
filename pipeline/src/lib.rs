//! The ingest and stream-processing pipeline of Spindle.
//!
//! Today: the OTLP gateway (OTLP/HTTP and OTLP/gRPC in → S3 archive + Kafka `spans.raw`) and
//! the processor's pure core (OTLP span → canonical enriched span, with tokens and cost). The
//! processor's Kafka loop, the ClickHouse sink and replay from the S3 archive arrive with the
//! processing issue. This crate does not serve queries.

pub mod gateway;
pub mod processor;
