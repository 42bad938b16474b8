//! Platform services of Spindle, event-sourced on `platform.events` with a Redis projection.
//!
//! Today: API keys (issue, hash, resolve with a bounded cache, revoke), per-project ingest
//! entitlements and usage counters, per-project price overrides, appending events to `platform.events`, and the projector
//! that applies them to Redis. Identity (OAuth), workspaces, members, plans and Stripe billing
//! arrive with the platform issue. This crate never reads ClickHouse.

pub mod api_keys;
pub mod cache;
pub mod entitlements;
pub mod events;
pub mod price_overrides;
pub mod projection;

/// Redis key names of the projection, in one place.
pub mod keys {
    /// An API key by the SHA-256 of the whole key: a hash of its fields.
    pub fn api_key(hash: &str) -> String {
        format!("spindle:api_key:{hash}")
    }

    /// An API key's hash by its id, for revocation.
    pub fn api_key_id(key_id: &str) -> String {
        format!("spindle:api_key_id:{key_id}")
    }

    /// A project's entitlements: a hash.
    pub fn entitlements(project_id: &str) -> String {
        format!("spindle:entitlements:{project_id}")
    }

    /// A project's price overrides: a hash with the table's JSON (`table`, absent when
    /// removed) and `version`.
    pub fn price_overrides(project_id: &str) -> String {
        format!("spindle:price_overrides:{project_id}")
    }

    /// Spans a project sent in a calendar month (`yyyymm`, UTC): a counter.
    pub fn monthly_usage(project_id: &str, yyyymm: u32) -> String {
        format!("spindle:usage:{project_id}:{yyyymm}")
    }
}
