//! Span validation: what the gateway refuses to store, reported through partial success.
//!
//! Invalid spans are removed, never "fixed"; the rest of the request is accepted.

use super::wire::{ResourceView, SpanView};

/// 2000-01-01T00:00:00Z: earlier start times are treated as a broken clock.
const EARLIEST_NANOS: u64 = 946_684_800_000_000_000;
/// How far in the future a span may start (clock skew).
const MAX_SKEW_NANOS: u64 = 24 * 3600 * 1_000_000_000;
/// How many reasons the partial-success message lists.
const REASONS_SHOWN: usize = 3;

/// The result of validating one request.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) accepted_spans: u64,
    pub(crate) rejected_spans: u64,
    /// Reasons by metric label, with counts.
    pub(crate) reasons: Vec<(&'static str, u64)>,
    /// The partial-success message: empty when nothing was rejected.
    pub(crate) message: String,
}

/// Counts valid and invalid spans; [`is_valid`] says which to keep.
pub(crate) fn validate(resources: &[ResourceView<'_>], now_nanos: u64) -> Verdict {
    let mut verdict = Verdict::default();
    let mut shown = Vec::new();
    let mut position = 0_u64;
    for span in resources
        .iter()
        .flat_map(|r| &r.scopes)
        .flat_map(|s| &s.spans)
    {
        position += 1;
        match problem(span, now_nanos) {
            None => verdict.accepted_spans += 1,
            Some((label, why)) => {
                verdict.rejected_spans += 1;
                match verdict.reasons.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, count)) => *count += 1,
                    None => verdict.reasons.push((label, 1)),
                }
                if shown.len() < REASONS_SHOWN {
                    shown.push(format!("span {} (`{}`): {why}", position - 1, span.name));
                }
            }
        }
    }
    if verdict.rejected_spans > 0 {
        let total = verdict.accepted_spans + verdict.rejected_spans;
        let more = verdict.rejected_spans as usize - shown.len();
        verdict.message = format!(
            "rejected {} of {total} spans: {}{}",
            verdict.rejected_spans,
            shown.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        );
    }
    verdict
}

/// Whether a span passes validation.
pub(crate) fn is_valid(span: &SpanView<'_>, now_nanos: u64) -> bool {
    problem(span, now_nanos).is_none()
}

fn problem(span: &SpanView<'_>, now_nanos: u64) -> Option<(&'static str, String)> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Some((
            "invalid_trace_id",
            format!(
                "trace_id must be 16 bytes and not all zero (got {} bytes)",
                span.trace_id.len()
            ),
        ));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Some((
            "invalid_span_id",
            format!(
                "span_id must be 8 bytes and not all zero (got {} bytes)",
                span.span_id.len()
            ),
        ));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some((
            "invalid_parent_span_id",
            format!(
                "parent_span_id must be empty or 8 bytes (got {} bytes)",
                span.parent_span_id.len()
            ),
        ));
    }
    if span.start_time_unix_nano < EARLIEST_NANOS {
        return Some((
            "invalid_start_time",
            format!(
                "start_time_unix_nano {} is before 2000-01-01",
                span.start_time_unix_nano
            ),
        ));
    }
    if span.start_time_unix_nano > now_nanos.saturating_add(MAX_SKEW_NANOS) {
        return Some((
            "invalid_start_time",
            format!(
                "start_time_unix_nano {} is more than a day in the future",
                span.start_time_unix_nano
            ),
        ));
    }
    if span.end_time_unix_nano < span.start_time_unix_nano {
        return Some((
            "end_before_start",
            format!(
                "end_time_unix_nano {} is before start_time_unix_nano {}",
                span.end_time_unix_nano, span.start_time_unix_nano
            ),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::wire;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    const NOW: u64 = 1_764_230_400_000_000_000;

    fn span(name: &str) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![9; 8],
            name: name.into(),
            start_time_unix_nano: NOW - 2_000,
            end_time_unix_nano: NOW - 1_000,
            ..Default::default()
        }
    }

    fn encode(spans: Vec<Span>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn valid_spans_pass() {
        let bytes = encode(vec![span("a"), span("b")]);
        let views = wire::parse(&bytes).expect("parses");
        let verdict = validate(&views, NOW);
        assert_eq!(verdict.accepted_spans, 2);
        assert_eq!(verdict.rejected_spans, 0);
        assert!(verdict.message.is_empty());
    }

    #[test]
    fn each_problem_is_rejected_with_its_reason() {
        let zero_trace = Span {
            trace_id: vec![0; 16],
            ..span("zero-trace")
        };
        let short_span = Span {
            span_id: vec![1; 4],
            ..span("short-span")
        };
        let bad_parent = Span {
            parent_span_id: vec![1; 3],
            ..span("bad-parent")
        };
        let backwards = Span {
            end_time_unix_nano: NOW - 5_000,
            ..span("backwards")
        };
        let ancient = Span {
            start_time_unix_nano: 5,
            end_time_unix_nano: 6,
            ..span("ancient")
        };
        let future = Span {
            start_time_unix_nano: NOW + 2 * MAX_SKEW_NANOS,
            end_time_unix_nano: NOW + 2 * MAX_SKEW_NANOS,
            ..span("future")
        };
        let bytes = encode(vec![
            span("ok"),
            zero_trace,
            short_span,
            bad_parent,
            backwards,
            ancient,
            future,
        ]);
        let views = wire::parse(&bytes).expect("parses");
        let verdict = validate(&views, NOW);
        assert_eq!((verdict.accepted_spans, verdict.rejected_spans), (1, 6));
        assert_eq!(
            verdict.reasons,
            [
                ("invalid_trace_id", 1),
                ("invalid_span_id", 1),
                ("invalid_parent_span_id", 1),
                ("end_before_start", 1),
                ("invalid_start_time", 2),
            ]
        );
        assert!(
            verdict
                .message
                .starts_with("rejected 6 of 7 spans: span 1 (`zero-trace`): trace_id"),
            "{}",
            verdict.message
        );
        assert!(
            verdict.message.ends_with("; and 3 more"),
            "{}",
            verdict.message
        );
        let kept: Vec<&str> = views[0].scopes[0]
            .spans
            .iter()
            .filter(|s| is_valid(s, NOW))
            .map(|s| s.name)
            .collect();
        assert_eq!(kept, ["ok"]);
    }
}
