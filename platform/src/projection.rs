//! The projector: applies `platform.events` to Redis, in order, exactly once in effect.
//!
//! Each aggregate's hash records the last applied `version`; an event at or below it is a
//! redelivery and is skipped, so a crash between applying and committing the offset, or a
//! rebuild from the start of the topic, leaves the same state. Writes of one event are one
//! atomic `MULTI`.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use spindle_schemas::platform::{PlatformEvent, PlatformEventBody};
use spindle_schemas::prices::PriceTable;

use crate::keys;

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Already applied (same or older version).
    Skipped,
}

/// Why the projector stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Applies one event to Redis unless it was applied before.
pub async fn apply(
    redis: &mut ConnectionManager,
    event: &PlatformEvent,
) -> Result<Applied, redis::RedisError> {
    let target = match &event.body {
        PlatformEventBody::ApiKeyCreated { hash, .. } => keys::api_key(hash),
        PlatformEventBody::ApiKeyRevoked { key_id } => {
            let hash: Option<String> = redis.get(keys::api_key_id(key_id)).await?;
            match hash {
                Some(hash) => keys::api_key(&hash),
                None => {
                    tracing::warn!(%key_id, "revocation of a key the projection never saw");
                    return Ok(Applied::Skipped);
                }
            }
        }
        PlatformEventBody::EntitlementsSet { .. } => keys::entitlements(&event.project_id),
        PlatformEventBody::PriceOverridesSet { table } => {
            // Commands validate before appending; an event from elsewhere that does not parse
            // must not reach the processors, which would have to price without it.
            if let Some(table) = table
                && let Err(e) = PriceTable::from_json(&table.to_string())
            {
                tracing::error!(project = %event.project_id, error = %e, "invalid price overrides skipped");
                return Ok(Applied::Skipped);
            }
            keys::price_overrides(&event.project_id)
        }
    };
    let version: Option<u64> = redis.hget(&target, "version").await?;
    if version.is_some_and(|v| v >= event.aggregate_version) {
        return Ok(Applied::Skipped);
    }
    let mut pipe = redis::pipe();
    pipe.atomic();
    let version = event.aggregate_version.to_string();
    match &event.body {
        PlatformEventBody::ApiKeyCreated {
            key_id,
            prefix,
            hash,
            scopes,
            name,
        } => {
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            let fields: [(&str, &str); 8] = [
                ("key_id", key_id),
                ("prefix", prefix),
                ("workspace_id", &event.workspace_id),
                ("project_id", &event.project_id),
                ("scopes", &scopes.join(",")),
                ("name", name),
                ("revoked", "0"),
                ("version", &version),
            ];
            pipe.hset_multiple(&target, &fields)
                .set(keys::api_key_id(key_id), hash);
        }
        PlatformEventBody::ApiKeyRevoked { .. } => {
            pipe.hset_multiple(&target, &[("revoked", "1"), ("version", &version)]);
        }
        PlatformEventBody::EntitlementsSet {
            spans_per_second,
            monthly_span_quota,
        } => {
            pipe.hset_multiple(
                &target,
                &[
                    ("spans_per_second", spans_per_second.to_string()),
                    ("monthly_span_quota", monthly_span_quota.to_string()),
                    ("version", version.clone()),
                ],
            );
        }
        PlatformEventBody::PriceOverridesSet { table } => match table {
            Some(table) => {
                pipe.hset_multiple(
                    &target,
                    &[("table", table.to_string()), ("version", version.clone())],
                );
            }
            None => {
                pipe.hdel(&target, "table")
                    .hset(&target, "version", &version);
            }
        },
    }
    pipe.query_async::<()>(redis).await?;
    Ok(Applied::Applied)
}

/// Reads the aggregate's current version from the projection (0 when it does not exist).
pub async fn current_version(
    redis: &mut ConnectionManager,
    redis_key: &str,
) -> Result<u64, redis::RedisError> {
    let version: Option<u64> = redis.hget(redis_key, "version").await?;
    Ok(version.unwrap_or(0))
}

/// Reads a projected hash.
pub async fn fields(
    redis: &mut ConnectionManager,
    redis_key: &str,
) -> Result<HashMap<String, String>, redis::RedisError> {
    redis.hgetall(redis_key).await
}

/// Consumes `platform.events` (already subscribed) until `shutdown` resolves, applying each
/// event and committing its offset after Redis accepted it. A malformed event is logged and
/// skipped: it can never become valid by waiting.
pub async fn run(
    consumer: StreamConsumer,
    mut redis: ConnectionManager,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ProjectionError> {
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            () = &mut shutdown => return Ok(()),
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                // Broker outages are transient: librdkafka reconnects by itself.
                tracing::warn!(error = %e, "cannot read `platform.events`; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let payload = message.payload().unwrap_or_default();
        match serde_json::from_slice::<PlatformEvent>(payload) {
            Ok(event) => {
                let outcome = loop {
                    match apply(&mut redis, &event).await {
                        Ok(outcome) => break outcome,
                        Err(e) => {
                            tracing::warn!(error = %e, "redis unavailable; retrying the event");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                };
                metrics::counter!("spindle_projector_events_total", "type" => event.kind(), "outcome" => match outcome {
                    Applied::Applied => "applied",
                    Applied::Skipped => "skipped",
                })
                .increment(1);
                tracing::debug!(event = event.kind(), aggregate = %event.aggregate_id, ?outcome, "projected");
            }
            Err(e) => {
                metrics::counter!("spindle_projector_events_total", "type" => "malformed", "outcome" => "skipped").increment(1);
                tracing::error!(partition = message.partition(), offset = message.offset(), error = %e, "malformed platform event skipped");
            }
        }
        if let Err(e) = consumer.commit_message(&message, CommitMode::Async) {
            // Applying again after a restart is a no-op, so a lost commit only costs time.
            tracing::warn!(error = %e, "offset commit failed");
        }
    }
}
