//! Events on `platform.events`, the platform's system of record, as JSON.
//!
//! Commands become events with the aggregate's expected next version; the projector applies
//! them to Redis in order and skips versions it has already applied, so replaying the topic
//! rebuilds the same state.

use serde::{Deserialize, Serialize};

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyScope {
    /// Send spans to the gateway.
    Ingest,
    /// Query the project's data.
    Read,
}

impl ApiKeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyScope::Ingest => "ingest",
            ApiKeyScope::Read => "read",
        }
    }

    /// Parses `ingest` or `read`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(ApiKeyScope::Ingest),
            "read" => Some(ApiKeyScope::Read),
            _ => None,
        }
    }
}

/// One event, with the envelope every event shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformEvent {
    /// Unique per event (a UUIDv7); consumers deduplicate on it.
    pub event_id: String,
    pub occurred_at_unix_ms: i64,
    /// Who caused it (`cli`, a user id, …).
    pub actor: String,
    /// The aggregate it changes, e.g. `api_key:<key_id>` or `project:<project_id>`.
    pub aggregate_id: String,
    /// 1 for the aggregate's first event, then +1 per event.
    pub aggregate_version: u64,
    pub workspace_id: String,
    pub project_id: String,
    #[serde(flatten)]
    pub body: PlatformEventBody,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PlatformEventBody {
    /// A key was issued. Only its SHA-256 is ever stored.
    ApiKeyCreated {
        key_id: String,
        /// The visible part, `spk_<key_id>`.
        prefix: String,
        /// Lowercase hex SHA-256 of the whole key.
        hash: String,
        scopes: Vec<ApiKeyScope>,
        name: String,
    },
    /// A key stopped working.
    ApiKeyRevoked { key_id: String },
    /// A project's ingest limits changed.
    EntitlementsSet {
        /// Sustained spans per second a project may send (per gateway instance).
        spans_per_second: u64,
        /// Spans per calendar month (UTC); 0 means unlimited.
        monthly_span_quota: u64,
    },
    /// A project's own model prices changed: a price table of the same shape as
    /// `schemas/data/prices.json`, consulted before the embedded table (`None` removes them).
    /// Spans processed from then on are priced with it; `spindle replay` reprices old ones.
    PriceOverridesSet { table: Option<serde_json::Value> },
}

impl PlatformEvent {
    /// The event's type name, as written in the JSON `type` field.
    pub fn kind(&self) -> &'static str {
        match self.body {
            PlatformEventBody::ApiKeyCreated { .. } => "api_key_created",
            PlatformEventBody::ApiKeyRevoked { .. } => "api_key_revoked",
            PlatformEventBody::EntitlementsSet { .. } => "entitlements_set",
            PlatformEventBody::PriceOverridesSet { .. } => "price_overrides_set",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_flat_json_with_a_type() {
        let event = PlatformEvent {
            event_id: "e1".into(),
            occurred_at_unix_ms: 1,
            actor: "cli".into(),
            aggregate_id: "api_key:abc".into(),
            aggregate_version: 2,
            workspace_id: "w".into(),
            project_id: "p".into(),
            body: PlatformEventBody::ApiKeyRevoked {
                key_id: "abc".into(),
            },
        };
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], "api_key_revoked");
        assert_eq!(json["key_id"], "abc");
        assert_eq!(event.kind(), "api_key_revoked");
        let back: PlatformEvent = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, event);
    }
}
