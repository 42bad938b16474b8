//! The traces list's view state — filters, sort, page and live mode — as it lives in the URL
//! query string, and as the API's `TraceFilterInput`, `TraceOrderInput` and `LiveTraceFilter`.
//! Pure: the URL pairs come in decoded and go out unencoded (the router encodes them).

use serde_json::{Map, Value, json};

/// How far back the list looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePreset {
    Minutes15,
    Hour1,
    #[default]
    Hours24,
    Days7,
    Days30,
}

impl TimePreset {
    pub const ALL: [TimePreset; 5] = [
        TimePreset::Minutes15,
        TimePreset::Hour1,
        TimePreset::Hours24,
        TimePreset::Days7,
        TimePreset::Days30,
    ];

    /// The URL value.
    pub fn code(self) -> &'static str {
        match self {
            TimePreset::Minutes15 => "15m",
            TimePreset::Hour1 => "1h",
            TimePreset::Hours24 => "24h",
            TimePreset::Days7 => "7d",
            TimePreset::Days30 => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TimePreset::Minutes15 => "Last 15 minutes",
            TimePreset::Hour1 => "Last hour",
            TimePreset::Hours24 => "Last 24 hours",
            TimePreset::Days7 => "Last 7 days",
            TimePreset::Days30 => "Last 30 days",
        }
    }

    pub fn from_code(code: &str) -> Option<TimePreset> {
        TimePreset::ALL.into_iter().find(|p| p.code() == code)
    }

    pub fn millis(self) -> i64 {
        const MINUTE: i64 = 60_000;
        match self {
            TimePreset::Minutes15 => 15 * MINUTE,
            TimePreset::Hour1 => 60 * MINUTE,
            TimePreset::Hours24 => 24 * 60 * MINUTE,
            TimePreset::Days7 => 7 * 24 * 60 * MINUTE,
            TimePreset::Days30 => 30 * 24 * 60 * MINUTE,
        }
    }

    /// The API's `TimeRange` ending a minute from `now_ms` (so traces arriving while the page
    /// is open are in it).
    pub fn range(self, now_ms: i64) -> Value {
        json!({
            "from": crate::datetime::format_millis(now_ms - self.millis()),
            "to": crate::datetime::format_millis(now_ms + 60_000),
        })
    }
}

/// A sort key of the list (the API's `TraceOrderField`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    #[default]
    StartTime,
    Latency,
    Cost,
    Tokens,
}

impl SortField {
    pub const ALL: [SortField; 4] = [
        SortField::StartTime,
        SortField::Latency,
        SortField::Cost,
        SortField::Tokens,
    ];

    pub fn code(self) -> &'static str {
        match self {
            SortField::StartTime => "start",
            SortField::Latency => "latency",
            SortField::Cost => "cost",
            SortField::Tokens => "tokens",
        }
    }

    pub fn api(self) -> &'static str {
        match self {
            SortField::StartTime => "START_TIME",
            SortField::Latency => "LATENCY",
            SortField::Cost => "COST",
            SortField::Tokens => "TOKENS",
        }
    }

    pub fn from_code(code: &str) -> Option<SortField> {
        SortField::ALL.into_iter().find(|f| f.code() == code)
    }
}

/// Whether to keep traces with or without errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFilter {
    Only,
    Without,
}

/// Everything the traces list shows, as held in the URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceListQuery {
    pub range: TimePreset,
    pub name_contains: String,
    pub model: String,
    pub user: String,
    pub session: String,
    pub errors: Option<ErrorFilter>,
    pub search: String,
    pub sort: SortField,
    pub ascending: bool,
    /// The `after` cursor of each page visited past the first: the last one is the current
    /// page's, popping one goes back a page.
    pub cursors: Vec<String>,
    pub live: bool,
}

impl TraceListQuery {
    /// Reads decoded URL pairs; unknown keys and bad values fall back to the defaults.
    pub fn from_pairs(pairs: &[(String, String)]) -> TraceListQuery {
        let mut query = TraceListQuery::default();
        for (key, value) in pairs {
            let value = value.trim();
            match key.as_str() {
                "range" => query.range = TimePreset::from_code(value).unwrap_or_default(),
                "name" => query.name_contains = value.to_owned(),
                "model" => query.model = value.to_owned(),
                "user" => query.user = value.to_owned(),
                "session" => query.session = value.to_owned(),
                "errors" => {
                    query.errors = match value {
                        "only" => Some(ErrorFilter::Only),
                        "none" => Some(ErrorFilter::Without),
                        _ => None,
                    }
                }
                "q" => query.search = value.to_owned(),
                "sort" => query.sort = SortField::from_code(value).unwrap_or_default(),
                "dir" => query.ascending = value == "asc",
                "after" if !value.is_empty() => query.cursors.push(value.to_owned()),
                "live" => query.live = value == "1",
                _ => {}
            }
        }
        query
    }

    /// The URL pairs, defaults left out, in a fixed order.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut push = |key: &str, value: &str| pairs.push((key.to_owned(), value.to_owned()));
        if self.range != TimePreset::default() {
            push("range", self.range.code());
        }
        for (key, value) in [
            ("name", &self.name_contains),
            ("model", &self.model),
            ("user", &self.user),
            ("session", &self.session),
            ("q", &self.search),
        ] {
            if !value.is_empty() {
                push(key, value);
            }
        }
        match self.errors {
            Some(ErrorFilter::Only) => push("errors", "only"),
            Some(ErrorFilter::Without) => push("errors", "none"),
            None => {}
        }
        if self.sort != SortField::default() {
            push("sort", self.sort.code());
        }
        if self.ascending {
            push("dir", "asc");
        }
        for cursor in &self.cursors {
            push("after", cursor);
        }
        if self.live {
            push("live", "1");
        }
        pairs
    }

    /// The API's `TraceFilterInput`.
    pub fn filter(&self, now_ms: i64) -> Value {
        let mut filter = Map::new();
        filter.insert("timeRange".into(), self.range.range(now_ms));
        let mut text = |key: &str, value: &str| {
            if !value.is_empty() {
                filter.insert(key.into(), Value::String(value.to_owned()));
            }
        };
        text("nameContains", &self.name_contains);
        text("userId", &self.user);
        text("sessionId", &self.session);
        text("search", &self.search);
        if !self.model.is_empty() {
            filter.insert("models".into(), json!([self.model]));
        }
        if let Some(errors) = self.errors {
            filter.insert("hasError".into(), Value::Bool(errors == ErrorFilter::Only));
        }
        Value::Object(filter)
    }

    /// The API's `TraceOrderInput`.
    pub fn order(&self) -> Value {
        json!({
            "field": self.sort.api(),
            "direction": if self.ascending { "ASC" } else { "DESC" },
        })
    }

    /// The API's `LiveTraceFilter`: the conditions a live summary can answer.
    pub fn live_filter(&self) -> Value {
        let mut filter = Map::new();
        if !self.model.is_empty() {
            filter.insert("models".into(), json!([self.model]));
        }
        for (key, value) in [
            ("nameContains", &self.name_contains),
            ("sessionId", &self.session),
            ("userId", &self.user),
        ] {
            if !value.is_empty() {
                filter.insert(key.into(), Value::String(value.clone()));
            }
        }
        if self.errors == Some(ErrorFilter::Only) {
            filter.insert("errorsOnly".into(), Value::Bool(true));
        }
        Value::Object(filter)
    }

    /// The `after` cursor of the current page.
    pub fn after(&self) -> Option<&str> {
        self.cursors.last().map(String::as_str)
    }

    /// The page after this one, which starts after `end_cursor`.
    pub fn next_page(&self, end_cursor: &str) -> TraceListQuery {
        let mut next = self.clone();
        next.cursors.push(end_cursor.to_owned());
        next
    }

    /// The page before this one; the first page stays the first.
    pub fn previous_page(&self) -> TraceListQuery {
        let mut previous = self.clone();
        previous.cursors.pop();
        previous
    }

    /// This view with `change` applied to its filters or sort: back to the first page, since
    /// cursors belong to one ordering.
    pub fn refined(&self, change: impl FnOnce(&mut TraceListQuery)) -> TraceListQuery {
        let mut refined = self.clone();
        change(&mut refined);
        refined.cursors.clear();
        refined
    }
}

/// A plain list's view state (sessions, users): its time range and page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub range: TimePreset,
    pub cursors: Vec<String>,
}

impl Default for ListQuery {
    fn default() -> ListQuery {
        ListQuery {
            range: TimePreset::Days7,
            cursors: Vec::new(),
        }
    }
}

impl ListQuery {
    pub fn from_pairs(pairs: &[(String, String)]) -> ListQuery {
        let mut query = ListQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "range" => query.range = TimePreset::from_code(value).unwrap_or(TimePreset::Days7),
                "after" if !value.is_empty() => query.cursors.push(value.clone()),
                _ => {}
            }
        }
        query
    }

    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if self.range != TimePreset::Days7 {
            pairs.push(("range".to_owned(), self.range.code().to_owned()));
        }
        for cursor in &self.cursors {
            pairs.push(("after".to_owned(), cursor.clone()));
        }
        pairs
    }

    pub fn after(&self) -> Option<&str> {
        self.cursors.last().map(String::as_str)
    }

    pub fn next_page(&self, end_cursor: &str) -> ListQuery {
        let mut next = self.clone();
        next.cursors.push(end_cursor.to_owned());
        next
    }

    pub fn previous_page(&self) -> ListQuery {
        let mut previous = self.clone();
        previous.cursors.pop();
        previous
    }

    /// Another range, from the first page.
    pub fn with_range(&self, range: TimePreset) -> ListQuery {
        ListQuery {
            range,
            cursors: Vec::new(),
        }
    }
}

/// The dashboard's window: the last day by hour or the last 30 days by day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DashboardWindow {
    #[default]
    Day,
    Month,
}

impl DashboardWindow {
    pub fn from_pairs(pairs: &[(String, String)]) -> DashboardWindow {
        match pairs.iter().find(|(key, _)| key == "window") {
            Some((_, value)) if value == "30d" => DashboardWindow::Month,
            _ => DashboardWindow::Day,
        }
    }

    pub fn to_pairs(self) -> Vec<(String, String)> {
        match self {
            DashboardWindow::Day => Vec::new(),
            DashboardWindow::Month => vec![("window".to_owned(), "30d".to_owned())],
        }
    }

    /// The API's `MetricsGranularity`.
    pub fn granularity(self) -> &'static str {
        match self {
            DashboardWindow::Day => "HOUR",
            DashboardWindow::Month => "DAY",
        }
    }

    /// Length of one bucket in milliseconds.
    pub fn step_millis(self) -> i64 {
        match self {
            DashboardWindow::Day => 3_600_000,
            DashboardWindow::Month => 86_400_000,
        }
    }

    /// The bucket starts (Unix ms, UTC-aligned) covering the window that ends at `now_ms`:
    /// 24 hours or 30 days, the current bucket last.
    pub fn buckets(self, now_ms: i64) -> Vec<i64> {
        let step = self.step_millis();
        let count = match self {
            DashboardWindow::Day => 24,
            DashboardWindow::Month => 30,
        };
        let current = now_ms.div_euclid(step) * step;
        (0..count).rev().map(|n| current - n * step).collect()
    }

    /// The API's `TimeRange` of the buckets.
    pub fn range(self, now_ms: i64) -> Value {
        let buckets = self.buckets(now_ms);
        let from = buckets.first().copied().unwrap_or(now_ms);
        let to = buckets.last().copied().unwrap_or(now_ms) + self.step_millis();
        json!({
            "from": crate::datetime::format_millis(from),
            "to": crate::datetime::format_millis(to),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn round_trips_through_the_url() {
        let query = TraceListQuery {
            range: TimePreset::Days7,
            name_contains: "agent".into(),
            model: "gpt-4o".into(),
            user: "u1".into(),
            session: "s 1&2".into(),
            errors: Some(ErrorFilter::Only),
            search: "refund".into(),
            sort: SortField::Cost,
            ascending: true,
            cursors: vec!["c1".into(), "c2".into()],
            live: true,
        };
        assert_eq!(TraceListQuery::from_pairs(&query.to_pairs()), query);
        assert_eq!(
            TraceListQuery::from_pairs(&TraceListQuery::default().to_pairs()),
            TraceListQuery::default()
        );
        assert!(TraceListQuery::default().to_pairs().is_empty());
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let query = TraceListQuery::from_pairs(&pairs(&[
            ("range", "5y"),
            ("sort", "mood"),
            ("errors", "maybe"),
            ("after", ""),
            ("utm", "x"),
        ]));
        assert_eq!(query, TraceListQuery::default());
    }

    #[test]
    fn builds_the_api_inputs() {
        let query = TraceListQuery::from_pairs(&pairs(&[
            ("range", "1h"),
            ("model", "gpt-4o"),
            ("errors", "none"),
            ("q", "refund"),
            ("sort", "latency"),
        ]));
        let filter = query.filter(3_600_000);
        assert_eq!(
            filter,
            json!({
                "timeRange": {"from": "1970-01-01T00:00:00.000Z", "to": "1970-01-01T01:01:00.000Z"},
                "models": ["gpt-4o"],
                "hasError": false,
                "search": "refund",
            })
        );
        assert_eq!(
            query.order(),
            json!({"field": "LATENCY", "direction": "DESC"})
        );
        assert_eq!(query.live_filter(), json!({"models": ["gpt-4o"]}));
    }

    #[test]
    fn pages_with_a_cursor_stack() {
        let first = TraceListQuery::default();
        assert_eq!(first.after(), None);
        let second = first.next_page("a");
        let third = second.next_page("b");
        assert_eq!(third.after(), Some("b"));
        assert_eq!(third.previous_page(), second);
        assert_eq!(second.previous_page(), first);
        assert_eq!(first.previous_page(), first);
        let refined = third.refined(|q| q.model = "m".into());
        assert!(refined.cursors.is_empty());
        assert_eq!(refined.model, "m");
    }

    #[test]
    fn lists_keep_range_and_pages() {
        let list = ListQuery::default()
            .with_range(TimePreset::Days30)
            .next_page("x");
        assert_eq!(ListQuery::from_pairs(&list.to_pairs()), list);
        assert_eq!(list.after(), Some("x"));
        assert!(ListQuery::default().to_pairs().is_empty());
    }

    #[test]
    fn dashboard_buckets_end_with_the_current_one() {
        let now = 1_795_770_000_000 + 1_234; // 2026-11-27T09:00:01.234Z
        let hours = DashboardWindow::Day.buckets(now);
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[23], 1_795_770_000_000);
        assert_eq!(hours[0], 1_795_770_000_000 - 23 * 3_600_000);
        assert_eq!(
            DashboardWindow::Day.range(now),
            json!({"from": "2026-11-26T10:00:00.000Z", "to": "2026-11-27T10:00:00.000Z"})
        );
        let days = DashboardWindow::Month.buckets(now);
        assert_eq!(days.len(), 30);
        assert_eq!(days[29] % 86_400_000, 0);
        assert_eq!(
            DashboardWindow::from_pairs(&DashboardWindow::Month.to_pairs()),
            DashboardWindow::Month
        );
    }
}
