//! One topic's reader: every partition from its end, outside any group, each record decoded and
//! published to its project's feeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use spindle_schemas::canonical::{ENRICHED_SPAN_VERSION, EnrichedSpan};
use spindle_schemas::trace_events::{TRACE_EVENT_VERSION, TraceEvent, TraceEventKind};

use super::{LiveConfig, LiveError, LiveEvent, Shared, Source};

/// How long one metadata or watermark request may take.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before assigning again, or reading again after an error.
const RETRY: Duration = Duration::from_secs(1);

/// The consumer of `source`'s topic: `kafka` plus settings that keep it out of any group.
pub(super) fn consumer(
    kafka: &ClientConfig,
    settings: &LiveConfig,
    source: Source,
) -> Result<StreamConsumer, LiveError> {
    let fetch_wait_ms = match source {
        Source::Spans => settings.spans_fetch_wait_ms,
        Source::TraceEvents => settings.events_fetch_wait_ms,
    };
    let mut config = kafka.clone();
    config
        .set("group.id", group_id(source))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Only if an assigned watermark is gone (retention): go on from the end, never replay.
        .set("auto.offset.reset", "latest")
        // The broker may hold an empty fetch this long; it bounds the fan-out latency.
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string());
    config.create().map_err(|error| LiveError::Kafka {
        topic: source.topic(),
        source: error,
    })
}

/// librdkafka wants a `group.id` even for a consumer that never joins: one nobody else uses.
fn group_id(source: Source) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "spindle-graphql-live-{}-{}-{nanos:x}-{}",
        source.topic(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Assigns every partition at its end, then publishes records until shutdown.
pub(super) async fn run(consumer: StreamConsumer, source: Source, shared: Arc<Shared>) {
    let topic = source.topic();
    let consumer = Arc::new(consumer);
    let shutdown = shared.shutdown.clone();
    loop {
        let assigning = Arc::clone(&consumer);
        // Metadata and watermarks are blocking librdkafka calls.
        let assigned = tokio::task::spawn_blocking(move || assign_at_end(&assigning, topic)).await;
        match assigned {
            Ok(Ok(partitions)) => {
                tracing::info!(topic, partitions, "live reader reads from the end");
                break;
            }
            Ok(Err(error)) => {
                tracing::warn!(topic, %error, "live reader cannot assign partitions; retrying");
            }
            Err(error) => {
                tracing::warn!(topic, %error, "live reader cannot assign partitions; retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
    shared.set_ready(source, true);
    loop {
        let received = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            received = consumer.recv() => received,
        };
        match received {
            Ok(message) => dispatch(&shared, source, message.key(), message.payload()),
            Err(error) => {
                tracing::warn!(topic, %error, "live reader cannot read; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
    shared.set_ready(source, false);
}

/// Assigns all partitions the broker's metadata lists, each at its high watermark, so that
/// whatever is produced afterwards is read. Returns the partition count.
fn assign_at_end(consumer: &StreamConsumer, topic: &str) -> Result<usize, String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), BROKER_TIMEOUT)
        .map_err(|e| format!("metadata of `{topic}`: {e}"))?;
    let Some(described) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(format!("the broker does not describe `{topic}`"));
    };
    if let Some(error) = described.error() {
        return Err(format!(
            "metadata of `{topic}`: {}",
            RDKafkaErrorCode::from(error)
        ));
    }
    if described.partitions().is_empty() {
        return Err(format!("`{topic}` has no partitions"));
    }
    let mut assignment = TopicPartitionList::new();
    for partition in described.partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition.id(), BROKER_TIMEOUT)
            .map_err(|e| format!("end of `{topic}` partition {}: {e}", partition.id()))?;
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Offset(high))
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("assign `{topic}`: {e}"))?;
    Ok(described.partitions().len())
}

/// One record: skipped undecoded unless its key names a watched project, else decoded and
/// published to the feeds of the project its payload names.
pub(super) fn dispatch(
    shared: &Shared,
    source: Source,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) {
    if let Some(project) = key.and_then(project_of_key)
        && !shared.watched(project)
    {
        return;
    }
    let topic = source.topic();
    match decode(source, payload.unwrap_or_default()) {
        Decoded::Event(project, event) => {
            if shared.publish(&project, event) {
                metrics::counter!("spindle_graphql_live_events_total", "topic" => topic)
                    .increment(1);
            }
        }
        Decoded::Ignored => {}
        Decoded::Undecodable(reason) => {
            metrics::counter!("spindle_graphql_live_undecodable_total", "topic" => topic)
                .increment(1);
            tracing::debug!(topic, reason, "live reader skips a record");
        }
    }
}

/// The project of a `<project_id>/<trace_id>` key (trace ids are hex, so the last `/` splits).
fn project_of_key(key: &[u8]) -> Option<&str> {
    let (project, _trace) = std::str::from_utf8(key).ok()?.rsplit_once('/')?;
    Some(project)
}

#[derive(Debug)]
enum Decoded {
    /// An event for the feeds of the project.
    Event(String, LiveEvent),
    /// A valid record feeds never see (a trace event of another kind).
    Ignored,
    Undecodable(&'static str),
}

fn decode(source: Source, payload: &[u8]) -> Decoded {
    match source {
        Source::Spans => match EnrichedSpan::decode(payload) {
            Ok(span) if span.version == ENRICHED_SPAN_VERSION => {
                Decoded::Event(span.project_id.clone(), LiveEvent::Span(Arc::new(span)))
            }
            Ok(_) => Decoded::Undecodable("unknown version"),
            Err(_) => Decoded::Undecodable("not an `EnrichedSpan`"),
        },
        Source::TraceEvents => match TraceEvent::decode(payload) {
            Ok(event) if event.version == TRACE_EVENT_VERSION => match event.kind() {
                TraceEventKind::Completed | TraceEventKind::Persisted => {
                    Decoded::Event(event.project_id.clone(), LiveEvent::Trace(event))
                }
                TraceEventKind::Unspecified => Decoded::Ignored,
            },
            Ok(_) => Decoded::Undecodable("unknown version"),
            Err(_) => Decoded::Undecodable("not a `TraceEvent`"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_comes_from_the_key_before_the_last_slash() {
        assert_eq!(project_of_key(b"p1/abc"), Some("p1"));
        assert_eq!(project_of_key(b"org/p1/abc"), Some("org/p1"));
        assert_eq!(project_of_key(b"no-slash"), None);
        assert_eq!(project_of_key(&[0xff, b'/', b'a']), None);
    }

    #[test]
    fn decodes_known_versions_and_kinds_only() {
        let span = EnrichedSpan {
            version: ENRICHED_SPAN_VERSION,
            project_id: "p".into(),
            ..EnrichedSpan::default()
        };
        assert!(matches!(
            decode(Source::Spans, &span.encode_to_vec()),
            Decoded::Event(p, LiveEvent::Span(_)) if p == "p"
        ));
        let future = EnrichedSpan {
            version: ENRICHED_SPAN_VERSION + 1,
            ..span.clone()
        };
        assert!(matches!(
            decode(Source::Spans, &future.encode_to_vec()),
            Decoded::Undecodable("unknown version")
        ));
        assert!(matches!(
            decode(Source::Spans, b"\xff\xff\xff"),
            Decoded::Undecodable(_)
        ));

        let mut event = TraceEvent {
            version: TRACE_EVENT_VERSION,
            kind: TraceEventKind::Persisted as i32,
            project_id: "p".into(),
            ..TraceEvent::default()
        };
        assert!(matches!(
            decode(Source::TraceEvents, &event.encode_to_vec()),
            Decoded::Event(p, LiveEvent::Trace(_)) if p == "p"
        ));
        event.kind = TraceEventKind::Unspecified as i32;
        assert!(matches!(
            decode(Source::TraceEvents, &event.encode_to_vec()),
            Decoded::Ignored
        ));
        event.kind = 42;
        assert!(matches!(
            decode(Source::TraceEvents, &event.encode_to_vec()),
            Decoded::Ignored
        ));
        assert!(matches!(
            decode(Source::TraceEvents, &[]),
            Decoded::Undecodable("unknown version")
        ));
    }
}
