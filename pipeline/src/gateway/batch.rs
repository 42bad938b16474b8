//! Splitting an accepted request into `spans.raw` records: one per resource, scope and trace.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use spindle_schemas::raw::{ArchivePointer, RAW_SPAN_BATCH_VERSION, RawSpanBatch, trace_key};

/// One record to produce: its key and its payload.
#[derive(Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) key: String,
    pub(crate) batch: RawSpanBatch,
}

/// Turns an accepted request into records, spans in their original order within a trace.
pub(crate) fn records(
    request: ExportTraceServiceRequest,
    workspace_id: &str,
    project_id: &str,
    received_at_unix_nano: u64,
    archive: &ArchivePointer,
) -> Vec<Record> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        for scope_spans in resource_spans.scope_spans {
            let mut by_trace: HashMap<Vec<u8>, usize> = HashMap::new();
            let first = out.len();
            for span in scope_spans.spans {
                let slot = match by_trace.get(&span.trace_id) {
                    Some(&slot) => slot,
                    None => {
                        let slot = out.len();
                        by_trace.insert(span.trace_id.clone(), slot);
                        out.push(Record {
                            key: trace_key(project_id, &span.trace_id),
                            batch: RawSpanBatch {
                                version: RAW_SPAN_BATCH_VERSION,
                                workspace_id: workspace_id.to_owned(),
                                project_id: project_id.to_owned(),
                                received_at_unix_nano,
                                resource: resource_spans.resource.clone(),
                                resource_schema_url: resource_spans.schema_url.clone(),
                                scope: scope_spans.scope.clone(),
                                scope_schema_url: scope_spans.schema_url.clone(),
                                spans: Vec::new(),
                                archive: Some(archive.clone()),
                            },
                        });
                        slot
                    }
                };
                out[slot].batch.spans.push(span);
            }
            debug_assert!(out[first..].iter().all(|r| !r.batch.spans.is_empty()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            ..Default::default()
        }
    }

    #[test]
    fn one_record_per_scope_and_trace_in_order() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "a".into(),
                            ..Default::default()
                        }),
                        spans: vec![span(1, 1), span(2, 2), span(1, 3)],
                        ..Default::default()
                    },
                    ScopeSpans {
                        spans: vec![span(1, 4)],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let pointer = ArchivePointer {
            bucket: "b".into(),
            key: "k".into(),
            index: 0,
        };
        let records = records(request, "w", "p", 5, &pointer);
        let shape: Vec<(String, Vec<u8>)> = records
            .iter()
            .map(|r| {
                (
                    r.key.clone(),
                    r.batch.spans.iter().map(|s| s.span_id[0]).collect(),
                )
            })
            .collect();
        let t1 = format!("p/{}", "01".repeat(16));
        let t2 = format!("p/{}", "02".repeat(16));
        assert_eq!(
            shape,
            [(t1.clone(), vec![1, 3]), (t2, vec![2]), (t1, vec![4])]
        );
        assert_eq!(
            records[0].batch.scope.as_ref().map(|s| s.name.as_str()),
            Some("a")
        );
        assert!(
            records
                .iter()
                .all(|r| r.batch.archive.as_ref() == Some(&pointer))
        );
    }
}
