//! Appending commands to `platform.events`, the system of record.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use spindle_schemas::platform::{PlatformEvent, PlatformEventBody};
use spindle_schemas::topics::PLATFORM_EVENTS;

/// Why an event was not appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("cannot append `{kind}` to `platform.events`: {reason}")]
    Kafka { kind: &'static str, reason: String },
}

/// Builds an event envelope for the aggregate's next version.
pub fn event(
    actor: &str,
    aggregate_id: String,
    aggregate_version: u64,
    workspace_id: &str,
    project_id: &str,
    body: PlatformEventBody,
) -> PlatformEvent {
    PlatformEvent {
        event_id: uuid::Uuid::now_v7().to_string(),
        occurred_at_unix_ms: i64::try_from(
            time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000,
        )
        .unwrap_or(i64::MAX),
        actor: actor.to_owned(),
        aggregate_id,
        aggregate_version,
        workspace_id: workspace_id.to_owned(),
        project_id: project_id.to_owned(),
        body,
    }
}

/// Appends one event, keyed by its aggregate so an aggregate's events stay in order. Returns
/// once the broker acknowledged it (the producer must use `acks=all`).
pub async fn append(producer: &FutureProducer, event: &PlatformEvent) -> Result<(), AppendError> {
    let payload = serde_json::to_vec(event).map_err(|e| AppendError::Kafka {
        kind: event.kind(),
        reason: e.to_string(),
    })?;
    producer
        .send(
            FutureRecord::to(PLATFORM_EVENTS.name)
                .key(&event.aggregate_id)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| AppendError::Kafka {
            kind: event.kind(),
            reason: e.to_string(),
        })
}
