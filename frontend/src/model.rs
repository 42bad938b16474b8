//! The API's objects as the screens read them (the fields of `schemas/graphql/schema.graphql`
//! they ask for; every field optional, so a smaller selection still decodes), and the two row
//! shapes built from them: trace rows (stored summaries and live ones alike) and span tree
//! rows. Pure.

use serde::Deserialize;
use serde_json::Value;

use crate::datetime::parse_nanos;
use crate::waterfall::{TreeRow, insertion};

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Viewer {
    pub workspace_id: String,
    pub project_id: String,
    pub key_prefix: String,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub total: i64,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Edge<T: Default> {
    pub cursor: String,
    pub node: T,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Connection<T: Default> {
    pub edges: Vec<Edge<T>>,
    pub page_info: PageInfo,
    pub total_count: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeList<T> {
    pub nodes: Vec<T>,
    pub page_info: PageInfo,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceSummary {
    pub trace_id: String,
    pub name: String,
    pub service: String,
    pub start_time: String,
    pub end_time: String,
    pub latency_ms: f64,
    pub span_count: i64,
    pub error_count: i64,
    pub llm_span_count: i64,
    pub tokens: Tokens,
    pub total_cost: String,
    pub unknown_cost_spans: i64,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub models: Vec<String>,
    pub tags: Vec<String>,
    pub has_error: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LiveTrace {
    pub trace_id: String,
    pub name: Option<String>,
    pub service: String,
    pub start_time: String,
    pub end_time: String,
    pub latency_ms: f64,
    pub span_count: i64,
    pub error_count: i64,
    pub tokens: Tokens,
    pub total_cost: String,
    pub models: Vec<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LiveTraceEvent {
    pub kind: String,
    pub trace: Option<LiveTrace>,
    pub missed: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Cost {
    pub input: Option<String>,
    pub output: Option<String>,
    pub total: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SpanEvent {
    pub time: String,
    pub name: String,
    pub attributes: Vec<KeyValue>,
}

/// A span: the skeleton fields always, the message and attribute fields when asked for.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub depth: Option<i64>,
    pub order: Option<i64>,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub start_time: String,
    pub end_time: String,
    pub latency_ms: f64,
    pub status: Status,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub tokens: Tokens,
    pub cost: Cost,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub tool_name: Option<String>,
    pub input_messages: Option<Value>,
    pub output_messages: Option<Value>,
    pub messages_truncated: bool,
    pub tool_call_id: Option<String>,
    pub tool_arguments: Option<String>,
    pub tags: Vec<String>,
    pub attributes: Vec<KeyValue>,
    pub resource_attributes: Vec<KeyValue>,
    pub events: Vec<SpanEvent>,
    pub raw_pointer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Trace {
    pub trace_id: String,
    pub summary: Option<TraceSummary>,
    pub spans: Connection<Span>,
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TraceUpdate {
    pub kind: String,
    pub span: Option<Span>,
    pub span_count: Option<i64>,
    pub missed: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Session {
    pub id: String,
    pub user_id: Option<String>,
    pub trace_count: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub total_tokens: i64,
    pub total_cost: String,
    pub first_seen: String,
    pub last_seen: String,
    pub turns: Vec<Span>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct User {
    pub id: String,
    pub trace_count: i64,
    pub session_count: i64,
    pub span_count: i64,
    pub error_count: i64,
    pub total_tokens: i64,
    pub total_cost: String,
    pub first_seen: String,
    pub last_seen: String,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MetricPoint {
    pub time: String,
    pub group: String,
    pub span_count: i64,
    pub error_count: i64,
    pub error_rate: f64,
    pub tokens: Tokens,
    pub total_cost: String,
    pub unknown_cost_spans: i64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
}

/// A row of the traces table, from a stored summary or a live one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceRow {
    pub trace_id: String,
    pub name: String,
    pub start_ns: i64,
    pub latency_ms: f64,
    pub tokens: i64,
    pub cost: String,
    pub models: Vec<String>,
    pub span_count: i64,
    pub error_count: i64,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// `ACTIVE`, `COMPLETED` or `PERSISTED` for a row a live event wrote.
    pub live: Option<String>,
}

impl From<&TraceSummary> for TraceRow {
    fn from(summary: &TraceSummary) -> TraceRow {
        TraceRow {
            trace_id: summary.trace_id.clone(),
            name: summary.name.clone(),
            start_ns: parse_nanos(&summary.start_time).unwrap_or_default(),
            latency_ms: summary.latency_ms,
            tokens: summary.tokens.total,
            cost: summary.total_cost.clone(),
            models: summary.models.clone(),
            span_count: summary.span_count,
            error_count: summary.error_count,
            session_id: summary.session_id.clone(),
            user_id: summary.user_id.clone(),
            live: None,
        }
    }
}

impl From<&LiveTrace> for TraceRow {
    fn from(live: &LiveTrace) -> TraceRow {
        TraceRow {
            trace_id: live.trace_id.clone(),
            name: live.name.clone().unwrap_or_default(),
            start_ns: parse_nanos(&live.start_time).unwrap_or_default(),
            latency_ms: live.latency_ms,
            tokens: live.tokens.total,
            cost: live.total_cost.clone(),
            models: live.models.clone(),
            span_count: live.span_count,
            error_count: live.error_count,
            session_id: live.session_id.clone(),
            user_id: live.user_id.clone(),
            live: Some(live.status.clone()),
        }
    }
}

/// Applies a live trace to the table: a trace already shown is updated where it stands, a
/// new one goes on top; the table keeps at most `cap` rows.
pub fn merge_live(rows: &mut Vec<TraceRow>, row: TraceRow, cap: usize) {
    match rows.iter_mut().find(|r| r.trace_id == row.trace_id) {
        Some(existing) => *existing = row,
        None => rows.insert(0, row),
    }
    rows.truncate(cap);
}

/// A row of the span tree.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRow {
    pub span: Span,
    pub depth: usize,
    pub start_ns: i64,
    pub end_ns: i64,
}

impl SpanRow {
    pub fn new(span: Span, depth: usize) -> SpanRow {
        let start_ns = parse_nanos(&span.start_time).unwrap_or_default();
        let end_ns = parse_nanos(&span.end_time)
            .unwrap_or(start_ns)
            .max(start_ns);
        SpanRow {
            span,
            depth,
            start_ns,
            end_ns,
        }
    }

    /// A row of a span as stored, in the server's tree order.
    pub fn stored(span: Span) -> SpanRow {
        let depth = usize::try_from(span.depth.unwrap_or(0)).unwrap_or(0);
        SpanRow::new(span, depth)
    }
}

impl TreeRow for SpanRow {
    fn span_id(&self) -> &str {
        &self.span.span_id
    }
    fn depth(&self) -> usize {
        self.depth
    }
    fn start(&self) -> i64 {
        self.start_ns
    }
}

/// Adds a span that arrived live to the tree, unless it is already there. Returns whether
/// it was added.
pub fn add_live_span(rows: &mut Vec<SpanRow>, span: Span) -> bool {
    if rows.iter().any(|row| row.span.span_id == span.span_id) {
        return false;
    }
    let start = parse_nanos(&span.start_time).unwrap_or_default();
    let (index, depth) = insertion(rows, span.parent_span_id.as_deref(), start);
    rows.insert(index, SpanRow::new(span, depth));
    true
}

/// The time range the rows cover, as the waterfall's scale.
pub fn time_range(rows: &[SpanRow]) -> (i64, i64) {
    let start = rows.iter().map(|r| r.start_ns).min().unwrap_or_default();
    let end = rows.iter().map(|r| r.end_ns).max().unwrap_or(start);
    (start, end.max(start))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn span(id: &str, parent: Option<&str>, start: &str) -> Span {
        Span {
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            start_time: start.into(),
            end_time: start.into(),
            ..Span::default()
        }
    }

    #[test]
    fn decodes_a_partial_selection() {
        let summary: TraceSummary = serde_json::from_value(json!({
            "traceId": "t1", "name": "agent", "latencyMs": 12.5, "totalCost": "0.0055",
            "tokens": {"total": 3}, "models": ["gpt-4o"], "sessionId": null,
            "startTime": "2026-11-27T09:00:00Z"
        }))
        .expect("decodes");
        let row = TraceRow::from(&summary);
        assert_eq!(row.tokens, 3);
        assert_eq!(row.start_ns, 1_795_770_000_000_000_000);
        assert_eq!(row.live, None);
    }

    #[test]
    fn live_rows_update_in_place_or_go_on_top() {
        let row = |id: &str, spans: i64| TraceRow {
            trace_id: id.into(),
            span_count: spans,
            ..TraceRow::default()
        };
        let mut rows = vec![row("a", 1), row("b", 1)];
        merge_live(&mut rows, row("b", 2), 10);
        assert_eq!(rows, vec![row("a", 1), row("b", 2)]);
        merge_live(&mut rows, row("c", 1), 2);
        assert_eq!(rows, vec![row("c", 1), row("a", 1)]);
    }

    #[test]
    fn live_spans_join_the_tree_once() {
        let mut rows = vec![
            SpanRow::stored(Span {
                depth: Some(0),
                ..span("root", None, "2026-11-27T09:00:00Z")
            }),
            SpanRow::stored(Span {
                depth: Some(1),
                ..span("a", Some("root"), "2026-11-27T09:00:01Z")
            }),
        ];
        assert!(add_live_span(
            &mut rows,
            span("b", Some("root"), "2026-11-27T09:00:02Z")
        ));
        assert!(!add_live_span(
            &mut rows,
            span("b", Some("root"), "2026-11-27T09:00:02Z")
        ));
        assert!(add_live_span(
            &mut rows,
            span("a1", Some("a"), "2026-11-27T09:00:01.5Z")
        ));
        let order: Vec<(&str, usize)> = rows
            .iter()
            .map(|r| (r.span.span_id.as_str(), r.depth))
            .collect();
        assert_eq!(order, vec![("root", 0), ("a", 1), ("a1", 2), ("b", 1)]);
        let (start, end) = time_range(&rows);
        assert_eq!(end - start, 2_000_000_000);
    }
}
