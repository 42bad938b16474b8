//! Spans of a trace: the skeleton of every span (no message bodies) to draw the tree, and the
//! full rows of the spans a client opens, in one batched query per request. Both become the
//! canonical [`EnrichedSpan`] the live feed carries, so one GraphQL type serves history and
//! the present.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;
use spindle_schemas::canonical::{
    CostStatus, EnrichedSpan, SpanEvent, SpanKind, SpanLink, StatusCode,
};
use spindle_schemas::prices::usd_to_nanos;
use spindle_schemas::raw::ArchivePointer;

use super::{Bind, Sql, Store, i, s};
use crate::error::ApiError;

/// The skeleton's columns after `trace_id` (which a read of one trace does not fetch: see
/// `trace_skeletons`).
const SKELETON_COLUMNS: &str = "span_id, parent_span_id, name, \
    toString(kind) AS kind_name, toString(service) AS service_name, \
    toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns, \
    toString(status_code) AS status_name, status_message, \
    toString(model) AS model_name, toString(provider) AS provider_name, \
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, \
    toString(input_cost) AS input_usd, toString(output_cost) AS output_usd, \
    toString(total_cost) AS total_usd, toString(cost_status) AS cost_status_name, \
    session_id, user_id, toString(tool_name) AS tool, \
    arrayMap(t -> toString(t), tags) AS tag_list";

const DETAIL_COLUMNS: &str = ", input_messages, output_messages, messages_truncated, \
    tool_call_id, tool_arguments, \
    CAST(attributes, 'Map(String, String)') AS attribute_map, \
    CAST(resource_attributes, 'Map(String, String)') AS resource_map, \
    arrayMap(t -> toUnixTimestamp64Nano(t), events.time) AS event_times, \
    events.name AS event_names, \
    arrayMap(m -> CAST(m, 'Map(String, String)'), events.attributes) AS event_attributes, \
    links.trace_id AS link_traces, links.span_id AS link_spans, \
    arrayMap(m -> CAST(m, 'Map(String, String)'), links.attributes) AS link_attributes, \
    raw_pointer, span_bytes";

/// The columns every span view needs.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct SkeletonRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind_name: String,
    pub service_name: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status_name: String,
    pub status_message: String,
    pub model_name: String,
    pub provider_name: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub input_usd: Option<String>,
    pub output_usd: Option<String>,
    pub total_usd: Option<String>,
    pub cost_status_name: String,
    pub session_id: String,
    pub user_id: String,
    pub tool: String,
    pub tag_list: Vec<String>,
}

/// A skeleton's columns plus the heavy ones (the `clickhouse` crate reads rows positionally
/// and checks every column against a field, so the skeleton's fields are repeated, not
/// flattened).
#[derive(Debug, Clone, Row, Deserialize)]
pub struct DetailRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind_name: String,
    pub service_name: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status_name: String,
    pub status_message: String,
    pub model_name: String,
    pub provider_name: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub input_usd: Option<String>,
    pub output_usd: Option<String>,
    pub total_usd: Option<String>,
    pub cost_status_name: String,
    pub session_id: String,
    pub user_id: String,
    pub tool: String,
    pub tag_list: Vec<String>,
    pub input_messages: String,
    pub output_messages: String,
    pub messages_truncated: bool,
    pub tool_call_id: String,
    pub tool_arguments: String,
    pub attribute_map: BTreeMap<String, String>,
    pub resource_map: BTreeMap<String, String>,
    pub event_times: Vec<i64>,
    pub event_names: Vec<String>,
    pub event_attributes: Vec<BTreeMap<String, String>>,
    pub link_traces: Vec<String>,
    pub link_spans: Vec<String>,
    pub link_attributes: Vec<BTreeMap<String, String>>,
    pub raw_pointer: String,
    pub span_bytes: u32,
}

/// The skeletons of a trace's spans, by start time, at most `limit`.
pub async fn skeletons(
    store: &Store,
    project_id: &str,
    trace_id: &str,
    limit: usize,
) -> Result<Vec<EnrichedSpan>, ApiError> {
    Ok(trace_skeletons(store, project_id, trace_id, limit)
        .await?
        .spans)
}

/// A trace's skeletons and the exact sum of their costs.
pub struct Skeletons {
    /// By start time, at most the limit asked for.
    pub spans: Vec<EnrichedSpan>,
    /// The sum of `total_cost` over `spans` at the column's precision (12 decimals, more than
    /// the nano-dollars a span carries), as decimal text; `None` if some value did not parse.
    pub total_cost: Option<String>,
}

/// [`skeletons`] with the exact cost sum a summary needs.
pub async fn trace_skeletons(
    store: &Store,
    project_id: &str,
    trace_id: &str,
    limit: usize,
) -> Result<Skeletons, ApiError> {
    // Every row has the same trace id: an empty column instead of 10,000 copies to send and
    // decode (a seventh of the skeleton's bytes). Named apart from `trace_id`, which the engine
    // would otherwise resolve to this alias in the condition.
    let mut sql = Sql::new("SELECT '' AS one_trace, ");
    sql.push(SKELETON_COLUMNS)
        .push_bound(
            " FROM spans FINAL WHERE project_id = ? AND trace_id = ?",
            [s(project_id), s(trace_id)],
        )
        .append(in_trace_hours(project_id, vec![trace_id.to_owned()]))
        .push_bound(
            " ORDER BY start_time, span_id LIMIT ?",
            [i(limit_i64(limit))],
        );
    let rows: Vec<SkeletonRow> = store.fetch_all_unchecked(sql).await?;
    let total_cost = rows
        .iter()
        .try_fold(0i128, |sum, row| {
            Some(sum + row.total_usd.as_deref().map_or(Some(0), picos)?)
        })
        .map(|sum| super::decimal_text(sum, 12));
    Ok(Skeletons {
        spans: rows
            .into_iter()
            .map(|row| {
                let mut span = row.into_span(project_id);
                trace_id.clone_into(&mut span.trace_id);
                span
            })
            .collect(),
        total_cost,
    })
}

/// ` AND …`: narrows a read of some traces' spans to the hours `trace_hours` lists for them,
/// so the engine finds them through the sort key of `spans` (project, hour, trace) instead of
/// testing the trace-id bloom filter of every granule of the project. The engine builds the
/// subquery's set once, before it picks granules.
fn in_trace_hours(project_id: &str, trace_ids: Vec<String>) -> Sql {
    let mut sql = Sql::default();
    sql.push_bound(
        " AND toStartOfHour(start_time) IN \
         (SELECT hour FROM trace_hours WHERE project_id = ? AND has(?, trace_id))",
        [s(project_id), Bind::Strs(trace_ids)],
    );
    sql
}

/// Decimal text with at most 12 decimals as an integer of 10⁻¹² units.
fn picos(text: &str) -> Option<i128> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || fraction.len() > 12
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let value = whole.parse::<i128>().ok()? * 10i128.pow(12)
        + format!("{fraction:0<12}").parse::<i128>().ok()?;
    Some(if negative { -value } else { value })
}

/// Full spans by (trace id, span id) of one project, in no particular order.
pub async fn details(
    store: &Store,
    project_id: &str,
    keys: &[(String, String)],
) -> Result<Vec<EnrichedSpan>, ApiError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let traces: Vec<String> = keys.iter().map(|(t, _)| t.clone()).collect();
    let pairs: Vec<String> = keys.iter().map(|(t, sp)| format!("{t}/{sp}")).collect();
    let mut sql = Sql::new("SELECT trace_id, ");
    sql.push(SKELETON_COLUMNS)
        .push(DETAIL_COLUMNS)
        .push_bound(
            " FROM spans FINAL WHERE project_id = ? AND has(?, trace_id) \
             AND has(?, concat(trace_id, '/', span_id))",
            [s(project_id), Bind::Strs(traces.clone()), Bind::Strs(pairs)],
        )
        .append(in_trace_hours(project_id, traces));
    let rows: Vec<DetailRow> = store.fetch_all(sql).await?;
    Ok(rows.into_iter().map(|r| r.into_span(project_id)).collect())
}

/// The LLM turns of a session, in order, full.
pub async fn session_turns(
    store: &Store,
    project_id: &str,
    session_id: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<EnrichedSpan>, ApiError> {
    let mut sql = Sql::new("SELECT ");
    sql.push("trace_id, ")
        .push(SKELETON_COLUMNS)
        .push(DETAIL_COLUMNS)
        .push_bound(
            " FROM spans FINAL WHERE project_id = ? AND session_id = ? AND kind = 'llm' \
         ORDER BY start_time, span_id LIMIT ? OFFSET ?",
            [
                s(project_id),
                s(session_id),
                i(limit_i64(limit)),
                i(limit_i64(offset)),
            ],
        );
    let rows: Vec<DetailRow> = store.fetch_all(sql).await?;
    Ok(rows.into_iter().map(|r| r.into_span(project_id)).collect())
}

fn limit_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn enum_value<E: Copy + Into<i32>>(all: &[E], name: &str, as_str: fn(E) -> &'static str) -> i32 {
    all.iter()
        .find(|e| as_str(**e) == name)
        .map_or(0, |e| (*e).into())
}

fn nanos(usd: Option<&str>) -> Option<i64> {
    usd.and_then(usd_to_nanos)
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SkeletonRow {
    fn into_span(self, project_id: &str) -> EnrichedSpan {
        EnrichedSpan {
            project_id: project_id.to_owned(),
            kind: enum_value(&KINDS, &self.kind_name, SpanKind::as_str),
            status_code: enum_value(&STATUSES, &self.status_name, StatusCode::as_str),
            cost_status: enum_value(&COST_STATUSES, &self.cost_status_name, CostStatus::as_str),
            input_cost_nanos: nanos(self.input_usd.as_deref()),
            output_cost_nanos: nanos(self.output_usd.as_deref()),
            total_cost_nanos: nanos(self.total_usd.as_deref()),
            start_time_unix_nano: unsigned(self.start_ns),
            end_time_unix_nano: unsigned(self.end_ns),
            duration_ns: unsigned(self.end_ns.saturating_sub(self.start_ns)),
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: self.name,
            service: self.service_name,
            status_message: self.status_message,
            model: self.model_name,
            provider: self.provider_name,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens,
            session_id: self.session_id,
            user_id: self.user_id,
            tool_name: self.tool,
            tags: self.tag_list,
            ..EnrichedSpan::default()
        }
    }
}

impl DetailRow {
    fn into_span(self, project_id: &str) -> EnrichedSpan {
        let events = self
            .event_times
            .iter()
            .zip(self.event_names)
            .zip(self.event_attributes)
            .map(|((time, name), attributes)| SpanEvent {
                time_unix_nano: unsigned(*time),
                name,
                attributes,
            })
            .collect();
        let links = self
            .link_traces
            .into_iter()
            .zip(self.link_spans)
            .zip(self.link_attributes)
            .map(|((trace_id, span_id), attributes)| SpanLink {
                trace_id,
                span_id,
                attributes,
            })
            .collect();
        EnrichedSpan {
            input_messages: self.input_messages,
            output_messages: self.output_messages,
            messages_truncated: self.messages_truncated,
            tool_call_id: self.tool_call_id,
            tool_arguments: self.tool_arguments,
            attributes: self.attribute_map,
            resource_attributes: self.resource_map,
            events,
            links,
            raw: ArchivePointer::parse(&self.raw_pointer),
            span_bytes: self.span_bytes,
            ..SkeletonRow {
                trace_id: self.trace_id,
                span_id: self.span_id,
                parent_span_id: self.parent_span_id,
                name: self.name,
                kind_name: self.kind_name,
                service_name: self.service_name,
                start_ns: self.start_ns,
                end_ns: self.end_ns,
                status_name: self.status_name,
                status_message: self.status_message,
                model_name: self.model_name,
                provider_name: self.provider_name,
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
                cache_read_tokens: self.cache_read_tokens,
                cache_write_tokens: self.cache_write_tokens,
                reasoning_tokens: self.reasoning_tokens,
                input_usd: self.input_usd,
                output_usd: self.output_usd,
                total_usd: self.total_usd,
                cost_status_name: self.cost_status_name,
                session_id: self.session_id,
                user_id: self.user_id,
                tool: self.tool,
                tag_list: self.tag_list,
            }
            .into_span(project_id)
        }
    }
}

const KINDS: [SpanKind; 9] = [
    SpanKind::Other,
    SpanKind::Llm,
    SpanKind::Embedding,
    SpanKind::Tool,
    SpanKind::Agent,
    SpanKind::Chain,
    SpanKind::Retrieval,
    SpanKind::Http,
    SpanKind::Db,
];
const STATUSES: [StatusCode; 3] = [StatusCode::Unset, StatusCode::Ok, StatusCode::Error];
const COST_STATUSES: [CostStatus; 4] = [
    CostStatus::NoUsage,
    CostStatus::Computed,
    CostStatus::ProviderReported,
    CostStatus::UnknownModel,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_sum_exactly_at_the_columns_precision() {
        assert_eq!(picos("0.000000000001"), Some(1));
        assert_eq!(picos("2"), Some(2_000_000_000_000));
        assert_eq!(picos("-1.5"), Some(-1_500_000_000_000));
        for bad in ["", ".5", "1.0000000000001", "1e3", "abc", "1.2.3"] {
            assert_eq!(picos(bad), None, "{bad}");
        }
        // Ten thousand sub-nano amounts do not drift as nano-dollars would.
        let sum: i128 = (0..10_000)
            .map(|_| picos("0.002238597561").expect("parse"))
            .sum();
        assert_eq!(crate::store::decimal_text(sum, 12), "22.38597561");
        assert_eq!(crate::store::decimal_text(0, 12), "0");
        assert_eq!(crate::store::decimal_text(-1, 12), "-0.000000000001");
        assert_eq!(crate::store::decimal_text(5_500_000_000, 12), "0.0055");
    }
}
