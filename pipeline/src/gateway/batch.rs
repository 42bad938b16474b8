//! Splitting an accepted request into `spans.raw` records, built from the request's own bytes.
//!
//! A record holds the kept spans of one resource and scope whose traces share a partition of
//! `spans.raw`: a trace's partition is CRC32 of its key (`<project_id>/<trace_id hex>`) modulo
//! the partition count, which is what librdkafka's default partitioner gives that key. The
//! record's key is its first trace's key, so the broker-side partitioner agrees, and every span
//! of a trace still lands on one partition. One record per partition rather than per trace:
//! the producer's cost is mostly per record (a request of 25 traces made 25).

use prost::Message as _;
use spindle_schemas::raw::{ArchivePointer, trace_key};

use super::wire::{self, ResourceView, SpanView};

/// One record to produce: its key and its encoded `RawSpanBatch`.
#[derive(Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) key: String,
    pub(crate) payload: Vec<u8>,
}

/// Builds the records for the spans `keep` accepts, for a topic of `partitions` partitions.
pub(crate) fn records(
    resources: &[ResourceView<'_>],
    keep: impl Fn(&SpanView<'_>) -> bool,
    workspace_id: &str,
    project_id: &str,
    received_at_unix_nano: u64,
    archive: &ArchivePointer,
    partitions: u32,
) -> Vec<Record> {
    let mut records = Records::new(
        resources,
        keep,
        workspace_id,
        project_id,
        received_at_unix_nano,
        archive,
        partitions,
    );
    let mut out = Vec::new();
    let mut payload = Vec::new();
    while let Some(key) = records.next_into(&mut payload) {
        out.push(Record {
            key,
            payload: std::mem::take(&mut payload),
        });
    }
    out
}

/// The partition count of `spans.raw` in the brokers' metadata. Blocks for up to `timeout`.
pub(crate) fn partition_count<C: rdkafka::ClientContext>(
    client: &rdkafka::client::Client<C>,
    timeout: std::time::Duration,
) -> Result<u32, String> {
    let topic = spindle_schemas::topics::SPANS_RAW.name;
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("no metadata for `{topic}`: {e}"))?;
    let described = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("the brokers did not describe `{topic}`"))?;
    if let Some(error) = described.error() {
        return Err(format!(
            "`{topic}`: {}",
            rdkafka::types::RDKafkaErrorCode::from(error)
        ));
    }
    match u32::try_from(described.partitions().len()) {
        Ok(0) | Err(_) => Err(format!("`{topic}` has no partitions")),
        Ok(n) => Ok(n),
    }
}

/// The partition librdkafka's default (`consistent_random`) partitioner gives a non-empty key.
pub fn partition_of(key: &str, partitions: u32) -> u32 {
    crc32fast::hash(key.as_bytes()) % partitions.max(1)
}

/// A trace of the scope being split.
struct Trace<'a> {
    id: &'a [u8],
    /// Its first kept span; the rest follow through `Records::next`.
    first: u32,
    last: u32,
    key: String,
    partition: u32,
    /// Already part of an encoded record.
    done: bool,
}

/// The records of a request one at a time, each encoded into a buffer the caller reuses: the
/// gateway hands each to the producer (which copies it) before encoding the next, so the bytes
/// are copied while still in cache.
pub(crate) struct Records<'v, 'a, K> {
    resources: &'v [ResourceView<'a>],
    keep: K,
    workspace_id: &'v str,
    project_id: &'v str,
    received_at_unix_nano: u64,
    partitions: u32,
    /// The encoded `ArchivePointer`, the same in every record of the request.
    archive: Vec<u8>,
    /// The next scope to split, as (resource, scope) indexes.
    pending: (usize, usize),
    /// The scope being split.
    current: (usize, usize),
    /// Its traces in first-seen order.
    traces: Vec<Trace<'a>>,
    /// For each span of the scope, the next kept span of its trace (`END` after the last).
    next: Vec<u32>,
    /// The first entry of `traces` that may not be encoded yet.
    trace: usize,
}

const END: u32 = u32::MAX;

impl<'v, 'a, K: Fn(&SpanView<'_>) -> bool> Records<'v, 'a, K> {
    pub(crate) fn new(
        resources: &'v [ResourceView<'a>],
        keep: K,
        workspace_id: &'v str,
        project_id: &'v str,
        received_at_unix_nano: u64,
        archive: &ArchivePointer,
        partitions: u32,
    ) -> Self {
        Self {
            resources,
            keep,
            workspace_id,
            project_id,
            received_at_unix_nano,
            partitions,
            archive: archive.encode_to_vec(),
            pending: (0, 0),
            current: (0, 0),
            traces: Vec::new(),
            next: Vec::new(),
            trace: 0,
        }
    }

    /// Encodes the next record into `payload` (cleared first) and returns its key; `None` once
    /// every record was encoded.
    pub(crate) fn next_into(&mut self, payload: &mut Vec<u8>) -> Option<String> {
        loop {
            while self.traces.get(self.trace).is_some_and(|t| t.done) {
                self.trace += 1;
            }
            if self.trace < self.traces.len() {
                break;
            }
            if !self.split_next_scope() {
                return None;
            }
        }
        let partition = self.traces[self.trace].partition;
        for trace in &mut self.traces[self.trace..] {
            if trace.partition == partition {
                trace.done = true;
            }
        }
        let resource = &self.resources[self.current.0];
        let scope = &resource.scopes[self.current.1];
        let spans = PartitionSpans {
            spans: &scope.spans,
            next: &self.next,
            traces: &self.traces,
            partition,
            trace: self.trace,
            at: self.traces[self.trace].first,
        };
        payload.clear();
        wire::raw_span_batch(
            payload,
            self.workspace_id,
            self.project_id,
            self.received_at_unix_nano,
            resource,
            scope,
            spans,
            &self.archive,
        );
        Some(self.traces[self.trace].key.clone())
    }

    /// Groups the kept spans of the next scope by trace; false when no scope is left.
    fn split_next_scope(&mut self) -> bool {
        let resources = self.resources;
        let (mut r, mut s) = self.pending;
        while r < resources.len() && s >= resources[r].scopes.len() {
            (r, s) = (r + 1, 0);
        }
        if r == resources.len() {
            self.pending = (r, 0);
            return false;
        }
        self.pending = (r, s + 1);
        self.current = (r, s);
        self.traces.clear();
        self.trace = 0;
        let spans = &resources[r].scopes[s].spans;
        self.next.clear();
        self.next.resize(spans.len(), END);
        // Traces in first-seen order; a request holds few, and a trace's spans usually come
        // together, so the last trace is tried first and then a linear scan beats hashing.
        let mut last = 0;
        for (index, span) in spans.iter().enumerate() {
            if !(self.keep)(span) {
                continue;
            }
            let index = u32::try_from(index).expect("a request holds fewer than 2^32 spans");
            let found = if self.traces.get(last).is_some_and(|t| t.id == span.trace_id) {
                Some(last)
            } else {
                self.traces.iter().position(|t| t.id == span.trace_id)
            };
            match found {
                Some(t) => {
                    let tail = &mut self.traces[t].last;
                    self.next[*tail as usize] = index;
                    *tail = index;
                    last = t;
                }
                None => {
                    last = self.traces.len();
                    let key = trace_key(self.project_id, span.trace_id);
                    self.traces.push(Trace {
                        id: span.trace_id,
                        first: index,
                        last: index,
                        partition: partition_of(&key, self.partitions),
                        key,
                        done: false,
                    });
                }
            }
        }
        true
    }
}

/// The spans of one partition's traces in one scope: trace by trace in first-seen order, each
/// trace's spans in request order.
#[derive(Clone)]
struct PartitionSpans<'s, 'a> {
    spans: &'s [SpanView<'a>],
    next: &'s [u32],
    traces: &'s [Trace<'a>],
    partition: u32,
    /// The trace being walked.
    trace: usize,
    /// Its next span (`END` once walked).
    at: u32,
}

impl<'s, 'a> Iterator for PartitionSpans<'s, 'a> {
    type Item = &'s SpanView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.at == END {
            self.trace += 1;
            let trace = self.traces.get(self.trace)?;
            if trace.partition == self.partition {
                self.at = trace.first;
            }
        }
        let span = self.spans.get(self.at as usize)?;
        self.at = self.next[self.at as usize];
        Some(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;
    use spindle_schemas::raw::{RAW_SPAN_BATCH_VERSION, RawSpanBatch};

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("s{id}"),
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![KeyValue {
                key: "gen_ai.request.model".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("gpt-4o ✓".into())),
                }),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn records_decode_as_prost_would_build_them() {
        let resource = Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue("svc".into())),
                }),
            }],
            ..Default::default()
        };
        let scope_a = InstrumentationScope {
            name: "a".into(),
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(scope_a.clone()),
                        spans: vec![span(1, 1), span(2, 2), span(1, 3), span(1, 9)],
                        schema_url: "https://schema/1".into(),
                    },
                    ScopeSpans {
                        spans: vec![span(1, 4)],
                        ..Default::default()
                    },
                ],
                schema_url: "https://resource/1".into(),
            }],
        };
        let bytes = request.encode_to_vec();
        let views = wire::parse(&bytes).expect("parses");
        let pointer = ArchivePointer {
            bucket: "b".into(),
            key: "k".into(),
            index: 2,
        };
        let decoded = |partitions: u32| -> Vec<(String, RawSpanBatch)> {
            records(
                &views,
                |s| s.span_id[0] != 9,
                "w",
                "p",
                5,
                &pointer,
                partitions,
            )
            .iter()
            .map(|r| {
                (
                    r.key.clone(),
                    RawSpanBatch::decode(r.payload.as_slice()).expect("prost decodes it"),
                )
            })
            .collect()
        };
        let expected =
            |scope: Option<InstrumentationScope>, url: &str, spans: Vec<Span>| RawSpanBatch {
                version: RAW_SPAN_BATCH_VERSION,
                workspace_id: "w".into(),
                project_id: "p".into(),
                received_at_unix_nano: 5,
                resource: Some(resource.clone()),
                resource_schema_url: "https://resource/1".into(),
                scope,
                scope_schema_url: url.into(),
                spans,
                archive: Some(pointer.clone()),
            };
        let t1 = format!("p/{}", "01".repeat(16));
        let t2 = format!("p/{}", "02".repeat(16));
        // One partition: one record per scope, trace by trace, keyed by its first trace.
        assert_eq!(
            decoded(1),
            [
                (
                    t1.clone(),
                    expected(
                        Some(scope_a.clone()),
                        "https://schema/1",
                        vec![span(1, 1), span(1, 3), span(2, 2)]
                    )
                ),
                (t1.clone(), expected(None, "", vec![span(1, 4)])),
            ]
        );
        // Partitions that tell the two traces apart: a record for each.
        let apart = (2..64)
            .find(|&n| partition_of(&t1, n) != partition_of(&t2, n))
            .expect("some partition count separates the traces");
        assert_eq!(
            decoded(apart),
            [
                (
                    t1.clone(),
                    expected(
                        Some(scope_a.clone()),
                        "https://schema/1",
                        vec![span(1, 1), span(1, 3)]
                    )
                ),
                (
                    t2,
                    expected(Some(scope_a), "https://schema/1", vec![span(2, 2)])
                ),
                (t1, expected(None, "", vec![span(1, 4)])),
            ]
        );

        // The archived form of the same filter decodes to the filtered request.
        let filtered = wire::filtered_request(&views, |s| s.span_id[0] != 9);
        let mut want = request.clone();
        want.resource_spans[0].scope_spans[0].spans.pop();
        assert_eq!(
            ExportTraceServiceRequest::decode(filtered.as_slice()).expect("decodes"),
            want
        );
        let none = wire::filtered_request(&views, |_| false);
        assert!(none.is_empty());
    }

    #[test]
    fn partitions_are_crc32_of_the_key() {
        // librdkafka's `rd_crc32` is the standard CRC-32, whose check value is that of
        // "123456789"; `tests/gateway.rs` checks the partitions librdkafka actually chose.
        assert_eq!(partition_of("123456789", u32::MAX), 0xcbf4_3926);
        assert_eq!(partition_of("123456789", 1000), 0xcbf4_3926 % 1000);
        assert_eq!(partition_of("any", 1), 0);
        assert_eq!(
            partition_of("any", 0),
            0,
            "no partition count is one partition"
        );
    }

    #[test]
    fn malformed_bytes_are_named() {
        let mut bytes = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, 1)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        bytes.truncate(bytes.len() - 3);
        let err = wire::parse(&bytes).expect_err("truncated");
        assert_eq!(err, "request: truncated: 92 bytes announced, 89 left");
        let err = wire::parse(b"\xff\xff\xff").expect_err("garbage");
        assert!(err.starts_with("request:"), "{err}");
        let err = wire::parse(b"\x0f").expect_err("wire type 7");
        assert_eq!(err, "request: unsupported wire type 7");
        let err = wire::parse(b"\x00\x00").expect_err("field 0");
        assert_eq!(err, "request: field number 0");
        let err = wire::parse(b"\x08\x01").expect_err("resource_spans as a varint");
        assert_eq!(err, "`resource_spans` has the wrong wire type");
        // A span whose name is not UTF-8.
        let mut bad = Span {
            name: "ab".into(),
            ..span(1, 1)
        }
        .encode_to_vec();
        let at = bad.windows(2).position(|w| w == b"ab").expect("name bytes");
        bad[at] = 0xff;
        let in_request = |second: &[u8]| {
            let mut scope = Vec::new();
            wire::put_len(&mut scope, 2, &span(1, 2).encode_to_vec());
            wire::put_len(&mut scope, 2, second);
            let mut resource = Vec::new();
            wire::put_len(&mut resource, 2, &scope);
            let mut request = Vec::new();
            wire::put_len(&mut request, 1, &resource);
            request
        };
        let err = wire::parse(&in_request(&bad)).expect_err("bad utf-8");
        assert_eq!(
            err,
            "resource_spans[0]: scope_spans[0]: spans[1]: `name` is not valid UTF-8"
        );
        // A start time sent as a varint, and an attribute cut short.
        let err = wire::parse(&in_request(b"\x38\x01")).expect_err("varint time");
        assert_eq!(
            err,
            "resource_spans[0]: scope_spans[0]: spans[1]: `start_time_unix_nano` has the wrong wire type"
        );
        let err = wire::parse(&in_request(b"\x4a\x03\x0a\x05a")).expect_err("short attribute");
        assert_eq!(
            err,
            "resource_spans[0]: scope_spans[0]: spans[1]: truncated: 5 bytes announced, 1 left"
        );
    }
}
