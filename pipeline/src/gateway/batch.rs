//! Splitting an accepted request into `spans.raw` records: one per resource, scope and trace,
//! built from the request's own bytes.

use spindle_schemas::raw::{ArchivePointer, trace_key};

use super::wire::{self, ResourceView, SpanView};

/// One record to produce: its key and its encoded `RawSpanBatch`.
#[derive(Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) key: String,
    pub(crate) payload: Vec<u8>,
}

/// Builds the records for the spans `keep` accepts, spans in request order within a trace.
pub(crate) fn records(
    resources: &[ResourceView<'_>],
    keep: impl Fn(&SpanView<'_>) -> bool,
    workspace_id: &str,
    project_id: &str,
    received_at_unix_nano: u64,
    archive: &ArchivePointer,
) -> Vec<Record> {
    let mut out = Vec::new();
    for resource in resources {
        for scope in &resource.scopes {
            // Traces in first-seen order; a request holds few, so a linear scan beats hashing.
            let mut traces: Vec<(&[u8], Vec<&SpanView<'_>>)> = Vec::new();
            for span in scope.spans.iter().filter(|s| keep(s)) {
                match traces.iter_mut().find(|(id, _)| *id == span.trace_id) {
                    Some((_, spans)) => spans.push(span),
                    None => traces.push((span.trace_id, vec![span])),
                }
            }
            for (trace_id, spans) in traces {
                out.push(Record {
                    key: trace_key(project_id, trace_id),
                    payload: wire::raw_span_batch(
                        workspace_id,
                        project_id,
                        received_at_unix_nano,
                        resource,
                        scope,
                        &spans,
                        archive,
                    ),
                });
            }
        }
    }
    out
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
        let records = records(&views, |s| s.span_id[0] != 9, "w", "p", 5, &pointer);
        let decoded: Vec<(String, RawSpanBatch)> = records
            .iter()
            .map(|r| {
                (
                    r.key.clone(),
                    RawSpanBatch::decode(r.payload.as_slice()).expect("prost decodes it"),
                )
            })
            .collect();
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
        assert_eq!(
            decoded,
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
        // A span whose name is not UTF-8.
        let mut bad = Span {
            name: "ab".into(),
            ..span(1, 1)
        }
        .encode_to_vec();
        let at = bad.windows(2).position(|w| w == b"ab").expect("name bytes");
        bad[at] = 0xff;
        let mut scope = Vec::new();
        wire::put_len(&mut scope, 2, &bad);
        let mut resource = Vec::new();
        wire::put_len(&mut resource, 2, &scope);
        let mut request = Vec::new();
        wire::put_len(&mut request, 1, &resource);
        let err = wire::parse(&request).expect_err("bad utf-8");
        assert_eq!(
            err,
            "resource_spans[0]: scope_spans[0]: spans[0]: `name` is not valid UTF-8"
        );
    }
}
