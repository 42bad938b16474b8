//! The sink's consumer loop: `spans.enriched` → ClickHouse, exactly once in effect.
//!
//! Records are batched by rows, bytes and time; a batch is written with [`write`] under the
//! sign protocol, with an insert deduplication token derived from the batch's topic,
//! partitions and offset ranges, and only then are its offsets committed. A crash between the
//! insert and the commit replays the same records: the token (same batch boundaries) or the
//! key lookup (other boundaries) makes the second write a no-op. A retryable failure retries
//! the same batch with backoff; a batch ClickHouse refuses is split span by span, and the spans
//! that can never be stored go to `spans.dlq` with the reason while the partition keeps going.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use serde::Deserialize;
use spindle_schemas::canonical::{ENRICHED_SPAN_VERSION, EnrichedSpan};
use spindle_schemas::topics::SPANS_DLQ;
use tokio_util::sync::CancellationToken;

use super::store::{StoreSettings, write};
use crate::produce::Producer;

/// Settings of `spindle sink` (section `[sink]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub health_listen: SocketAddr,
    /// A batch is written once it holds this many spans…
    pub batch_max_rows: usize,
    /// …or this many bytes of records…
    pub batch_max_bytes: usize,
    /// …or once its first record waited this long.
    pub batch_max_wait_ms: u64,
    /// Longest wait between retries of a failing batch.
    pub retry_max_backoff_ms: u64,
    /// How often completed traces are checked for being fully stored.
    pub persisted_check_ms: u64,
    /// A completed trace whose spans are still not all stored after this long (some were
    /// dead-lettered, or expired on insert) is given up on, so it cannot hold back the rest.
    pub persisted_give_up_ms: u64,
    /// How rows are written.
    pub store: StoreSettings,
}

/// Why the sink stopped.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Consumes `spans.enriched` (subscribed, auto-commit off) until `shutdown` is cancelled.
pub async fn run(
    config: SinkConfig,
    consumer: Arc<StreamConsumer>,
    dlq: Arc<Producer>,
    clickhouse: clickhouse::Client,
    shutdown: CancellationToken,
) -> Result<(), SinkError> {
    while !shutdown.is_cancelled() {
        let batch = next_batch(&consumer, &config, &shutdown).await;
        if batch.is_empty() {
            continue;
        }
        if !store_batch(&config, &batch, &dlq, &clickhouse, &shutdown).await {
            // Shutting down mid-retry: nothing committed, the next owner redoes the batch.
            return Ok(());
        }
        consumer.commit(&crate::offsets::next_offsets(&batch)?, CommitMode::Async)?;
    }
    Ok(())
}

/// Writes one batch; false only when shutdown interrupted the retries.
async fn store_batch(
    config: &SinkConfig,
    batch: &[OwnedMessage],
    dlq: &Producer,
    clickhouse: &clickhouse::Client,
    shutdown: &CancellationToken,
) -> bool {
    let mut spans = Vec::with_capacity(batch.len());
    let mut sources = Vec::with_capacity(batch.len());
    for message in batch {
        match decode(message.payload().unwrap_or_default()) {
            Ok(span) => {
                spans.push(span);
                sources.push(message);
            }
            Err(reason) => {
                if !dead_letter(dlq, message, &reason, shutdown).await {
                    return false;
                }
            }
        }
    }
    if spans.is_empty() {
        return true;
    }
    let token = dedup_token(batch);
    let mut backoff = Duration::from_millis(100);
    loop {
        match write(clickhouse, &spans, &config.store, &token).await {
            Ok(outcome) => {
                metrics::counter!("spindle_sink_spans_total", "outcome" => "new")
                    .increment(outcome.new as u64);
                metrics::counter!("spindle_sink_spans_total", "outcome" => "replaced")
                    .increment(outcome.replaced as u64);
                metrics::counter!("spindle_sink_spans_total", "outcome" => "unchanged")
                    .increment(outcome.unchanged as u64);
                for rejected in outcome.rejected {
                    let reason = format!("cannot become a `spans` row: {}", rejected.error);
                    if !dead_letter(dlq, sources[rejected.index], &reason, shutdown).await {
                        return false;
                    }
                }
                return true;
            }
            Err(e) if e.is_permanent() => {
                tracing::warn!(error = %e, spans = spans.len(), "batch refused; writing span by span");
                return store_one_by_one(
                    config, &spans, &sources, &token, dlq, clickhouse, shutdown,
                )
                .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "ClickHouse write failed; retrying the batch");
                metrics::counter!("spindle_sink_retries_total").increment(1);
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_millis(config.retry_max_backoff_ms));
            }
        }
    }
}

/// Finds the spans ClickHouse refuses by writing each alone; those go to the DLQ.
async fn store_one_by_one(
    config: &SinkConfig,
    spans: &[EnrichedSpan],
    sources: &[&OwnedMessage],
    token: &str,
    dlq: &Producer,
    clickhouse: &clickhouse::Client,
    shutdown: &CancellationToken,
) -> bool {
    for (i, span) in spans.iter().enumerate() {
        let one = std::slice::from_ref(span);
        let token = format!("{token}/{i}");
        let mut backoff = Duration::from_millis(100);
        loop {
            match write(clickhouse, one, &config.store, &token).await {
                Ok(outcome) => {
                    for rejected in outcome.rejected {
                        let reason = format!("cannot become a `spans` row: {}", rejected.error);
                        if !dead_letter(dlq, sources[i], &reason, shutdown).await {
                            return false;
                        }
                    }
                    break;
                }
                Err(e) if e.is_permanent() => {
                    if !dead_letter(
                        dlq,
                        sources[i],
                        &format!("ClickHouse refused the span: {e}"),
                        shutdown,
                    )
                    .await
                    {
                        return false;
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ClickHouse write failed; retrying the span");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(config.retry_max_backoff_ms));
                }
            }
        }
    }
    true
}

fn decode(payload: &[u8]) -> Result<EnrichedSpan, String> {
    let span = EnrichedSpan::decode(payload).map_err(|e| format!("not an EnrichedSpan: {e}"))?;
    if span.version != ENRICHED_SPAN_VERSION {
        return Err(format!(
            "EnrichedSpan version {} is unknown to this sink (knows {ENRICHED_SPAN_VERSION})",
            span.version
        ));
    }
    Ok(span)
}

/// Produces a record to `spans.dlq` with the reason, retrying until the broker takes it.
async fn dead_letter(
    producer: &Producer,
    message: &OwnedMessage,
    reason: &str,
    shutdown: &CancellationToken,
) -> bool {
    tracing::error!(partition = message.partition(), offset = message.offset(), %reason, "record to `spans.dlq`");
    metrics::counter!("spindle_sink_dead_letters_total").increment(1);
    let source = format!(
        "{}/{}/{}",
        message.topic(),
        message.partition(),
        message.offset()
    );
    loop {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "spindle.reason",
                value: Some(reason),
            })
            .insert(Header {
                key: "spindle.source",
                value: Some(source.as_str()),
            });
        let sent = producer
            .send(
                SPANS_DLQ.name,
                message.key().unwrap_or_default(),
                message.payload().unwrap_or_default(),
                Some(&headers),
                Duration::from_secs(10),
            )
            .await;
        match sent {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "cannot write to `spans.dlq`; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

async fn next_batch(
    consumer: &StreamConsumer,
    config: &SinkConfig,
    shutdown: &CancellationToken,
) -> Vec<OwnedMessage> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut deadline = None;
    while batch.len() < config.batch_max_rows && bytes < config.batch_max_bytes {
        let wait = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        let received = tokio::select! {
            () = shutdown.cancelled() => break,
            received = tokio::time::timeout_at(wait, consumer.recv()) => received,
        };
        match received {
            Err(_) if batch.is_empty() => continue,
            Err(_) => break,
            Ok(Ok(message)) => {
                bytes += message.payload_len();
                batch.push(message.detach());
                deadline.get_or_insert_with(|| {
                    tokio::time::Instant::now() + Duration::from_millis(config.batch_max_wait_ms)
                });
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read `spans.enriched`; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !batch.is_empty() {
                    break;
                }
            }
        }
    }
    batch
}

/// `spans.enriched:<partition>:<first>-<last>,…`: the same records always give the same token.
fn dedup_token(batch: &[OwnedMessage]) -> String {
    let mut ranges: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
    for m in batch {
        let range = ranges
            .entry((m.topic().to_owned(), m.partition()))
            .or_insert((m.offset(), m.offset()));
        range.0 = range.0.min(m.offset());
        range.1 = range.1.max(m.offset());
    }
    ranges
        .iter()
        .map(|((topic, partition), (first, last))| format!("{topic}:{partition}:{first}-{last}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::{Offset, Timestamp};

    fn message(partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(
            None,
            None,
            "spans.enriched".into(),
            Timestamp::NotAvailable,
            partition,
            offset,
            None,
        )
    }

    #[test]
    fn tokens_and_commits_cover_each_partition_range() {
        let batch = [message(1, 7), message(0, 3), message(1, 9), message(0, 4)];
        assert_eq!(
            dedup_token(&batch),
            "spans.enriched:0:3-4,spans.enriched:1:7-9"
        );
        let offsets = crate::offsets::next_offsets(&batch).expect("offsets");
        let got: Vec<(i32, Offset)> = offsets
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(got, [(0, Offset::Offset(5)), (1, Offset::Offset(10))]);
    }

    #[test]
    fn undecodable_and_unknown_versions_are_named() {
        assert!(
            decode(b"\xff\xff")
                .expect_err("garbage")
                .starts_with("not an EnrichedSpan")
        );
        let future = EnrichedSpan {
            version: ENRICHED_SPAN_VERSION + 1,
            ..Default::default()
        };
        assert!(
            decode(&future.encode_to_vec())
                .expect_err("future")
                .contains("is unknown to this sink")
        );
    }
}
