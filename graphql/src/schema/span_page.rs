//! A page of a trace's spans (`Trace.spans`), and the renderer that makes a big page cheap.
//!
//! async-graphql resolves every field of every object through its own future; for a
//! 10,000-span page of a dozen fields that machinery, not the data, is most of the request.
//! When every field a request selects under `spans` is a plain value of the skeleton already in
//! memory (ids, depth, name, kind, times, status, model, tokens, cost, …, cursors, page info,
//! `__typename`), the selection is compiled once per request into a [`Plan`] and the page is
//! written straight to JSON text, which the HTTP layer puts into the answer as it is (see
//! [`PreSerialized`]): building and serializing a value tree of the page, then freeing it, cost
//! more than twice the writing. Anything else (message bodies and the other
//! fields that load the full span, directives, a response key selected twice) takes the
//! generic path. Both paths answer alike: the tests run the same selections through both.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::enum_value;
use async_graphql::{
    ContextSelectionSet, Name, Object, OutputType, Positioned, ScalarType, SelectionField,
    ServerError, ServerResult, SimpleObject, Value,
};

use super::span::{SpanNode, nanos, non_empty};
use super::types::{CostStatus, Decimal, PageInfo, StatusCode};
use crate::cursor::Cursor;
use crate::json::{write_object, write_value};

/// A span of a page, and the cursor to pass as `after` for the spans after it.
pub struct SpanEdge {
    ordering: Arc<str>,
    position: usize,
    node: SpanNode,
}

impl SpanEdge {
    fn cursor_text(&self) -> String {
        span_cursor(&self.ordering, self.position, &self.node.span.span_id)
    }
}

#[Object]
impl SpanEdge {
    async fn cursor(&self) -> String {
        self.cursor_text()
    }
    async fn node(&self) -> &SpanNode {
        &self.node
    }
}

/// A page of a trace's spans, in tree order.
#[derive(SimpleObject)]
pub struct SpanConnection {
    pub edges: Vec<SpanEdge>,
    pub page_info: PageInfo,
    /// Spans of the trace in all pages.
    pub total_count: i32,
}

/// The cursor of the span at `position` of a trace's tree order.
pub fn span_cursor(ordering: &str, position: usize, span_id: &str) -> String {
    Cursor {
        ordering: ordering.to_owned(),
        value: position.to_string(),
        key: span_id.to_owned(),
    }
    .encode()
}

/// A page of a trace's spans in tree order: `range` of `spans`, rendered by `plan` when the
/// request's selection allows it.
pub struct SpanPage {
    spans: Arc<[SpanNode]>,
    range: Range<usize>,
    ordering: Arc<str>,
    plan: Option<Plan>,
}

impl SpanPage {
    /// The page `range` of `spans` (clamped), with cursors issued for `ordering`. `selection`
    /// is the `spans` field being answered (`ctx.field()`); `None` always takes the generic
    /// path.
    pub fn new(
        spans: Arc<[SpanNode]>,
        range: Range<usize>,
        ordering: &str,
        selection: Option<SelectionField<'_>>,
    ) -> Self {
        let end = range.end.min(spans.len());
        let start = range.start.min(end);
        Self {
            spans,
            range: start..end,
            ordering: Arc::from(ordering),
            plan: selection.and_then(|field| Plan::compile(&field)),
        }
    }

    /// Whether this page will be rendered without the generic resolvers.
    pub fn is_planned(&self) -> bool {
        self.plan.is_some()
    }

    fn has_next_page(&self) -> bool {
        self.range.end < self.spans.len()
    }

    fn end_cursor(&self) -> Option<String> {
        let last = self
            .range
            .end
            .checked_sub(1)
            .filter(|_| !self.range.is_empty())?;
        Some(span_cursor(
            &self.ordering,
            last,
            &self.spans[last].span.span_id,
        ))
    }

    fn total_count(&self) -> i32 {
        i32::try_from(self.spans.len()).unwrap_or(i32::MAX)
    }

    fn connection(&self) -> SpanConnection {
        SpanConnection {
            edges: self.spans[self.range.clone()]
                .iter()
                .zip(self.range.clone())
                .map(|(node, position)| SpanEdge {
                    ordering: self.ordering.clone(),
                    position,
                    node: node.clone(),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: self.has_next_page(),
                end_cursor: self.end_cursor(),
            },
            total_count: self.total_count(),
        }
    }

    /// The page as JSON text, written straight from the plan: what async-graphql would
    /// serialize for the same selection, without a value tree of 10,000 objects in between.
    fn write(&self, plan: &Plan) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + self.range.len() * 256);
        write_object(&mut out, pairs(&plan.0), |out, field| match field {
            PageField::Typename => write_value(out, &text("SpanConnection")),
            PageField::TotalCount => write_value(out, &Value::Number(self.total_count().into())),
            PageField::PageInfo(fields) => {
                write_object(out, pairs(fields), |out, field| match field {
                    InfoField::Typename => write_value(out, &text("PageInfo")),
                    InfoField::HasNextPage => {
                        write_value(out, &Value::Boolean(self.has_next_page()))
                    }
                    InfoField::EndCursor => {
                        write_value(out, &self.end_cursor().map_or(Value::Null, Value::String))
                    }
                })
            }
            PageField::Edges(fields) => {
                out.push(b'[');
                for position in self.range.clone() {
                    if position > self.range.start {
                        out.push(b',');
                    }
                    self.write_edge(out, position, fields)?;
                }
                out.push(b']');
                Ok(())
            }
        })?;
        Ok(out)
    }

    fn write_edge(
        &self,
        out: &mut Vec<u8>,
        position: usize,
        fields: &[(Name, EdgeField)],
    ) -> serde_json::Result<()> {
        let node = &self.spans[position];
        write_object(out, pairs(fields), |out, field| match field {
            EdgeField::Typename => write_value(out, &text("SpanEdge")),
            EdgeField::Cursor => write_value(
                out,
                &Value::String(span_cursor(&self.ordering, position, &node.span.span_id)),
            ),
            EdgeField::Node(fields) => write_node(out, node, fields),
        })
    }
}

/// Request data of the HTTP layer, which writes a `Value::Binary` into the answer as the JSON
/// text it holds (`server::respond`): a planned page is then answered as that text. Without
/// it (WebSocket, a schema executed directly) the text is parsed into a value.
pub struct PreSerialized;

/// A plan's fields as the (key, field) pairs [`write_object`] takes.
fn pairs<T>(fields: &[(Name, T)]) -> impl Iterator<Item = (&Name, &T)> {
    fields.iter().map(|(key, field)| (key, field))
}

fn write_node(
    out: &mut Vec<u8>,
    node: &SpanNode,
    fields: &[(Name, NodeField)],
) -> serde_json::Result<()> {
    write_object(out, pairs(fields), |out, field| match field {
        NodeField::Leaf(leaf) => write_value(out, &leaf(node)),
        NodeField::Object(fields) => write_node(out, node, fields),
    })
}

impl OutputType for SpanPage {
    fn type_name() -> Cow<'static, str> {
        SpanConnection::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        SpanConnection::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let Some(plan) = &self.plan else {
            return OutputType::resolve(&self.connection(), ctx, field).await;
        };
        let failed = |e: serde_json::Error| {
            ServerError::new(format!("cannot write the span page: {e}"), Some(field.pos))
        };
        let json = self.write(plan).map_err(failed)?;
        if ctx.data_opt::<PreSerialized>().is_some() {
            Ok(Value::Binary(json.into()))
        } else {
            serde_json::from_slice(&json).map_err(failed)
        }
    }
}

/// The selection under `spans`, compiled: response keys in order, each with what fills it.
struct Plan(Vec<(Name, PageField)>);

enum PageField {
    Typename,
    TotalCount,
    PageInfo(Vec<(Name, InfoField)>),
    Edges(Vec<(Name, EdgeField)>),
}

enum InfoField {
    Typename,
    HasNextPage,
    EndCursor,
}

enum EdgeField {
    Typename,
    Cursor,
    Node(Vec<(Name, NodeField)>),
}

/// A value read off a span node.
type Leaf = fn(&SpanNode) -> Value;

/// A field of `Span` or of an object inside it (`status`, `tokens`, `cost`), which are
/// read off the same node.
enum NodeField {
    Leaf(Leaf),
    Object(Vec<(Name, NodeField)>),
}

/// What a field name of a `Span`-side type means to the renderer; `None`: not renderable.
type Table = fn(&str) -> Option<Entry>;

enum Entry {
    Leaf(Leaf),
    Object(Table),
}

impl Plan {
    fn compile(spans: &SelectionField<'_>) -> Option<Plan> {
        let page = compile_fields(spans, |field| {
            Some(match field.name() {
                "__typename" => PageField::Typename,
                "totalCount" => PageField::TotalCount,
                "pageInfo" => PageField::PageInfo(compile_fields(field, |sub| {
                    Some(match sub.name() {
                        "__typename" => InfoField::Typename,
                        "hasNextPage" => InfoField::HasNextPage,
                        "endCursor" => InfoField::EndCursor,
                        _ => return None,
                    })
                })?),
                "edges" => PageField::Edges(compile_fields(field, |sub| {
                    Some(match sub.name() {
                        "__typename" => EdgeField::Typename,
                        "cursor" => EdgeField::Cursor,
                        "node" => EdgeField::Node(compile_object(sub, span_field)?),
                        _ => return None,
                    })
                })?),
                _ => return None,
            })
        })?;
        Some(Plan(page))
    }
}

/// The fields selected under `field`, each under its response key and compiled by `compile`;
/// `None` when one of them is not renderable.
fn compile_fields<T>(
    field: &SelectionField<'_>,
    mut compile: impl FnMut(&SelectionField<'_>) -> Option<T>,
) -> Option<Vec<(Name, T)>> {
    let mut out = Vec::new();
    for sub in field.selection_set() {
        let key = response_key(&sub, &out)?;
        let compiled = compile(&sub)?;
        out.push((key, compiled));
    }
    Some(out)
}

/// The key `field` answers under; `None` (not renderable) when it carries directives (async-graphql
/// has already applied and removed `@skip`/`@include`; any other is the resolvers' to apply)
/// or its key is already taken (selections that would have to be merged).
fn response_key<T>(field: &SelectionField<'_>, taken: &[(Name, T)]) -> Option<Name> {
    if !field.directives().ok()?.is_empty() {
        return None;
    }
    let key = field.alias().unwrap_or(field.name());
    if taken.iter().any(|(k, _)| k.as_str() == key) {
        return None;
    }
    Some(Name::new(key))
}

fn compile_object(field: &SelectionField<'_>, table: Table) -> Option<Vec<(Name, NodeField)>> {
    compile_fields(field, |sub| {
        Some(match table(sub.name())? {
            Entry::Leaf(leaf) => NodeField::Leaf(leaf),
            Entry::Object(table) => NodeField::Object(compile_object(sub, table)?),
        })
    })
}

fn text(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, text)
}

fn int(n: Option<i32>) -> Value {
    n.map_or(Value::Null, |n| Value::Number(n.into()))
}

fn decimal(value: Option<i64>) -> Value {
    value.map_or(Value::Null, |n| Decimal::from_nanos(n).to_value())
}

/// The skeleton fields of `Span` (see `SpanNode`'s resolvers, which these mirror).
fn span_field(name: &str) -> Option<Entry> {
    let leaf: Leaf = match name {
        "__typename" => |_| text("Span"),
        "traceId" => |n| text(&n.span.trace_id),
        "spanId" => |n| text(&n.span.span_id),
        "parentSpanId" => |n| optional_text(n.parent_id()),
        "depth" => |n| int(n.depth),
        "order" => |n| int(n.order),
        "name" => |n| text(&n.span.name),
        "kind" => |n| enum_value(n.kind_of()),
        "service" => |n| text(&n.span.service),
        "startTime" => |n| nanos(n.span.start_time_unix_nano).to_value(),
        "endTime" => |n| nanos(n.span.end_time_unix_nano).to_value(),
        "latencyMs" => |n| n.latency_ms_of().to_value(),
        "model" => |n| optional_text(non_empty(&n.span.model)),
        "provider" => |n| optional_text(non_empty(&n.span.provider)),
        "sessionId" => |n| optional_text(non_empty(&n.span.session_id)),
        "userId" => |n| optional_text(non_empty(&n.span.user_id)),
        "toolName" => |n| optional_text(non_empty(&n.span.tool_name)),
        "status" => return Some(Entry::Object(status_field)),
        "tokens" => return Some(Entry::Object(tokens_field)),
        "cost" => return Some(Entry::Object(cost_field)),
        _ => return None,
    };
    Some(Entry::Leaf(leaf))
}

fn status_field(name: &str) -> Option<Entry> {
    let leaf: Leaf = match name {
        "__typename" => |_| text("Status"),
        "code" => |n| enum_value(StatusCode::from_canonical(n.span.status_code)),
        "message" => |n| text(&n.span.status_message),
        _ => return None,
    };
    Some(Entry::Leaf(leaf))
}

fn tokens_field(name: &str) -> Option<Entry> {
    let leaf: Leaf = match name {
        "__typename" => |_| text("Tokens"),
        "input" => |n| n.tokens_of().input.to_value(),
        "output" => |n| n.tokens_of().output.to_value(),
        "cacheRead" => |n| n.tokens_of().cache_read.to_value(),
        "cacheWrite" => |n| n.tokens_of().cache_write.to_value(),
        "reasoning" => |n| n.tokens_of().reasoning.to_value(),
        "total" => |n| n.tokens_of().total.to_value(),
        _ => return None,
    };
    Some(Entry::Leaf(leaf))
}

fn cost_field(name: &str) -> Option<Entry> {
    let leaf: Leaf = match name {
        "__typename" => |_| text("Cost"),
        "input" => |n| decimal(n.span.input_cost_nanos),
        "output" => |n| decimal(n.span.output_cost_nanos),
        "total" => |n| decimal(n.span.total_cost_nanos),
        "status" => |n| enum_value(CostStatus::from_canonical(n.span.cost_status)),
        _ => return None,
    };
    Some(Entry::Leaf(leaf))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_graphql::{Context, EmptyMutation, EmptySubscription, Schema};
    use spindle_schemas::canonical::EnrichedSpan;

    use super::*;

    /// Both paths over the same spans; `planned` records whether the fast one compiled.
    struct Both {
        spans: Arc<[SpanNode]>,
        planned: Arc<Mutex<Vec<bool>>>,
    }

    #[Object]
    impl Both {
        async fn fast(&self, ctx: &Context<'_>, first: i32, after: i32) -> SpanPage {
            let page = SpanPage::new(
                self.spans.clone(),
                range(first, after),
                "trace:t",
                Some(ctx.field()),
            );
            self.planned.lock().expect("lock").push(page.is_planned());
            page
        }
        async fn generic(&self, first: i32, after: i32) -> SpanPage {
            SpanPage::new(self.spans.clone(), range(first, after), "trace:t", None)
        }
    }

    fn range(first: i32, after: i32) -> Range<usize> {
        let start = usize::try_from(after).expect("after");
        start..start + usize::try_from(first).expect("first")
    }

    fn spans() -> Arc<[SpanNode]> {
        let mut out = Vec::new();
        for n in 0..5u64 {
            let mut span = EnrichedSpan {
                project_id: "p".into(),
                trace_id: "t".repeat(32),
                span_id: format!("{n:016x}"),
                parent_span_id: if n == 0 {
                    String::new()
                } else {
                    format!("{:016x}", 0)
                },
                name: format!("step {n}"),
                service: "svc".into(),
                start_time_unix_nano: 1_764_230_400_000_000_000 + n * 1_000_000,
                end_time_unix_nano: 1_764_230_400_000_000_000 + n * 3_000_000,
                duration_ns: n * 2_000_000 + 1_234,
                status_code: i32::try_from(n % 3).expect("code"),
                status_message: if n == 2 { "boom".into() } else { String::new() },
                kind: i32::try_from(n % 4).expect("kind"),
                ..EnrichedSpan::default()
            };
            if n % 2 == 1 {
                span.model = "gpt-4o".into();
                span.provider = "openai".into();
                span.input_tokens = 1_000 * n;
                span.output_tokens = 300;
                span.cache_read_tokens = 200;
                span.reasoning_tokens = n;
                span.input_cost_nanos = Some(2_500_000);
                span.output_cost_nanos = Some(3_000_000);
                span.total_cost_nanos = Some(5_500_000);
                span.cost_status = 1;
                span.session_id = "s-1".into();
                span.user_id = "u-1".into();
            } else {
                span.tool_name = "search".into();
            }
            out.push(SpanNode {
                span: Arc::new(span),
                full: false,
                depth: Some(i32::from(n != 0)),
                order: Some(i32::try_from(n).expect("order")),
            });
        }
        out.into()
    }

    /// Runs `selection` through both paths, asserts the answers are equal and returns
    /// whether the fast path was taken.
    async fn same_answer(selection: &str, first: i32, after: i32) -> bool {
        let planned = Arc::new(Mutex::new(Vec::new()));
        let both = Both {
            spans: spans(),
            planned: planned.clone(),
        };
        let schema = Schema::new(both, EmptyMutation, EmptySubscription);
        let fragment = if selection.contains("...Skeleton") {
            "fragment Skeleton on Span { spanId depth }"
        } else {
            ""
        };
        let query = format!(
            "{{ fast(first: {first}, after: {after}) {selection} \
               generic(first: {first}, after: {after}) {selection} }} {fragment}"
        );
        let response = schema.execute(query.as_str()).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let data = response.data.into_json().expect("json");
        assert!(data["fast"].is_object(), "{data}");
        assert_eq!(data["fast"], data["generic"], "{selection}");
        // As the HTTP layer asks for it: the planned page is its JSON text.
        let request = async_graphql::Request::new(query.as_str()).data(PreSerialized);
        let response = schema.execute(request).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let Value::Object(fields) = response.data else {
            panic!("data is an object")
        };
        let generic = fields["generic"].clone().into_json().expect("json");
        let fast = match &fields["fast"] {
            Value::Binary(json) => serde_json::from_slice::<serde_json::Value>(json).expect("json"),
            planned_or_not => planned_or_not.clone().into_json().expect("json"),
        };
        assert_eq!(fast, generic, "{selection}");
        let taken = planned.lock().expect("lock").clone();
        assert_eq!(taken.len(), 2);
        assert_eq!(
            matches!(fields["fast"], Value::Binary(_)),
            taken[1],
            "a planned page, and only one, is JSON text"
        );
        taken[0]
    }

    const EVERY_SKELETON_FIELD: &str = "{ __typename totalCount \
        pageInfo { __typename hasNextPage endCursor } \
        edges { __typename cursor node { __typename traceId spanId parentSpanId depth order \
          name kind service startTime endTime latencyMs \
          status { __typename code message } model provider \
          tokens { __typename input output cacheRead cacheWrite reasoning total } \
          cost { __typename input output total status } sessionId userId toolName } } }";

    #[tokio::test]
    async fn every_skeleton_field_renders_as_the_resolvers_answer() {
        assert!(same_answer(EVERY_SKELETON_FIELD, 5, 0).await);
        assert!(same_answer(EVERY_SKELETON_FIELD, 2, 1).await);
        assert!(
            same_answer(EVERY_SKELETON_FIELD, 3, 4).await,
            "a short last page"
        );
        assert!(
            same_answer(EVERY_SKELETON_FIELD, 3, 9).await,
            "past the end"
        );
    }

    #[tokio::test]
    async fn aliases_and_fragments_are_rendered() {
        let aliased = "{ n: totalCount edges { c: cursor s: node { id: spanId \
            t: tokens { all: total } ...Skeleton ... on Span { name } } } }";
        assert!(same_answer(aliased, 3, 1).await);
    }

    #[tokio::test]
    async fn other_selections_take_the_generic_path() {
        for selection in [
            // Loads the full span: needs the loader.
            "{ edges { node { spanId tags } } }",
            // One key twice: the selections would have to be merged.
            "{ edges { node { tokens { input } tokens { total } } } }",
        ] {
            let both = Both {
                spans: spans(),
                planned: Arc::new(Mutex::new(Vec::new())),
            };
            let planned = both.planned.clone();
            let schema = Schema::new(both, EmptyMutation, EmptySubscription);
            // An empty page: the full span cannot be loaded here (no store); the plan is the point.
            let query = format!("{{ fast(first: 0, after: 0) {selection} }}");
            let response = schema.execute(query.as_str()).await;
            assert!(response.errors.is_empty(), "{:?}", response.errors);
            assert_eq!(*planned.lock().expect("lock"), vec![false], "{selection}");
        }
        let merged = "{ edges { node { tokens { input } tokens { total } } } }";
        assert!(!same_answer(merged, 2, 0).await);
    }

    #[tokio::test]
    async fn skipped_fields_are_left_out() {
        // async-graphql drops `@skip`/`@include` selections before resolving: the plan sees
        // what remains.
        let skipped = "{ totalCount edges { node { spanId @skip(if: true) name \
            ...Skeleton @include(if: false) } } }";
        assert!(same_answer(skipped, 2, 0).await);
    }
}
