//! Per-project price overrides, read from the Redis projection behind a bounded TTL cache.
//!
//! A project's overrides are a price table of the embedded table's shape; the processor
//! consults them before the embedded table. A change is visible to the processors once their
//! cached entry expires (`ttl`), so spans processed from then on carry the new prices.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use spindle_schemas::prices::PriceTable;

use crate::cache::TtlCache;

/// A project's overrides as last read: `None` when it has none.
type Entry = Option<Arc<PriceTable>>;

/// Reads projects' price overrides.
#[derive(Clone)]
pub struct PriceOverrides {
    redis: ConnectionManager,
    cache: TtlCache<Entry>,
}

impl PriceOverrides {
    pub fn new(redis: ConnectionManager, ttl: Duration, capacity: usize) -> Self {
        Self {
            redis,
            cache: TtlCache::new(ttl, capacity),
        }
    }

    /// The project's overrides, if it has any. An error means Redis could not be read: the
    /// caller must not price without knowing.
    pub async fn for_project(&self, project_id: &str) -> Result<Entry, redis::RedisError> {
        if let Some(entry) = self.cache.get(project_id) {
            return Ok(entry);
        }
        let json: Option<String> = self
            .redis
            .clone()
            .hget(crate::keys::price_overrides(project_id), "table")
            .await?;
        let entry = json.and_then(|json| match PriceTable::from_json(&json) {
            Ok(table) => Some(Arc::new(table)),
            Err(e) => {
                // The projector only stores tables that parse; a newer writer's table this
                // build cannot read is reported, and the embedded prices apply.
                tracing::error!(project = %project_id, error = %e, "stored price overrides do not parse; using the embedded table");
                metrics::counter!("spindle_price_overrides_invalid_total").increment(1);
                None
            }
        });
        self.cache.insert(project_id, entry.clone());
        Ok(entry)
    }
}
