//! The processor's consumer loop: `spans.raw` → [`normalize`](super::normalize) →
//! `spans.enriched`, at least once, with poison records sent to `spans.dlq`.
//!
//! Records are handled in batches (what has arrived, up to `batch_max_records`): every
//! enriched record of the batch is produced with `acks=all`, and only when all of them are
//! acknowledged are the batch's offsets committed. If a produce fails, the consumer seeks back
//! to the batch's first offsets and does it again; the copies this may leave on
//! `spans.enriched` are absorbed by the sink, which writes each span once.
//!
//! Before committing, the batch's traces are recorded in the open-trace table in Redis
//! ([`completion`](super::completion)); every `completion_check_ms` the traces of the owned
//! partitions that are due get a `trace.completed` event on `traces.events`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;
use prost::Message as _;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use redis::aio::ConnectionManager;
use serde::Deserialize;
use spindle_platform::price_overrides::PriceOverrides;
use spindle_schemas::prices::PriceTable;
use spindle_schemas::raw::{RAW_SPAN_BATCH_VERSION, RawSpanBatch, trace_key};
use spindle_schemas::topics::{SPANS_DLQ, SPANS_ENRICHED, SPANS_RAW, TRACES_EVENTS};
use spindle_schemas::trace_events::{TRACE_EVENT_VERSION, TraceEvent, TraceEventKind};
use tokio_util::sync::CancellationToken;

use super::completion::{self, OpenTrace};
use super::normalize::{NormalizeConfig, normalize_with};
use crate::produce::{Acks, Producer, Record};

/// Settings of `spindle processor` (section `[processor]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessorConfig {
    /// `/healthz`, `/readyz`, `/metrics`.
    pub health_listen: SocketAddr,
    /// Cap on each message payload kept in the row (the full payload stays in S3).
    pub max_message_bytes: usize,
    /// Records handled per batch at most.
    pub batch_max_records: usize,
    /// How long a batch waits for more records after its first (0: only what has arrived).
    pub batch_max_wait_ms: u64,
    /// How long a produce may take before the batch is retried.
    pub produce_timeout_ms: u64,
    /// A trace whose root span was seen completes after this long without a new span…
    pub trace_quiet_ms: u64,
    /// …and any trace completes once it has been open this long.
    pub trace_max_age_ms: u64,
    /// How often open traces are checked for completion.
    pub completion_check_ms: u64,
    /// How long a project's price overrides are cached: a change applies to spans processed
    /// after at most this long.
    pub price_overrides_ttl_ms: u64,
}

/// The prices a processor applies: the table of this build, then each project's overrides.
pub struct Prices<'a> {
    pub embedded: &'a PriceTable,
    pub overrides: PriceOverrides,
}

/// Why the processor stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// What one record became.
enum Outcome {
    /// Enriched records, and for trace completion each trace's key, span ids and root flag.
    Enriched(Vec<(String, Vec<u8>)>, Vec<(String, Vec<String>, bool)>),
    Poison(String),
}

/// Decodes one `spans.raw` payload, or says why it never can be.
fn decode(payload: &[u8]) -> Result<RawSpanBatch, String> {
    let batch = RawSpanBatch::decode(payload).map_err(|e| format!("not a RawSpanBatch: {e}"))?;
    if batch.version != RAW_SPAN_BATCH_VERSION {
        return Err(format!(
            "RawSpanBatch version {} is unknown to this processor (knows {RAW_SPAN_BATCH_VERSION})",
            batch.version
        ));
    }
    Ok(batch)
}

/// Turns one decoded batch into enriched records. A batch holds the spans of one or more
/// traces (those of a request's scope that share a partition), each trace's spans together.
fn enrich(
    batch: &RawSpanBatch,
    prices: &PriceTable,
    overrides: Option<&PriceTable>,
    config: &NormalizeConfig,
) -> Outcome {
    let mut traces: Vec<(&[u8], Vec<String>, bool)> = Vec::new();
    for span in &batch.spans {
        let at = match traces.iter().rposition(|t| t.0 == span.trace_id.as_slice()) {
            Some(at) => at,
            None => {
                traces.push((&span.trace_id, Vec::new(), false));
                traces.len() - 1
            }
        };
        let trace = &mut traces[at];
        trace.1.push(hex::encode(&span.span_id));
        trace.2 |= span.parent_span_id.is_empty();
    }
    Outcome::Enriched(
        batch
            .spans
            .iter()
            .map(|span| {
                let enriched = normalize_with(batch, span, prices, overrides, config);
                (enriched.key(), enriched.encode_to_vec())
            })
            .collect(),
        traces
            .into_iter()
            .map(|(trace_id, span_ids, root)| {
                (trace_key(&batch.project_id, trace_id), span_ids, root)
            })
            .collect(),
    )
}

/// Consumes `spans.raw` (the consumer must be subscribed, with auto-commit off) until
/// `shutdown` is cancelled.
pub async fn run(
    config: ProcessorConfig,
    consumer: Arc<StreamConsumer>,
    producer: Producer,
    mut redis: ConnectionManager,
    prices: Prices<'_>,
    shutdown: CancellationToken,
) -> Result<(), ProcessorError> {
    let normalize = NormalizeConfig {
        max_message_bytes: config.max_message_bytes,
    };
    let timeout = Duration::from_millis(config.produce_timeout_ms);
    let mut last_check = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        if last_check.elapsed() >= Duration::from_millis(config.completion_check_ms) {
            last_check = tokio::time::Instant::now();
            if let Err(e) = complete_due(&config, &consumer, &producer, &mut redis, timeout).await {
                tracing::warn!(error = %e, "trace completion check failed; retrying on the next tick");
            }
        }
        let next_check = last_check + Duration::from_millis(config.completion_check_ms);
        let batch = next_batch(&consumer, &config, next_check, &shutdown).await;
        if batch.is_empty() {
            continue;
        }
        loop {
            let produced = produce_batch(&batch, &producer, &prices, &normalize, timeout).await;
            let tracked = match produced {
                Ok(seen) => track(&mut redis, &seen).await,
                Err(e) => Err(e),
            };
            match tracked {
                Ok(()) => break,
                Err(reason) => {
                    tracing::warn!(%reason, records = batch.len(), "batch not acknowledged; retrying it");
                    metrics::counter!("spindle_processor_retries_total").increment(1);
                    if shutdown.is_cancelled() {
                        // Not committed: the next owner of these partitions redoes the batch.
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        consumer.commit(&crate::offsets::next_offsets(&batch)?, CommitMode::Async)?;
    }
    Ok(())
}

/// The next batch: waits (until `idle_until` at most) for a first record, then takes every
/// record that has already arrived, and any arriving within `batch_max_wait_ms` of the first,
/// up to `batch_max_records`. With the default wait of 0 a record is never held back for others:
/// under load the batches grow by themselves, since records queue while the last batch is being
/// produced.
async fn next_batch(
    consumer: &StreamConsumer,
    config: &ProcessorConfig,
    idle_until: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> Vec<OwnedMessage> {
    let mut batch = Vec::new();
    let mut deadline = idle_until;
    while batch.len() < config.batch_max_records {
        let received = match consumer.recv().now_or_never() {
            Some(received) => received,
            None if batch.is_empty() || tokio::time::Instant::now() < deadline => {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    received = tokio::time::timeout_at(deadline, consumer.recv()) => match received {
                        Ok(received) => received,
                        Err(_) => break,
                    },
                }
            }
            None => break,
        };
        match received {
            Ok(message) => {
                if batch.is_empty() {
                    deadline = tokio::time::Instant::now()
                        + Duration::from_millis(config.batch_max_wait_ms);
                }
                batch.push(message.detach());
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read `spans.raw`; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                break;
            }
        }
    }
    batch
}

/// A record of a batch, built before any is enqueued.
struct Outgoing {
    topic: &'static str,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
}

/// Spans seen per trace in a batch: partition, record key, spans, root seen.
type Seen = Vec<(i32, String, Vec<String>, bool)>;

async fn produce_batch(
    batch: &[OwnedMessage],
    producer: &Producer,
    prices: &Prices<'_>,
    normalize: &NormalizeConfig,
    timeout: Duration,
) -> Result<Seen, String> {
    let decoded: Vec<Result<RawSpanBatch, String>> = batch
        .iter()
        .map(|message| decode(message.payload().unwrap_or_default()))
        .collect();
    // Each project's overrides once per batch; not knowing them is a retry, never a guess.
    let mut overrides: HashMap<&str, Option<Arc<PriceTable>>> = HashMap::new();
    for raw in decoded.iter().flatten() {
        if !overrides.contains_key(raw.project_id.as_str()) {
            let table = prices
                .overrides
                .for_project(&raw.project_id)
                .await
                .map_err(|e| {
                    format!(
                        "cannot read the price overrides of `{}`: {e}",
                        raw.project_id
                    )
                })?;
            overrides.insert(&raw.project_id, table);
        }
    }
    let mut seen = Vec::new();
    // Every record, enqueued together once all are built: a 5 ms linger then sends the batch in
    // one produce request per partition.
    let mut out = Vec::new();
    let mut spans = 0_u64;
    let mut poison = 0_u64;
    for (message, decoded) in batch.iter().zip(&decoded) {
        let outcome = match decoded {
            Ok(raw) => {
                let project = overrides
                    .get(raw.project_id.as_str())
                    .and_then(Option::as_deref);
                enrich(raw, prices.embedded, project, normalize)
            }
            Err(reason) => Outcome::Poison(reason.clone()),
        };
        match outcome {
            Outcome::Enriched(records, traces) => {
                spans += records.len() as u64;
                for (key, span_ids, root_seen) in traces {
                    seen.push((message.partition(), key, span_ids, root_seen));
                }
                for (key, payload) in records {
                    out.push(Outgoing {
                        topic: SPANS_ENRICHED.name,
                        key: key.into_bytes(),
                        payload,
                        headers: None,
                    });
                }
            }
            Outcome::Poison(reason) => {
                poison += 1;
                tracing::error!(partition = message.partition(), offset = message.offset(), %reason, "poison record to `spans.dlq`");
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "spindle.reason",
                        value: Some(reason.as_str()),
                    })
                    .insert(Header {
                        key: "spindle.source",
                        value: Some(&format!(
                            "{}/{}/{}",
                            SPANS_RAW.name,
                            message.partition(),
                            message.offset()
                        )),
                    });
                out.push(Outgoing {
                    topic: SPANS_DLQ.name,
                    key: message.key().unwrap_or_default().to_vec(),
                    payload: message.payload().unwrap_or_default().to_vec(),
                    headers: Some(headers),
                });
            }
        }
    }
    // Every record of the batch counts down one `Acks`: one wake when the last is acknowledged.
    let acks = Acks::new();
    let deadline = tokio::time::Instant::now() + timeout;
    for outgoing in &out {
        let record = Record {
            topic: outgoing.topic,
            key: &outgoing.key,
            payload: &outgoing.payload,
            headers: outgoing.headers.as_ref(),
        };
        enqueue(producer, &record, &acks, deadline).await?;
    }
    tokio::time::timeout_at(deadline, acks.settled())
        .await
        .map_err(|_| format!("no acknowledgement within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("a record of the batch was not acknowledged: {e}"))?;
    metrics::counter!("spindle_processor_spans_total").increment(spans);
    metrics::counter!("spindle_processor_dead_letters_total").increment(poison);
    Ok(seen)
}

/// Records the batch's traces in the open-trace table (before the offsets are committed, so a
/// restart never forgets a trace whose spans it will not read again).
async fn track(redis: &mut ConnectionManager, seen: &Seen) -> Result<(), String> {
    if seen.is_empty() {
        return Ok(());
    }
    let now = now_nanos();
    let mut merged: BTreeMap<(i32, String), OpenTrace> = BTreeMap::new();
    let mut lookup = redis::pipe();
    for (partition, key, _, _) in seen {
        lookup.hget(completion::redis_key(*partition), key);
    }
    let stored: Vec<Option<String>> = lookup
        .query_async(redis)
        .await
        .map_err(|e| format!("redis: {e}"))?;
    for ((partition, key, span_ids, root), stored) in seen.iter().zip(stored) {
        let entry = merged.entry((*partition, key.clone())).or_insert_with(|| {
            stored
                .as_deref()
                .and_then(OpenTrace::decode)
                .unwrap_or(OpenTrace {
                    first_seen_ns: now,
                    last_seen_ns: now,
                    root_seen: false,
                    spans: 0,
                })
        });
        *entry = entry.merge(now, span_ids.len() as u64, *root);
    }
    let mut write = redis::pipe();
    write.atomic();
    // Span ids go to a set: a redelivered batch adds nothing, so the count stays exact.
    for (_, key, span_ids, _) in seen {
        if !span_ids.is_empty() {
            write.sadd(completion::spans_key(key), span_ids);
        }
    }
    for ((partition, key), open) in &merged {
        write.hset(completion::redis_key(*partition), key, open.encode());
    }
    write
        .query_async::<()>(redis)
        .await
        .map_err(|e| format!("redis: {e}"))
}

/// Emits `trace.completed` for the due traces of the partitions this consumer owns, then
/// forgets them.
async fn complete_due(
    config: &ProcessorConfig,
    consumer: &StreamConsumer,
    producer: &Producer,
    redis: &mut ConnectionManager,
    timeout: Duration,
) -> Result<(), String> {
    let assignment = consumer.assignment().map_err(|e| e.to_string())?;
    let quiet = Duration::from_millis(config.trace_quiet_ms);
    let max_age = Duration::from_millis(config.trace_max_age_ms);
    for element in assignment.elements_for_topic(SPANS_RAW.name) {
        let hash = completion::redis_key(element.partition());
        let open: BTreeMap<String, String> = redis::AsyncCommands::hgetall(redis, &hash)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        let now = now_nanos();
        let due: Vec<(String, OpenTrace)> = open
            .into_iter()
            .filter_map(|(key, value)| OpenTrace::decode(&value).map(|t| (key, t)))
            .filter(|(_, t)| t.is_due(now, quiet, max_age))
            .collect();
        if due.is_empty() {
            continue;
        }
        let mut count = redis::pipe();
        for (key, _) in &due {
            count.scard(completion::spans_key(key));
        }
        let counts: Vec<u64> = count
            .query_async(redis)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        let sends = due.iter().zip(&counts).map(|((key, trace), spans)| {
            let (project_id, trace_id) = key.split_once('/').unwrap_or((key.as_str(), ""));
            let event = TraceEvent {
                version: TRACE_EVENT_VERSION,
                kind: TraceEventKind::Completed as i32,
                project_id: project_id.to_owned(),
                trace_id: trace_id.to_owned(),
                span_count: *spans,
                root_seen: trace.root_seen,
                at_unix_nano: now,
            };
            let payload = event.encode_to_vec();
            async move {
                producer
                    .send(TRACES_EVENTS.name, key.as_bytes(), &payload, None, timeout)
                    .await
            }
        });
        let results = futures::future::join_all(sends).await;
        if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
            return Err(e);
        }
        let mut forget = redis::pipe();
        for (key, _) in &due {
            forget.hdel(&hash, key).del(completion::spans_key(key));
        }
        forget
            .query_async::<()>(redis)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        metrics::counter!("spindle_processor_traces_completed_total").increment(due.len() as u64);
    }
    Ok(())
}

fn now_nanos() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0)
}

/// Enqueues one record of a batch; the error names the topic.
async fn enqueue(
    producer: &Producer,
    record: &Record<'_>,
    acks: &Arc<Acks>,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    producer
        .enqueue(record, acks, deadline)
        .await
        .map_err(|e| format!("produce to `{}` failed: {e}", record.topic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;

    #[test]
    fn poison_is_named_and_spans_are_keyed_by_trace() {
        let prices = PriceTable::embedded();
        let config = NormalizeConfig::default();
        let reason = decode(b"\xff\xff not protobuf").expect_err("garbage must be poison");
        assert!(reason.starts_with("not a RawSpanBatch"), "{reason}");

        let future = RawSpanBatch {
            version: RAW_SPAN_BATCH_VERSION + 1,
            ..Default::default()
        };
        let reason = decode(&future.encode_to_vec()).expect_err("unknown version must be poison");
        assert!(reason.contains("version 2 is unknown"), "{reason}");

        // Two traces sharing a record: a child of `ab…` first, then a child of `cd…` (whose
        // root is elsewhere), then the root of `ab…`.
        let span = |trace: u8, id: u8, parent: &[u8]| Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.to_vec(),
            start_time_unix_nano: 1_764_230_400_000_000_000,
            end_time_unix_nano: 1_764_230_401_000_000_000,
            ..Default::default()
        };
        let batch = RawSpanBatch {
            version: RAW_SPAN_BATCH_VERSION,
            project_id: "p".into(),
            spans: vec![
                span(0xab, 2, &[1; 8]),
                span(0xcd, 3, &[9; 8]),
                span(0xab, 1, &[]),
                span(0xab, 4, &[1; 8]),
            ],
            ..Default::default()
        };
        let Outcome::Enriched(records, traces) = enrich(
            &decode(&batch.encode_to_vec()).expect("decodes"),
            prices,
            None,
            &config,
        ) else {
            panic!("a valid batch is enriched");
        };
        assert_eq!(records.len(), 4);
        let ab = format!("p/{}", "ab".repeat(16));
        let cd = format!("p/{}", "cd".repeat(16));
        let ids = |ids: &[u8]| ids.iter().map(|i| hex::encode([*i; 8])).collect::<Vec<_>>();
        assert_eq!(
            traces,
            [(ab.clone(), ids(&[2, 1, 4]), true), (cd, ids(&[3]), false)]
        );
        assert_eq!(records[0].0, ab);
    }
}
