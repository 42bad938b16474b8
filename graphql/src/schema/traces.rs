//! `traces`, `trace` and `span`: trace summaries filtered and paged, one trace as a tree, one
//! span in full.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::{ComplexObject, Context, Enum, InputObject, Object, SimpleObject};
use spindle_schemas::canonical::EnrichedSpan;

use super::State;
use super::span::SpanNode;
use super::span_page::SpanPage;
use super::types::{
    CostStatus, DateTime, Decimal, KeyValueInput, OrderDirection, PageInfo, SpanKind, TimeRange,
    Tokens, page_size,
};
use crate::auth;
use crate::cursor::Cursor;
use crate::error::ApiError;
use crate::store::traces::{self as store_traces, TraceFilter, TraceOrder, TraceRow};

/// Narrows a trace list; every given condition must hold.
#[derive(Debug, Clone, Default, InputObject)]
pub struct TraceFilterInput {
    /// When the trace started; default the last seven days.
    pub time_range: Option<TimeRange>,
    /// The root span's name, exactly.
    pub name: Option<String>,
    /// Case-insensitive part of the root span's name.
    pub name_contains: Option<String>,
    /// True: only traces with an error span; false: only traces without.
    pub has_error: Option<bool>,
    /// Some span used one of these models.
    pub models: Option<Vec<String>>,
    pub providers: Option<Vec<String>>,
    /// Some span is of one of these kinds.
    pub kinds: Option<Vec<SpanKind>>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// The trace carries every one of these tags.
    pub tags: Option<Vec<String>>,
    /// Some span has each of these attribute (or resource attribute, or metadata) values.
    pub attributes: Option<Vec<KeyValueInput>>,
    pub min_cost: Option<Decimal>,
    pub max_cost: Option<Decimal>,
    pub min_latency_ms: Option<i64>,
    pub max_latency_ms: Option<i64>,
    pub min_tokens: Option<i64>,
    pub max_tokens: Option<i64>,
    /// Some span's cost status is this (UNKNOWN_MODEL finds unpriced models).
    pub cost_status: Option<CostStatus>,
    /// Case-insensitive text in some span's input or output messages.
    pub search: Option<String>,
}

impl TraceFilterInput {
    fn resolve(self) -> Result<TraceFilter, ApiError> {
        let (from_ns, to_ns) = TimeRange::resolve(self.time_range)?;
        for (name, min, max) in [
            ("latency", self.min_latency_ms, self.max_latency_ms),
            ("tokens", self.min_tokens, self.max_tokens),
        ] {
            if let (Some(min), Some(max)) = (min, max)
                && min > max
            {
                return Err(ApiError::BadUserInput(format!(
                    "inverted {name} range: min {min} is above max {max}"
                )));
            }
        }
        let search = self.search.filter(|s| !s.trim().is_empty());
        if search.as_ref().is_some_and(|s| s.len() > 256) {
            return Err(ApiError::BadUserInput(
                "`search` may be at most 256 bytes".into(),
            ));
        }
        Ok(TraceFilter {
            from_ns,
            to_ns,
            name: self.name,
            name_contains: self.name_contains,
            has_error: self.has_error,
            models: self.models.unwrap_or_default(),
            providers: self.providers.unwrap_or_default(),
            kinds: self
                .kinds
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.stored().to_owned())
                .collect(),
            session_id: self.session_id,
            user_id: self.user_id,
            tags: self.tags.unwrap_or_default(),
            attributes: self
                .attributes
                .unwrap_or_default()
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            min_cost: self.min_cost.map(|d| d.0),
            max_cost: self.max_cost.map(|d| d.0),
            min_latency_ms: self.min_latency_ms,
            max_latency_ms: self.max_latency_ms,
            min_tokens: self.min_tokens,
            max_tokens: self.max_tokens,
            cost_status: self.cost_status.map(|c| c.stored().to_owned()),
            search,
        })
    }
}

/// Sort keys of a trace list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum TraceOrderField {
    #[default]
    StartTime,
    Latency,
    Cost,
    Tokens,
}

#[derive(Debug, Clone, Copy, Default, InputObject)]
pub struct TraceOrderInput {
    #[graphql(default)]
    pub field: TraceOrderField,
    #[graphql(default)]
    pub direction: OrderDirection,
}

/// One trace, summed over its spans.
#[derive(Clone, SimpleObject)]
#[graphql(complex, name = "TraceSummary")]
pub struct TraceSummary {
    pub trace_id: String,
    /// The root span's name (empty until the root span arrives).
    pub name: String,
    pub service: String,
    pub start_time: DateTime,
    pub end_time: DateTime,
    pub latency_ms: f64,
    pub span_count: i64,
    pub error_count: i64,
    pub llm_span_count: i64,
    pub tokens: Tokens,
    pub total_cost: Decimal,
    /// Spans with usage whose model has no price: `totalCost` leaves them out.
    pub unknown_cost_spans: i64,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub models: Vec<String>,
    pub tags: Vec<String>,
    /// Whether the root span is stored.
    pub has_root: bool,
}

#[ComplexObject]
impl TraceSummary {
    /// True when some span failed.
    async fn has_error(&self) -> bool {
        self.error_count > 0
    }
}

impl From<TraceRow> for TraceSummary {
    fn from(row: TraceRow) -> Self {
        let tokens = Tokens::new(
            row.input,
            row.output,
            row.cache_read,
            row.cache_write,
            row.reasoning,
        );
        let mut models = row.model_list;
        models.sort();
        let mut tags = row.tag_list;
        tags.sort();
        TraceSummary {
            latency_ms: (row.end_ns - row.start_ns) as f64 / 1e6,
            trace_id: row.trace_id,
            name: row.root_name,
            service: row.root_service,
            start_time: DateTime(row.start_ns),
            end_time: DateTime(row.end_ns),
            span_count: row.n_spans,
            error_count: row.errors,
            llm_span_count: row.llm_spans,
            tokens,
            total_cost: Decimal(row.total_cost),
            unknown_cost_spans: row.unknown_cost_spans,
            session_id: Some(row.session).filter(|s| !s.is_empty()),
            user_id: Some(row.user).filter(|s| !s.is_empty()),
            models,
            tags,
            has_root: row.root_seen > 0,
        }
    }
}

#[derive(SimpleObject)]
pub struct TraceEdge {
    pub cursor: String,
    pub node: TraceSummary,
}

#[derive(SimpleObject)]
pub struct TraceConnection {
    pub edges: Vec<TraceEdge>,
    pub page_info: PageInfo,
}

/// A trace: its summary and its spans as a tree.
pub struct Trace {
    trace_id: String,
    loaded: Arc<LoadedTrace>,
    limits: super::Limits,
}

/// A trace as read for `trace(…)`.
pub struct LoadedTrace {
    summary: Option<TraceRow>,
    /// In tree order.
    spans: Arc<[SpanNode]>,
    truncated: bool,
}

/// Trees of big traces recently read, by project and trace, so that a client paging through
/// one reads and builds it once: a request for a page after the first (`spans(after: …)`)
/// reuses the tree the first page built, and its cursors, which are positions in that tree,
/// stay consistent. A request for the first page always reads the trace anew.
#[derive(Clone)]
pub struct TreeCache(spindle_platform::cache::TtlCache<Arc<LoadedTrace>>);

/// Trees with fewer spans are rebuilt for every page: they are cheap to read.
const CACHED_TREE_MIN_SPANS: usize = 500;

impl TreeCache {
    pub fn new(ttl: std::time::Duration, capacity: usize) -> Self {
        Self(spindle_platform::cache::TtlCache::new(ttl, capacity))
    }
}

impl Default for TreeCache {
    /// 30 s, long enough to scroll a big trace; 16 trees of at most `max_trace_spans` skeletons.
    fn default() -> Self {
        Self::new(std::time::Duration::from_secs(30), 16)
    }
}

#[Object]
impl Trace {
    async fn trace_id(&self) -> &str {
        &self.trace_id
    }
    async fn summary(&self) -> Option<TraceSummary> {
        self.loaded.summary.clone().map(TraceSummary::from)
    }
    /// The spans in tree order (depth first, children by start time), 200 per page unless
    /// `first` says otherwise (up to `graphql.max_trace_spans`). Message bodies
    /// are loaded only for the spans whose message fields are asked for.
    ///
    /// Complexity: the child selection once per 100 spans asked for. The whole tree is read
    /// for any page and a node's skeleton fields are plain values already in memory, so a
    /// 10,000-span trace fits in one request within the default limit.
    #[graphql(
        complexity = "(1 + usize::try_from(first.unwrap_or(200)).unwrap_or(0) / 100) * child_complexity"
    )]
    async fn spans(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<SpanPage, ApiError> {
        let first = page_size(
            first,
            self.limits.max_trace_spans.min(200),
            self.limits.max_trace_spans,
        )?;
        let ordering = format!("trace:{}", self.trace_id);
        let start = match after {
            Some(text) => {
                let cursor = Cursor::decode(&text, &ordering)?;
                cursor.value.parse::<usize>().map_err(|_| {
                    ApiError::BadUserInput(format!("invalid cursor `{text}`: bad position"))
                })? + 1
            }
            None => 0,
        };
        Ok(SpanPage::new(
            self.loaded.spans.clone(),
            start..start.saturating_add(first),
            &ordering,
            Some(ctx.field()),
        ))
    }
    /// True when the trace has more spans than `graphql.max_trace_spans` and only the first
    /// ones (by start time) are in the tree.
    async fn truncated(&self) -> bool {
        self.loaded.truncated
    }
}

/// Orders spans depth first (children by start time, then id) and sets each one's depth and
/// position. A span whose parent is not among them is a root.
pub fn tree(spans: Vec<EnrichedSpan>) -> Vec<SpanNode> {
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(n, s)| (s.span_id.as_str(), n))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (n, span) in spans.iter().enumerate() {
        match index.get(span.parent_span_id.as_str()) {
            Some(&parent) if !span.parent_span_id.is_empty() => children[parent].push(n),
            _ => roots.push(n),
        }
    }
    drop(index);
    let by_start = |a: &usize, b: &usize| {
        (spans[*a].start_time_unix_nano, &spans[*a].span_id)
            .cmp(&(spans[*b].start_time_unix_nano, &spans[*b].span_id))
    };
    roots.sort_by(by_start);
    for list in &mut children {
        list.sort_by(by_start);
    }
    let mut ordered = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, i32)> = roots.iter().rev().map(|n| (*n, 0)).collect();
    let mut seen = vec![false; spans.len()];
    while let Some((n, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[n], true) {
            continue; // a cycle of parent ids
        }
        ordered.push((n, depth));
        stack.extend(children[n].iter().rev().map(|k| (*k, depth + 1)));
    }
    // Spans only reachable through a cycle still appear, as roots.
    for (n, reached) in seen.iter().enumerate() {
        if !reached {
            ordered.push((n, 0));
        }
    }
    let mut slots: Vec<Option<EnrichedSpan>> = spans.into_iter().map(Some).collect();
    ordered
        .into_iter()
        .enumerate()
        .filter_map(|(order, (n, depth))| {
            slots[n].take().map(|span| SpanNode {
                span: Arc::new(span),
                full: false,
                depth: Some(depth),
                order: Some(i32::try_from(order).unwrap_or(i32::MAX)),
            })
        })
        .collect()
}

#[derive(Default)]
pub struct TraceQuery;

#[Object]
impl TraceQuery {
    /// Trace summaries of a project, newest first by default.
    #[graphql(
        complexity = "usize::try_from(first.unwrap_or(50)).unwrap_or(1).max(1) * child_complexity"
    )]
    async fn traces(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        filter: Option<TraceFilterInput>,
        order_by: Option<TraceOrderInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<TraceConnection, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let first = page_size(
            first,
            state.limits.default_page_size,
            state.limits.max_page_size,
        )?;
        let filter = filter.unwrap_or_default().resolve()?;
        let order_by = order_by.unwrap_or_default();
        let order = match order_by.field {
            TraceOrderField::StartTime => TraceOrder::StartTime,
            TraceOrderField::Latency => TraceOrder::Latency,
            TraceOrderField::Cost => TraceOrder::Cost,
            TraceOrderField::Tokens => TraceOrder::Tokens,
        };
        let descending = order_by.direction == OrderDirection::Desc;
        let ordering = format!(
            "traces:{}:{}",
            order.name(),
            if descending { "DESC" } else { "ASC" }
        );
        let after = after
            .map(|text| Cursor::decode(&text, &ordering))
            .transpose()?;
        let mut rows = store_traces::list(
            &state.store,
            &project_id,
            &filter,
            order,
            descending,
            after.as_ref(),
            first + 1,
        )
        .await?;
        let has_next_page = rows.len() > first;
        rows.truncate(first);
        let edges: Vec<TraceEdge> = rows
            .into_iter()
            .map(|row| TraceEdge {
                cursor: Cursor {
                    ordering: ordering.clone(),
                    value: order.value_of(&row),
                    key: row.trace_id.clone(),
                }
                .encode(),
                node: row.into(),
            })
            .collect();
        Ok(TraceConnection {
            page_info: PageInfo {
                has_next_page,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
        })
    }

    /// One trace with its spans as a tree; null when none of its spans are stored.
    async fn trace(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        trace_id: String,
    ) -> Result<Option<Trace>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let trace_id = normalize_id(&trace_id, 32, "trace")?;
        let key = format!("{project_id}/{trace_id}");
        let later_page = ctx.field().selection_set().any(|field| {
            field.name() == "spans"
                && field.arguments().is_ok_and(|arguments| {
                    arguments.iter().any(|(name, value)| {
                        name.as_str() == "after" && *value != async_graphql::Value::Null
                    })
                })
        });
        if let Some(loaded) = later_page.then(|| state.trees.0.get(&key)).flatten() {
            return Ok(Some(Trace {
                trace_id,
                loaded,
                limits: state.limits.clone(),
            }));
        }
        let max = state.limits.max_trace_spans;
        let crate::store::spans::Skeletons {
            spans: mut skeletons,
            total_cost,
        } = crate::store::spans::trace_skeletons(&state.store, &project_id, &trace_id, max + 1)
            .await?;
        if skeletons.is_empty() {
            return Ok(None);
        }
        let truncated = skeletons.len() > max;
        skeletons.truncate(max);
        // A trace read whole is summed from its spans (the sums `traces` holds, one query
        // instead of two, and consistent with the spans returned); a truncated one is not.
        let summary = match total_cost.filter(|_| !truncated) {
            Some(total_cost) => store_traces::summary_of(&trace_id, &skeletons, total_cost),
            None => store_traces::summary(&state.store, &project_id, &trace_id).await?,
        };
        let loaded = Arc::new(LoadedTrace {
            summary,
            spans: tree(skeletons).into(),
            truncated,
        });
        if loaded.spans.len() >= CACHED_TREE_MIN_SPANS {
            state.trees.0.insert(&key, loaded.clone());
        }
        Ok(Some(Trace {
            trace_id,
            loaded,
            limits: state.limits.clone(),
        }))
    }

    /// One span in full; null when it is not stored.
    async fn span(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        trace_id: String,
        span_id: String,
    ) -> Result<Option<SpanNode>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>();
        let trace_id = normalize_id(&trace_id, 32, "trace")?;
        let span_id = normalize_id(&span_id, 16, "span")?;
        let found =
            crate::store::spans::details(&state.store, &project_id, &[(trace_id, span_id)]).await?;
        Ok(found
            .into_iter()
            .next()
            .map(|span| SpanNode::full(Arc::new(span))))
    }
}

/// Ids are lowercase hex of a fixed length.
pub fn normalize_id(id: &str, len: usize, what: &str) -> Result<String, ApiError> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() == len && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(ApiError::BadUserInput(format!(
            "`{id}` is not a {what} id ({len} hex characters)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start: u64) -> EnrichedSpan {
        EnrichedSpan {
            span_id: id.into(),
            parent_span_id: parent.into(),
            start_time_unix_nano: start,
            ..EnrichedSpan::default()
        }
    }

    #[test]
    fn the_tree_is_depth_first_with_children_by_start_time() {
        let nodes = tree(vec![
            span("c2", "r", 30),
            span("r", "", 10),
            span("g", "c1", 25),
            span("c1", "r", 20),
            span("orphan", "missing", 5),
        ]);
        let order: Vec<(&str, Option<i32>)> = nodes
            .iter()
            .map(|n| (n.span.span_id.as_str(), n.depth))
            .collect();
        assert_eq!(
            order,
            vec![
                ("orphan", Some(0)),
                ("r", Some(0)),
                ("c1", Some(1)),
                ("g", Some(2)),
                ("c2", Some(1)),
            ]
        );
        assert_eq!(nodes[4].order, Some(4));
    }

    #[test]
    fn parent_cycles_do_not_lose_spans() {
        let nodes = tree(vec![span("a", "b", 1), span("b", "a", 2)]);
        assert_eq!(nodes.len(), 2);
    }

    #[test]
    fn ids_are_checked() {
        assert_eq!(
            normalize_id(&"AB".repeat(16), 32, "trace").expect("valid"),
            "ab".repeat(16)
        );
        assert!(normalize_id("xyz", 32, "trace").is_err());
    }
}
