//! `trace.persisted`: the sink's answer to `trace.completed`.
//!
//! For every `trace.completed` on `traces.events`, the sink checks how many of the trace's
//! spans are live in `spans` and, once all `span_count` of them are, emits `trace.persisted`
//! (same key), after recording it in `trace_lifecycle` so later subscribers can be told at once.
//! Offsets are committed up to the oldest event still waiting, so a restart
//! re-reads exactly the unanswered ones; answering twice is harmless.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use spindle_schemas::topics::TRACES_EVENTS;
use spindle_schemas::trace_events::{TRACE_EVENT_VERSION, TraceEvent, TraceEventKind};
use tokio_util::sync::CancellationToken;

use crate::produce::Producer;

/// How often waiting traces are checked, and when one is given up on.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub check_every: Duration,
    pub give_up_after: Duration,
}

/// Consumes `traces.events` (subscribed, auto-commit off) until `shutdown` is cancelled.
pub async fn run(
    consumer: Arc<StreamConsumer>,
    producer: Arc<Producer>,
    clickhouse: clickhouse::Client,
    timing: Timing,
    retention_days: u16,
    shutdown: CancellationToken,
) -> Result<(), rdkafka::error::KafkaError> {
    // Completed events waiting for their spans, by (partition, offset).
    let mut waiting: BTreeMap<(i32, i64), TraceEvent> = BTreeMap::new();
    // The next offset to commit per partition when nothing before it waits.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let Timing {
        check_every,
        give_up_after,
    } = timing;
    // When each waiting event was first read.
    let mut since: BTreeMap<(i32, i64), tokio::time::Instant> = BTreeMap::new();
    let mut last_check = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        let received = tokio::select! {
            () = shutdown.cancelled() => break,
            received = tokio::time::timeout(check_every, consumer.recv()) => received,
        };
        if let Ok(received) = received {
            match received {
                Ok(message) => {
                    next.insert(message.partition(), message.offset() + 1);
                    if let Ok(event) = TraceEvent::decode(message.payload().unwrap_or_default())
                        && event.kind() == TraceEventKind::Completed
                    {
                        let slot = (message.partition(), message.offset());
                        waiting.insert(slot, event);
                        since.insert(slot, tokio::time::Instant::now());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read `traces.events`; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if last_check.elapsed() < check_every || waiting.is_empty() {
            commit(&consumer, &waiting, &next)?;
            continue;
        }
        last_check = tokio::time::Instant::now();
        match persisted(&clickhouse, &waiting).await {
            Ok(done) => {
                let ready: Vec<((i32, i64), &TraceEvent)> = done
                    .iter()
                    .filter_map(|slot| waiting.get(slot).map(|event| (*slot, event)))
                    .collect();
                let answered = answer(&producer, &clickhouse, retention_days, &ready).await;
                for slot in answered {
                    waiting.remove(&slot);
                    since.remove(&slot);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot count stored spans; retrying"),
        }
        for slot in overdue(&since, give_up_after, tokio::time::Instant::now()) {
            if let Some(event) = waiting.remove(&slot) {
                metrics::counter!("spindle_sink_traces_given_up_total").increment(1);
                tracing::warn!(
                    trace = %event.key(),
                    spans = event.span_count,
                    "trace completed but not all its spans reached ClickHouse (dead-lettered or \
                     past retention?); no `trace.persisted` will be emitted for it"
                );
            }
            since.remove(&slot);
        }
        commit(&consumer, &waiting, &next)?;
    }
    Ok(())
}

/// The waiting slots first read more than `limit` before `now`.
fn overdue(
    since: &BTreeMap<(i32, i64), tokio::time::Instant>,
    limit: Duration,
    now: tokio::time::Instant,
) -> Vec<(i32, i64)> {
    since
        .iter()
        .filter(|(_, at)| now.duration_since(**at) > limit)
        .map(|(slot, _)| *slot)
        .collect()
}

/// The waiting events whose spans are all live in ClickHouse.
async fn persisted(
    clickhouse: &clickhouse::Client,
    waiting: &BTreeMap<(i32, i64), TraceEvent>,
) -> Result<Vec<(i32, i64)>, clickhouse::error::Error> {
    let mut by_project: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for event in waiting.values() {
        by_project
            .entry(&event.project_id)
            .or_default()
            .insert(&event.trace_id);
    }
    let mut stored: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (project, traces) in by_project {
        let traces: Vec<&str> = traces.into_iter().collect();
        let counts: Vec<(String, u64)> = clickhouse
            .query(
                "SELECT trace_id, count() FROM spans FINAL \
                 WHERE project_id = ? AND trace_id IN ? GROUP BY trace_id",
            )
            .bind(project)
            .bind(traces)
            .fetch_all()
            .await?;
        for (trace, count) in counts {
            stored.insert((project.to_owned(), trace), count);
        }
    }
    Ok(waiting
        .iter()
        .filter(|(_, e)| {
            stored
                .get(&(e.project_id.clone(), e.trace_id.clone()))
                .is_some_and(|count| *count >= e.span_count)
        })
        .map(|(slot, _)| *slot)
        .collect())
}

/// A row of `trace_lifecycle`.
#[derive(Debug, clickhouse::Row, serde::Serialize)]
struct LifecycleRow<'a> {
    project_id: &'a str,
    trace_id: &'a str,
    span_count: u64,
    /// Unix milliseconds.
    persisted_at: i64,
    retention_days: u16,
}

/// Records the traces as persisted in `trace_lifecycle` (one insert), then emits their
/// `trace.persisted` events (produced together); returns the slots fully answered. A slot not
/// returned is answered again on the next check.
async fn answer(
    producer: &Producer,
    clickhouse: &clickhouse::Client,
    retention_days: u16,
    ready: &[((i32, i64), &TraceEvent)],
) -> Vec<(i32, i64)> {
    if ready.is_empty() {
        return Vec::new();
    }
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    let recorded = async {
        let mut insert = clickhouse
            .insert::<LifecycleRow<'_>>("trace_lifecycle")
            .await?;
        for (_, completed) in ready {
            insert
                .write(&LifecycleRow {
                    project_id: &completed.project_id,
                    trace_id: &completed.trace_id,
                    span_count: completed.span_count,
                    persisted_at: now_ms,
                    retention_days,
                })
                .await?;
        }
        insert.end().await
    };
    if let Err(e) = recorded.await {
        tracing::warn!(error = %e, traces = ready.len(), "cannot record traces as persisted; retrying");
        return Vec::new();
    }
    let at = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0);
    let sends = ready.iter().map(|(slot, completed)| async move {
        let event = TraceEvent {
            version: TRACE_EVENT_VERSION,
            kind: TraceEventKind::Persisted as i32,
            at_unix_nano: at,
            ..(*completed).clone()
        };
        let key = event.key();
        let payload = event.encode_to_vec();
        match producer
            .send(
                TRACES_EVENTS.name,
                key.as_bytes(),
                &payload,
                None,
                Duration::from_secs(10),
            )
            .await
        {
            Ok(()) => Some(*slot),
            Err(e) => {
                tracing::warn!(error = %e, trace = %key, "cannot emit `trace.persisted`; retrying");
                None
            }
        }
    });
    let answered: Vec<(i32, i64)> = futures::future::join_all(sends)
        .await
        .into_iter()
        .flatten()
        .collect();
    metrics::counter!("spindle_sink_traces_persisted_total").increment(answered.len() as u64);
    answered
}

/// Commits, per partition, the oldest waiting offset (or everything read when none waits).
fn commit(
    consumer: &StreamConsumer,
    waiting: &BTreeMap<(i32, i64), TraceEvent>,
    next: &BTreeMap<i32, i64>,
) -> Result<(), rdkafka::error::KafkaError> {
    if next.is_empty() {
        return Ok(());
    }
    let mut list = TopicPartitionList::new();
    for (partition, read) in next {
        let oldest = waiting
            .range((*partition, i64::MIN)..=(*partition, i64::MAX))
            .next()
            .map(|((_, offset), _)| *offset);
        list.add_partition_offset(
            TRACES_EVENTS.name,
            *partition,
            Offset::Offset(oldest.unwrap_or(*read)),
        )?;
    }
    consumer.commit(&list, CommitMode::Async)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_events_waiting_past_the_limit_are_given_up() {
        let now = tokio::time::Instant::now();
        let since = BTreeMap::from([
            ((0, 1), now - Duration::from_secs(700)),
            ((0, 2), now - Duration::from_secs(10)),
            ((1, 5), now - Duration::from_secs(601)),
        ]);
        assert_eq!(
            overdue(&since, Duration::from_secs(600), now),
            vec![(0, 1), (1, 5)]
        );
    }
}
