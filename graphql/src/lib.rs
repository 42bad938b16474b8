//! The query service of Spindle: ClickHouse read models, live fan-out of `spans.enriched` and
//! `traces.events`, the async-graphql schema and the axum server that also serves the web app.
//!
//! Empty until the GraphQL issue lands; the foundation only reserves its place in the workspace.
//! It never writes to ClickHouse or Kafka.
