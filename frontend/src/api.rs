//! The one GraphQL client: every query the screens make, over `POST /graphql` on the page's
//! own origin with the key in `x-api-key`, and the subscriptions (`live`) over
//! graphql-transport-ws at `/graphql/ws`.

mod live;

use std::fmt;

use gloo_net::http::Request;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::model::{
    Connection, MetricPoint, NodeList, Session, Span, Trace, TraceSummary, User, Viewer,
};
use crate::query::{DashboardWindow, ListQuery, TraceListQuery};

pub use live::{Subscription, SubscriptionEvent, subscribe};

/// What the API (or the way to it) answered instead of data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    /// The GraphQL `extensions.code` (`UNAUTHENTICATED`, `FORBIDDEN`, …), when the API gave one.
    pub code: Option<String>,
}

impl ApiError {
    fn transport(message: impl Into<String>) -> ApiError {
        ApiError {
            message: message.into(),
            code: None,
        }
    }

    /// The first error of a GraphQL `errors` array.
    fn from_errors(errors: &Value) -> Option<ApiError> {
        let first = errors.as_array()?.first()?;
        Some(ApiError {
            message: first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the API answered with an error")
                .to_owned(),
            code: first
                .pointer("/extensions/code")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{} ({code})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Runs one GraphQL operation and decodes its `data`.
pub async fn execute<T: DeserializeOwned>(
    key: &str,
    query: &str,
    variables: Value,
) -> Result<T, ApiError> {
    let response = Request::post("/graphql")
        .header("x-api-key", key)
        .json(&json!({"query": query, "variables": variables}))
        .map_err(|e| ApiError::transport(format!("could not encode the request: {e}")))?
        .send()
        .await
        .map_err(|e| ApiError::transport(format!("the API could not be reached: {e}")))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|_| {
        ApiError::transport(format!(
            "the API answered HTTP {status} without GraphQL JSON"
        ))
    })?;
    if let Some(error) = body.get("errors").and_then(ApiError::from_errors) {
        return Err(error);
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    serde_json::from_value(data)
        .map_err(|e| ApiError::transport(format!("unexpected answer from the API: {e}")))
}

/// The fields of a span the tree and the waterfall need. Kept to the minimum: the server
/// counts a page's complexity as its size times these fields (`graphql.max_complexity`).
pub const TREE_FIELDS: &str =
    "spanId parentSpanId depth name kind startTime endTime latencyMs status { code } model";

/// The fields of a span without its message bodies, attributes and events.
pub const SPAN_SKELETON: &str = "traceId spanId parentSpanId depth order name kind service \
    startTime endTime latencyMs status { code message } model provider \
    tokens { input output cacheRead cacheWrite reasoning total } \
    cost { input output total status } sessionId userId toolName";

const TRACE_SUMMARY: &str = "traceId name service startTime endTime latencyMs spanCount \
    errorCount llmSpanCount tokens { input output cacheRead cacheWrite reasoning total } \
    totalCost unknownCostSpans sessionId userId models tags hasError";

/// Who `key` speaks for.
pub async fn viewer(key: &str) -> Result<Viewer, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        viewer: Viewer,
    }
    let data: Data = execute(
        key,
        "query { viewer { workspaceId projectId keyPrefix scopes } }",
        Value::Null,
    )
    .await?;
    Ok(data.viewer)
}

/// One page of the traces list.
pub async fn traces(
    key: &str,
    project: &str,
    query: &TraceListQuery,
    page_size: usize,
    now_ms: i64,
) -> Result<Connection<TraceSummary>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        traces: Connection<TraceSummary>,
    }
    let text = format!(
        "query($p: String!, $f: TraceFilterInput, $o: TraceOrderInput, $first: Int, $after: String) {{
          traces(projectId: $p, filter: $f, orderBy: $o, first: $first, after: $after) {{
            edges {{ cursor node {{ {TRACE_SUMMARY} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let variables = json!({
        "p": project, "f": query.filter(now_ms), "o": query.order(),
        "first": page_size, "after": query.after(),
    });
    Ok(execute::<Data>(key, &text, variables).await?.traces)
}

/// The most common models of the project, for the model filter.
pub async fn models(key: &str, project: &str) -> Result<Vec<String>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Item {
        value: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        filter_values: Vec<Item>,
    }
    let data: Data = execute(
        key,
        "query($p: String!) { filterValues(projectId: $p, field: MODEL, first: 50) { value } }",
        json!({"p": project}),
    )
    .await?;
    Ok(data.filter_values.into_iter().map(|v| v.value).collect())
}

/// One page of a trace's spans in tree order (the summary with the first page), with the
/// tree's fields only.
pub async fn trace_page(
    key: &str,
    project: &str,
    trace_id: &str,
    after: Option<&str>,
    page_size: usize,
) -> Result<Option<Trace>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        trace: Option<Trace>,
    }
    let summary = if after.is_none() {
        format!("summary {{ {TRACE_SUMMARY} }} truncated")
    } else {
        String::new()
    };
    let text = format!(
        "query($p: String!, $t: String!, $first: Int, $after: String) {{
          trace(projectId: $p, traceId: $t) {{ traceId {summary}
            spans(first: $first, after: $after) {{ totalCount
              edges {{ node {{ {TREE_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }} }} }} }}"
    );
    let variables = json!({"p": project, "t": trace_id, "first": page_size, "after": after});
    Ok(execute::<Data>(key, &text, variables).await?.trace)
}

/// One span in full: messages, attributes, events.
pub async fn span(
    key: &str,
    project: &str,
    trace_id: &str,
    span_id: &str,
) -> Result<Option<Span>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        span: Option<Span>,
    }
    let text = format!(
        "query($p: String!, $t: String!, $s: String!) {{
          span(projectId: $p, traceId: $t, spanId: $s) {{ {SPAN_SKELETON}
            inputMessages outputMessages messagesTruncated toolCallId toolArguments tags
            attributes {{ key value }} resourceAttributes {{ key value }}
            events {{ time name attributes {{ key value }} }} rawPointer }} }}"
    );
    let variables = json!({"p": project, "t": trace_id, "s": span_id});
    Ok(execute::<Data>(key, &text, variables).await?.span)
}

/// One page of sessions.
pub async fn sessions(
    key: &str,
    project: &str,
    query: &ListQuery,
    now_ms: i64,
) -> Result<NodeList<Session>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        sessions: NodeList<Session>,
    }
    let text = "query($p: String!, $r: TimeRange, $after: String) {
      sessions(projectId: $p, timeRange: $r, first: 50, after: $after) {
        nodes { id userId traceCount spanCount errorCount totalTokens totalCost firstSeen lastSeen }
        pageInfo { hasNextPage endCursor } } }";
    let variables = json!({"p": project, "r": query.range.range(now_ms), "after": query.after()});
    Ok(execute::<Data>(key, text, variables).await?.sessions)
}

/// One session with its LLM turns and their messages, over the last 30 days.
pub async fn session(
    key: &str,
    project: &str,
    session_id: &str,
    now_ms: i64,
) -> Result<Option<Session>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        session: Option<Session>,
    }
    let text = "query($p: String!, $s: String!, $r: TimeRange) {
      session(projectId: $p, sessionId: $s, timeRange: $r) {
        id userId traceCount spanCount errorCount totalTokens totalCost firstSeen lastSeen
        turns(first: 200) { traceId spanId name model startTime latencyMs status { code message }
          tokens { total } cost { total status } inputMessages outputMessages } } }";
    let range = crate::query::TimePreset::Days30.range(now_ms);
    let variables = json!({"p": project, "s": session_id, "r": range});
    Ok(execute::<Data>(key, text, variables).await?.session)
}

/// One page of users.
pub async fn users(
    key: &str,
    project: &str,
    query: &ListQuery,
    now_ms: i64,
) -> Result<NodeList<User>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Data {
        users: NodeList<User>,
    }
    let text = "query($p: String!, $r: TimeRange, $after: String) {
      users(projectId: $p, timeRange: $r, first: 50, after: $after) {
        nodes { id traceCount sessionCount spanCount errorCount totalTokens totalCost firstSeen lastSeen }
        pageInfo { hasNextPage endCursor } } }";
    let variables = json!({"p": project, "r": query.range.range(now_ms), "after": query.after()});
    Ok(execute::<Data>(key, text, variables).await?.users)
}

/// The dashboard's series: all spans per bucket, and per model.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    pub overall: Vec<MetricPoint>,
    pub by_model: Vec<MetricPoint>,
}

pub async fn metrics(
    key: &str,
    project: &str,
    window: DashboardWindow,
    now_ms: i64,
) -> Result<Metrics, ApiError> {
    let fields = "time group spanCount errorCount errorRate tokens { input output cacheRead \
        cacheWrite reasoning total } totalCost unknownCostSpans latencyP50Ms latencyP95Ms latencyP99Ms";
    let text = format!(
        "query($p: String!, $r: TimeRange!, $g: MetricsGranularity!) {{
          overall: metrics(projectId: $p, timeRange: $r, granularity: $g, groupBy: NONE) {{ {fields} }}
          byModel: metrics(projectId: $p, timeRange: $r, granularity: $g, groupBy: MODEL, kinds: [LLM, EMBEDDING]) {{ {fields} }} }}"
    );
    let variables = json!({"p": project, "r": window.range(now_ms), "g": window.granularity()});
    execute(key, &text, variables).await
}

/// The `liveTraces` subscription's text.
pub fn live_traces_subscription() -> String {
    "subscription($p: String!, $f: LiveTraceFilter) { liveTraces(projectId: $p, filter: $f) {
      kind missed trace { traceId name service startTime endTime latencyMs spanCount errorCount
        tokens { total } totalCost models sessionId userId status } } }"
        .to_owned()
}

/// The `traceUpdates` subscription's text: span skeletons, like the tree's pages.
pub fn trace_updates_subscription() -> String {
    format!(
        "subscription($p: String!, $t: String!) {{ traceUpdates(projectId: $p, traceId: $t) {{
          kind spanCount missed span {{ {SPAN_SKELETON} }} }} }}"
    )
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The browser's offset from UTC in minutes east, for showing local times.
pub fn utc_offset_minutes() -> i64 {
    -(js_sys::Date::new_0().get_timezone_offset() as i64)
}
