//! The query service of Spindle: GraphQL over the ClickHouse read models, with live traces fed
//! from `spans.enriched` and `traces.events`, served by axum (`spindle graphql`).
//!
//! - [`schema`]: the async-graphql schema: queries (traces, trace, span, sessions, users,
//!   metrics, usage, filter fields), subscriptions (`liveTraces`, `traceUpdates`).
//! - [`store`]: every ClickHouse read, with bound parameters only.
//! - [`live`]: one reader per topic per instance (no consumer group), fanned out in process.
//! - [`auth`]: the principal of a request (a read-scoped API key), checked on every resolver.
//! - [`server`]: `/graphql` (POST, GET), `/graphql/ws`, `/graphiql`, and the web app at `/`.
//!
//! It never writes to ClickHouse or Kafka.

use std::net::SocketAddr;

use serde::Deserialize;

pub mod auth;
pub mod cursor;
pub mod error;
pub mod json;
pub mod live;
pub mod schema;
pub mod server;
pub mod store;

/// Settings of `spindle graphql` (section `[graphql]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlConfig {
    /// The API and, later, the web app.
    pub listen: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub health_listen: SocketAddr,
    /// The database holding the read models (keep equal to `clickhouse.database`).
    pub database: String,
    /// Page size when `first` is not given, and the largest `first` accepted.
    pub default_page_size: usize,
    pub max_page_size: usize,
    /// Spans of one trace fetched at most (the tree is built from them; pages are cut from it).
    pub max_trace_spans: usize,
    /// Query depth and complexity limits.
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Longest a query may run.
    pub request_timeout_ms: u64,
    /// Subscriptions one WebSocket connection may hold at once.
    pub max_subscriptions_per_connection: usize,
    /// How often a subscription with nothing to say sends a heartbeat.
    pub heartbeat_ms: u64,
    /// How long a resolved API key is trusted before Redis is asked again.
    pub auth_cache_ttl_ms: u64,
    pub auth_cache_capacity: usize,
    /// The built web app (index.html, the wasm and its JS glue), served at `/`; empty means
    /// `<data dir>/web`, where `spindle web` and `spindle up` build it.
    pub web_dir: std::path::PathBuf,
    /// The live fan-out.
    pub live: live::LiveConfig,
}
