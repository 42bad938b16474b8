//! Trace summaries: the `traces` table (one row per trace per day, summed at read time),
//! filtered, ordered and keyset-paged. Conditions on the trace's spans (provider, kind,
//! attributes, cost status, text search) become one `trace_id IN (…)` over `spans` in the same
//! time range, using the table's `(project_id, hour)` order.

use clickhouse::Row;
use serde::Deserialize;
use spindle_schemas::canonical::{CostStatus, EnrichedSpan, SpanKind, StatusCode};

use super::{Bind, Sql, Store, decimal, i, s};
use crate::cursor::Cursor;
use crate::error::ApiError;

/// Slack after `to` for spans of traces that started inside the range.
const SPAN_SLACK_NS: i64 = 3_600 * 1_000_000_000;

/// What a trace list may be narrowed by. Empty lists and `None` do not narrow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceFilter {
    /// Trace start, Unix nanoseconds: `from` inclusive, `to` exclusive.
    pub from_ns: i64,
    pub to_ns: i64,
    /// The root span's name, exactly or as a case-insensitive substring.
    pub name: Option<String>,
    pub name_contains: Option<String>,
    /// `Some(true)`: only traces with an error span; `Some(false)`: only traces without.
    pub has_error: Option<bool>,
    pub models: Vec<String>,
    pub providers: Vec<String>,
    pub kinds: Vec<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// Every tag must be present.
    pub tags: Vec<String>,
    /// Each pair must match a span attribute or a resource attribute of some span.
    pub attributes: Vec<(String, String)>,
    /// USD, decimal text.
    pub min_cost: Option<String>,
    pub max_cost: Option<String>,
    pub min_latency_ms: Option<i64>,
    pub max_latency_ms: Option<i64>,
    pub min_tokens: Option<i64>,
    pub max_tokens: Option<i64>,
    /// Some span has this `cost_status` (`computed`, `provider_reported`, `unknown_model`, …).
    pub cost_status: Option<String>,
    /// Case-insensitive text in some span's input or output messages.
    pub search: Option<String>,
}

/// Sort keys of a trace list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOrder {
    StartTime,
    Latency,
    Cost,
    Tokens,
}

impl TraceOrder {
    fn expr(self) -> &'static str {
        match self {
            TraceOrder::StartTime => "start_ns",
            TraceOrder::Latency => "latency_ns",
            TraceOrder::Cost => "cost_dec",
            TraceOrder::Tokens => "total_tokens",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TraceOrder::StartTime => "START_TIME",
            TraceOrder::Latency => "LATENCY",
            TraceOrder::Cost => "COST",
            TraceOrder::Tokens => "TOKENS",
        }
    }

    /// The cursor value of a row under this order.
    pub fn value_of(self, row: &TraceRow) -> String {
        match self {
            TraceOrder::StartTime => row.start_ns.to_string(),
            TraceOrder::Latency => (row.end_ns - row.start_ns).to_string(),
            TraceOrder::Cost => row.total_cost.clone(),
            TraceOrder::Tokens => row.total_tokens().to_string(),
        }
    }

    fn bind_value(self, value: &str) -> Result<(String, Bind), ApiError> {
        match self {
            TraceOrder::Cost => Ok(("toDecimal128(?, 12)".into(), decimal(value)?)),
            _ => value
                .parse::<i64>()
                .map(|v| ("?".to_owned(), i(v)))
                .map_err(|_| ApiError::BadUserInput(format!("invalid cursor value `{value}`"))),
        }
    }
}

/// One trace, summed over its rows.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct TraceRow {
    pub trace_id: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub root_name: String,
    pub root_service: String,
    pub root_seen: u8,
    pub n_spans: i64,
    pub errors: i64,
    pub llm_spans: i64,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    /// USD, decimal text.
    pub total_cost: String,
    pub unknown_cost_spans: i64,
    pub session: String,
    pub user: String,
    pub model_list: Vec<String>,
    pub tag_list: Vec<String>,
}

impl TraceRow {
    pub fn total_tokens(&self) -> i64 {
        self.input + self.output + self.cache_read + self.cache_write + self.reasoning
    }
}

const SUMMARY_COLUMNS: &str = "trace_id, \
    toUnixTimestamp64Nano(min(start_time)) AS start_ns, \
    toUnixTimestamp64Nano(max(end_time)) AS end_ns, \
    max(traces.root_name) AS root_name, max(traces.root_service) AS root_service, \
    max(has_root) AS root_seen, \
    sum(span_count) AS n_spans, sum(error_count) AS errors, sum(llm_span_count) AS llm_spans, \
    sum(input_tokens) AS input, sum(output_tokens) AS output, \
    sum(cache_read_tokens) AS cache_read, sum(cache_write_tokens) AS cache_write, \
    sum(reasoning_tokens) AS reasoning, \
    sum(traces.total_cost) AS cost_dec, toString(cost_dec) AS total_cost, \
    sum(traces.unknown_cost_spans) AS unknown_cost_spans, \
    max(session_id) AS session, max(user_id) AS user, \
    groupUniqArrayArray(models) AS model_list, groupUniqArrayArray(tags) AS tag_list, \
    end_ns - start_ns AS latency_ns, \
    input + output + cache_read + cache_write + reasoning AS total_tokens";

/// What a [`TraceRow`] reads, out of the summary subquery (which also computes sort keys).
const ROW_COLUMNS: &str = "trace_id, start_ns, end_ns, root_name, root_service, root_seen, \
    n_spans, errors, llm_spans, input, output, cache_read, cache_write, reasoning, total_cost, \
    unknown_cost_spans, session, user, model_list, tag_list";

/// Which `traces` rows a list sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// Every row of the range's days: for a range read at once.
    Range,
    /// Only the rows of traces with a row that started inside the range: for a window much
    /// narrower than the days it touches.
    Window,
}

/// The SQL of one page: `limit` rows after `after`, summing `rows`.
pub fn list_sql(
    project_id: &str,
    filter: &TraceFilter,
    order: TraceOrder,
    descending: bool,
    after: Option<&Cursor>,
    limit: usize,
    rows: Rows,
) -> Result<Sql, ApiError> {
    let mut sql = Sql::new("SELECT ");
    sql.push(ROW_COLUMNS)
        .push(" FROM (SELECT ")
        .push(SUMMARY_COLUMNS);
    sql.push(" FROM traces")
        .append(trace_rows(project_id, filter));
    if rows == Rows::Window {
        sql.push(" AND trace_id IN (")
            .append(started_in(project_id, filter))
            .push(")");
    }
    if let Some(traces) = owner_conditions(project_id, filter) {
        sql.push(" AND trace_id IN (").append(traces).push(")");
    }
    if let Some(spans) = span_conditions(project_id, filter) {
        sql.push(" AND trace_id IN (").append(spans).push(")");
    }
    sql.push_bound(
        " GROUP BY trace_id) WHERE n_spans > 0 AND start_ns >= ? AND start_ns < ?",
        [i(filter.from_ns), i(filter.to_ns)],
    );
    trace_conditions(&mut sql, filter)?;
    let direction = if descending { "DESC" } else { "ASC" };
    if let Some(cursor) = after {
        let (placeholder, value) = order.bind_value(&cursor.value)?;
        let comparison = if descending { "<" } else { ">" };
        sql.push_bound(
            &format!(
                " AND ({}, trace_id) {comparison} ({placeholder}, ?)",
                order.expr()
            ),
            [value, s(cursor.key.clone())],
        );
    }
    sql.push(&format!(
        " ORDER BY {} {direction}, trace_id {direction} LIMIT {limit}",
        order.expr()
    ));
    Ok(sql)
}

fn trace_conditions(sql: &mut Sql, filter: &TraceFilter) -> Result<(), ApiError> {
    if let Some(name) = &filter.name {
        sql.push_bound(" AND root_name = ?", [s(name.clone())]);
    }
    if let Some(part) = &filter.name_contains {
        sql.push_bound(
            " AND positionCaseInsensitiveUTF8(root_name, ?) > 0",
            [s(part.clone())],
        );
    }
    match filter.has_error {
        Some(true) => sql.push(" AND errors > 0"),
        Some(false) => sql.push(" AND errors = 0"),
        None => sql,
    };
    if !filter.models.is_empty() {
        sql.push_bound(
            " AND hasAny(model_list, ?)",
            [Bind::Strs(filter.models.clone())],
        );
    }
    if let Some(session) = &filter.session_id {
        sql.push_bound(" AND session = ?", [s(session.clone())]);
    }
    if let Some(user) = &filter.user_id {
        sql.push_bound(" AND user = ?", [s(user.clone())]);
    }
    if !filter.tags.is_empty() {
        sql.push_bound(
            " AND hasAll(tag_list, ?)",
            [Bind::Strs(filter.tags.clone())],
        );
    }
    if let Some(min) = &filter.min_cost {
        sql.push_bound(" AND cost_dec >= toDecimal128(?, 12)", [decimal(min)?]);
    }
    if let Some(max) = &filter.max_cost {
        sql.push_bound(" AND cost_dec <= toDecimal128(?, 12)", [decimal(max)?]);
    }
    if let Some(min) = filter.min_latency_ms {
        sql.push_bound(" AND latency_ns >= ?", [i(min.saturating_mul(1_000_000))]);
    }
    if let Some(max) = filter.max_latency_ms {
        sql.push_bound(" AND latency_ns <= ?", [i(max.saturating_mul(1_000_000))]);
    }
    if let Some(min) = filter.min_tokens {
        sql.push_bound(" AND total_tokens >= ?", [i(min)]);
    }
    if let Some(max) = filter.max_tokens {
        sql.push_bound(" AND total_tokens <= ?", [i(max)]);
    }
    Ok(())
}

/// ` WHERE …` for the `traces` rows of `filter`'s range. A trace has a row per day its spans
/// started on (and, until parts merge, one per insert): the day before `from` is read too, so
/// a trace that crossed midnight into the first day is summed whole (and left out when it
/// started before `from`) rather than counted from its second day, and the day after `to`, so
/// a trace that started on the last day and crossed midnight is summed whole.
fn trace_rows(project_id: &str, filter: &TraceFilter) -> Sql {
    let mut sql = Sql::default();
    sql.push_bound(
        " WHERE project_id = ? AND day >= toDate(fromUnixTimestamp64Nano(?)) - 1 \
         AND day <= toDate(fromUnixTimestamp64Nano(?)) + 1",
        [s(project_id), i(filter.from_ns), i(filter.to_ns)],
    );
    sql
}

/// `SELECT trace_id FROM traces …` for the traces with a row that started inside `filter`'s
/// range: every trace that started there has one (the row holding its first span), so
/// summing only their rows gives the same page while the sum's cost follows the window, not
/// the days it touches. The traces that started earlier and also have a row inside are still
/// left out by the start condition after the sum.
fn started_in(project_id: &str, filter: &TraceFilter) -> Sql {
    let mut sql = Sql::default();
    sql.push_bound(
        "SELECT trace_id FROM traces WHERE project_id = ? \
         AND day >= toDate(fromUnixTimestamp64Nano(?)) AND day <= toDate(fromUnixTimestamp64Nano(?)) \
         AND start_time >= fromUnixTimestamp64Nano(?) AND start_time < fromUnixTimestamp64Nano(?)",
        [
            s(project_id),
            i(filter.from_ns),
            i(filter.to_ns),
            i(filter.from_ns),
            i(filter.to_ns),
        ],
    );
    sql
}

/// `SELECT trace_id FROM traces …` for a session or user filter, or `None`. Tested on the rows
/// before they are summed, the `idx_session_id`/`idx_user_id` bloom filters skip the granules
/// of everyone else; the summed `session`/`user` are still tested after the aggregation.
fn owner_conditions(project_id: &str, filter: &TraceFilter) -> Option<Sql> {
    if filter.session_id.is_none() && filter.user_id.is_none() {
        return None;
    }
    let mut sql = Sql::new("SELECT trace_id FROM traces");
    sql.append(trace_rows(project_id, filter));
    if let Some(session) = &filter.session_id {
        sql.push_bound(" AND session_id = ?", [s(session.clone())]);
    }
    if let Some(user) = &filter.user_id {
        sql.push_bound(" AND user_id = ?", [s(user.clone())]);
    }
    Some(sql)
}

/// `SELECT trace_id FROM spans …` for the conditions only spans can answer, or `None`.
fn span_conditions(project_id: &str, filter: &TraceFilter) -> Option<Sql> {
    let mut conditions: Vec<Sql> = Vec::new();
    let mut one = |text: &str, binds: Vec<Bind>| {
        let mut sql = Sql::default();
        sql.push_bound(text, binds);
        conditions.push(sql);
    };
    if !filter.providers.is_empty() {
        one(
            "has(?, toString(provider))",
            vec![Bind::Strs(filter.providers.clone())],
        );
    }
    if !filter.kinds.is_empty() {
        one(
            "has(?, toString(kind))",
            vec![Bind::Strs(filter.kinds.clone())],
        );
    }
    for (key, value) in &filter.attributes {
        one(
            "(attributes[?] = ? OR resource_attributes[?] = ?)",
            vec![
                s(key.clone()),
                s(value.clone()),
                s(key.clone()),
                s(value.clone()),
            ],
        );
    }
    if let Some(status) = &filter.cost_status {
        one("cost_status = ?", vec![s(status.clone())]);
    }
    if let Some(text) = &filter.search {
        one(
            "(positionCaseInsensitiveUTF8(input_messages, ?) > 0 \
             OR positionCaseInsensitiveUTF8(output_messages, ?) > 0)",
            vec![s(text.clone()), s(text.clone())],
        );
    }
    if conditions.is_empty() {
        return None;
    }
    let mut sql = Sql::default();
    sql.push_bound(
        "SELECT trace_id FROM spans WHERE project_id = ? \
         AND start_time >= fromUnixTimestamp64Nano(?) AND start_time < fromUnixTimestamp64Nano(?) \
         AND sign = 1 GROUP BY trace_id HAVING ",
        [
            s(project_id),
            i(filter.from_ns),
            i(filter.to_ns.saturating_add(SPAN_SLACK_NS)),
        ],
    );
    // Each condition may be met by a different span of the trace.
    for (n, condition) in conditions.into_iter().enumerate() {
        if n > 0 {
            sql.push(" AND ");
        }
        sql.push("countIf(").append(condition).push(") > 0");
    }
    Some(sql)
}

/// The first time window a list by start time reads; each next one is [`WIDEN`] times wider.
const FIRST_WINDOW_NS: i64 = 3_600 * 1_000_000_000;
const WIDEN: i64 = 8;
/// The widest window whose traces are found before they are summed ([`Rows::Window`]); a
/// wider one sums its days' rows outright, which costs less than the set of its trace ids.
const WINDOW_ROWS_MAX_NS: i64 = 2 * 24 * 3_600 * 1_000_000_000;

/// One page of trace summaries.
///
/// Summing a trace's rows is the cost of a list, and it grows with the range. Ordered by start
/// time, a page can only hold the traces nearest the end it starts from, so the newest (or
/// oldest) hour is read first and the window widens until it fills the page or covers the
/// range: a full page from a narrower window is exactly the page of the whole range. Lists of
/// one user or session read the range at once.
pub async fn list(
    store: &Store,
    project_id: &str,
    filter: &TraceFilter,
    order: TraceOrder,
    descending: bool,
    after: Option<&Cursor>,
    limit: usize,
) -> Result<Vec<TraceRow>, ApiError> {
    // A user or session narrows the rows before the sum: one pass over the range is cheaper
    // than widening windows.
    let narrow = filter.user_id.is_some() || filter.session_id.is_some();
    if order != TraceOrder::StartTime || narrow {
        let sql = list_sql(
            project_id,
            filter,
            order,
            descending,
            after,
            limit,
            Rows::Range,
        )?;
        return store.fetch_all(sql).await;
    }
    let now = crate::schema::types::now_nanos();
    let mut width = FIRST_WINDOW_NS;
    loop {
        let (window, whole) = start_window(filter, descending, after, width, now);
        let rows = if window.to_ns - window.from_ns <= WINDOW_ROWS_MAX_NS {
            Rows::Window
        } else {
            Rows::Range
        };
        let sql = list_sql(project_id, &window, order, descending, after, limit, rows)?;
        let rows: Vec<TraceRow> = store.fetch_all(sql).await?;
        if whole || rows.len() >= limit {
            return Ok(rows);
        }
        width = width.saturating_mul(WIDEN);
    }
}

/// The part of `filter`'s range a start-time page reads with a window of `width`, and whether
/// that is all of what is left of the range. Newest first, a window reaches back `width` from
/// `now` when the range ends later (the default range ends an hour ahead, for clock skew):
/// the time after `now` holds next to nothing, and the first window would be spent on it.
fn start_window(
    filter: &TraceFilter,
    descending: bool,
    after: Option<&Cursor>,
    width: i64,
    now: i64,
) -> (TraceFilter, bool) {
    // The keyset condition keeps starts at or beyond the cursor's; a cursor that does not
    // parse is refused by `list_sql`.
    let cursor = after.and_then(|c| c.value.parse::<i64>().ok());
    let (from, to) = if descending {
        let to = cursor.map_or(filter.to_ns, |c| c.saturating_add(1).min(filter.to_ns));
        (to.min(now).saturating_sub(width).max(filter.from_ns), to)
    } else {
        let from = cursor.map_or(filter.from_ns, |c| c.max(filter.from_ns));
        (from, from.saturating_add(width).min(filter.to_ns))
    };
    let whole = if descending {
        from <= filter.from_ns
    } else {
        to >= filter.to_ns
    };
    let window = TraceFilter {
        from_ns: from,
        to_ns: to.max(from),
        ..filter.clone()
    };
    (window, whole)
}

/// One trace's summary, if any of its spans are stored.
pub async fn summary(
    store: &Store,
    project_id: &str,
    trace_id: &str,
) -> Result<Option<TraceRow>, ApiError> {
    let mut sql = Sql::new("SELECT ");
    sql.push(ROW_COLUMNS)
        .push(" FROM (SELECT ")
        .push(SUMMARY_COLUMNS)
        .push_bound(
        " FROM traces WHERE project_id = ? AND trace_id = ? GROUP BY trace_id) WHERE n_spans > 0",
        [s(project_id), s(trace_id)],
    );
    Ok(store.fetch_all(sql).await?.into_iter().next())
}

/// The summary of a trace computed from all its live spans, as the `traces_mv` materialized
/// view sums them (sign-weighted sums over live rows are plain sums over the rows of
/// `spans FINAL`), so `trace(…)` reads a trace it returns whole with one query instead of two.
/// `total_cost` is the exact sum of the spans' costs ([`super::spans::Skeletons`]). Tests
/// check it against [`summary`] on stored traces. `None` for no spans.
pub fn summary_of(trace_id: &str, spans: &[EnrichedSpan], total_cost: String) -> Option<TraceRow> {
    let first = spans.first()?;
    let mut row = TraceRow {
        trace_id: trace_id.to_owned(),
        start_ns: i64::MAX,
        end_ns: i64::MIN,
        root_name: String::new(),
        root_service: String::new(),
        root_seen: 0,
        n_spans: 0,
        errors: 0,
        llm_spans: 0,
        input: 0,
        output: 0,
        cache_read: 0,
        cache_write: 0,
        reasoning: 0,
        total_cost: String::new(),
        unknown_cost_spans: 0,
        session: first.session_id.clone(),
        user: first.user_id.clone(),
        model_list: Vec::new(),
        tag_list: Vec::new(),
    };
    let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut models = std::collections::BTreeSet::new();
    let mut tags = std::collections::BTreeSet::new();
    for span in spans {
        row.start_ns = row.start_ns.min(signed(span.start_time_unix_nano));
        row.end_ns = row.end_ns.max(signed(span.end_time_unix_nano));
        if span.parent_span_id.is_empty() {
            row.root_seen = 1;
            row.root_name = row.root_name.max(span.name.clone());
            row.root_service = row.root_service.max(span.service.clone());
        }
        row.n_spans += 1;
        row.errors += i64::from(span.status_code == StatusCode::Error as i32);
        row.llm_spans += i64::from(span.kind == SpanKind::Llm as i32);
        row.input += signed(span.input_tokens);
        row.output += signed(span.output_tokens);
        row.cache_read += signed(span.cache_read_tokens);
        row.cache_write += signed(span.cache_write_tokens);
        row.reasoning += signed(span.reasoning_tokens);
        row.unknown_cost_spans += i64::from(span.cost_status == CostStatus::UnknownModel as i32);
        if span.session_id > row.session {
            row.session.clone_from(&span.session_id);
        }
        if span.user_id > row.user {
            row.user.clone_from(&span.user_id);
        }
        if !span.model.is_empty() {
            models.insert(span.model.as_str());
        }
        tags.extend(span.tags.iter().map(String::as_str));
    }
    row.total_cost = total_cost;
    row.model_list = models.into_iter().map(str::to_owned).collect();
    row.tag_list = tags.into_iter().map(str::to_owned).collect();
    Some(row)
}

/// The span count the sink vouched for when it found the trace fully stored, if it has.
pub async fn persisted(
    store: &Store,
    project_id: &str,
    trace_id: &str,
) -> Result<Option<u64>, ApiError> {
    let mut sql = Sql::default();
    sql.push_bound(
        "SELECT span_count FROM trace_lifecycle FINAL WHERE project_id = ? AND trace_id = ? LIMIT 1",
        [s(project_id), s(trace_id)],
    );
    let rows: Vec<u64> = store.fetch_all(sql).await?;
    Ok(rows.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL of a first page of 10, newest first.
    fn newest(filter: &TraceFilter, rows: Rows) -> Sql {
        list_sql("p", filter, TraceOrder::StartTime, true, None, 10, rows).expect("sql")
    }

    fn day() -> TraceFilter {
        TraceFilter {
            from_ns: 1_764_201_600_000_000_000,
            to_ns: 1_764_288_000_000_000_000,
            ..TraceFilter::default()
        }
    }

    #[test]
    fn placeholders_match_binds_and_no_value_is_spliced() {
        let filter = TraceFilter {
            name_contains: Some("'; DROP TABLE spans; --".into()),
            models: vec!["gpt-4o".into()],
            providers: vec!["openai".into()],
            attributes: vec![("env".into(), "prod".into())],
            min_cost: Some("0.5".into()),
            search: Some("refund".into()),
            has_error: Some(true),
            ..day()
        };
        let after = Cursor {
            ordering: "x".into(),
            value: "0.25".into(),
            key: "ab".into(),
        };
        let sql = list_sql(
            "p",
            &filter,
            TraceOrder::Cost,
            true,
            Some(&after),
            51,
            Rows::Range,
        )
        .expect("sql");
        assert_eq!(
            sql.text.matches('?').count(),
            sql.binds.len(),
            "{}",
            sql.text
        );
        assert!(!sql.text.contains("DROP"), "{}", sql.text);
        assert!(
            sql.text
                .contains("(cost_dec, trace_id) < (toDecimal128(?, 12), ?)")
        );
        assert!(
            sql.text
                .ends_with("ORDER BY cost_dec DESC, trace_id DESC LIMIT 51")
        );
        assert!(
            sql.text
                .contains("countIf(has(?, toString(provider))) > 0 AND countIf(")
        );
    }

    #[test]
    fn trace_level_filters_need_no_span_scan() {
        let filter = TraceFilter {
            models: vec!["gpt-4o".into()],
            session_id: Some("s".into()),
            ..day()
        };
        let sql = list_sql(
            "p",
            &filter,
            TraceOrder::StartTime,
            false,
            None,
            10,
            Rows::Range,
        )
        .expect("sql");
        assert!(!sql.text.contains("FROM spans"), "{}", sql.text);
        assert!(
            sql.text
                .ends_with("ORDER BY start_ns ASC, trace_id ASC LIMIT 10")
        );
    }

    #[test]
    fn user_and_session_filters_narrow_the_rows_before_summing() {
        let filter = TraceFilter {
            user_id: Some("u-1".into()),
            ..day()
        };
        let sql = newest(&filter, Rows::Range);
        let inner = sql
            .text
            .find("trace_id IN (SELECT trace_id FROM traces")
            .expect("pre-filter");
        assert!(inner < sql.text.find("GROUP BY trace_id").expect("aggregation"));
        assert!(sql.text.contains("AND user_id = ?"), "{}", sql.text);
        assert!(sql.text.contains("AND user = ?"), "{}", sql.text);
        assert_eq!(sql.text.matches('?').count(), sql.binds.len());
    }

    #[test]
    fn a_window_sums_only_the_traces_that_started_in_it() {
        let filter = TraceFilter {
            models: vec!["gpt-4o".into()],
            ..day()
        };
        let sql = newest(&filter, Rows::Window);
        let started = sql
            .text
            .find("AND trace_id IN (SELECT trace_id FROM traces WHERE project_id = ?")
            .expect("started-in set");
        assert!(started < sql.text.find("GROUP BY trace_id").expect("aggregation"));
        assert!(
            sql.text
                .contains("AND start_time >= fromUnixTimestamp64Nano(?)")
        );
        // The start condition after the sum still leaves out traces that started earlier.
        assert!(
            sql.text
                .contains("WHERE n_spans > 0 AND start_ns >= ? AND start_ns < ?")
        );
        assert_eq!(sql.text.matches('?').count(), sql.binds.len());
        let whole = newest(&filter, Rows::Range);
        assert!(!whole.text.contains("start_time >="), "{}", whole.text);
    }

    #[test]
    fn start_time_windows_widen_from_the_end_a_page_starts_at() {
        let range = day();
        let hour = FIRST_WINDOW_NS;
        let now = range.to_ns;
        let (newest, whole) = start_window(&range, true, None, hour, now);
        assert_eq!(
            (newest.from_ns, newest.to_ns),
            (range.to_ns - hour, range.to_ns)
        );
        assert!(!whole);
        // A range that ends after now reads back from now, up to the range's end.
        let (skewed, _) = start_window(&range, true, None, hour, now - 2 * hour);
        assert_eq!(
            (skewed.from_ns, skewed.to_ns),
            (range.to_ns - 3 * hour, range.to_ns)
        );
        let (oldest, _) = start_window(&range, false, None, hour, now);
        assert_eq!(
            (oldest.from_ns, oldest.to_ns),
            (range.from_ns, range.from_ns + hour)
        );
        // After a cursor, the window starts at the cursor's start (inclusive).
        let after = Cursor {
            ordering: "x".into(),
            value: (range.to_ns - 10 * hour).to_string(),
            key: "ab".into(),
        };
        let (next, _) = start_window(&range, true, Some(&after), hour, now);
        assert_eq!(next.to_ns, range.to_ns - 10 * hour + 1);
        assert_eq!(next.from_ns, next.to_ns - hour);
        // A window wider than what is left covers the rest, and says so.
        let (all, whole) = start_window(&range, true, Some(&after), 100 * hour, now);
        assert_eq!(all.from_ns, range.from_ns);
        assert!(whole);
        let (all, whole) = start_window(&range, false, None, 100 * hour, now);
        assert_eq!(all.to_ns, range.to_ns);
        assert!(whole);
    }

    #[test]
    fn bad_cursor_values_and_amounts_are_refused() {
        let after = Cursor {
            ordering: "x".into(),
            value: "not-a-number".into(),
            key: "ab".into(),
        };
        let error = list_sql(
            "p",
            &day(),
            TraceOrder::StartTime,
            true,
            Some(&after),
            5,
            Rows::Range,
        )
        .expect_err("bad cursor value");
        assert_eq!(error.code(), "BAD_USER_INPUT");
        let filter = TraceFilter {
            min_cost: Some("1; DROP".into()),
            ..day()
        };
        assert!(
            list_sql(
                "p",
                &filter,
                TraceOrder::StartTime,
                true,
                None,
                5,
                Rows::Window
            )
            .is_err()
        );
    }
}
