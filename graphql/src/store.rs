//! Every read of ClickHouse: SQL text with `?` placeholders and values bound by the
//! `clickhouse` crate, never spliced in. Reads of `spans` use `FINAL` (or `sign`-weighted
//! aggregates) so a replaced span counts once; `traces` and `usage_hourly` are summed.

use std::time::Duration;

use crate::error::ApiError;

pub mod analytics;
pub mod spans;
pub mod traces;

/// The read models of one database.
#[derive(Clone)]
pub struct Store {
    client: clickhouse::Client,
    /// The same client without the `clickhouse` crate's row validation (rows read as plain
    /// `RowBinary`, not checked column by column against the row type): for the hot path of
    /// big reads whose columns are all cast explicitly in the SQL (a trace's skeletons), where
    /// validation cost a fifth of the read. The integration tests read those rows from the
    /// real schema, so a row type that drifts from its query still fails there.
    unchecked: clickhouse::Client,
    timeout: Duration,
}

impl Store {
    /// `client` must already point at the database holding `spans`.
    pub fn new(client: clickhouse::Client, timeout: Duration) -> Self {
        Self {
            unchecked: client.clone().with_validation(false),
            client,
            timeout,
        }
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    async fn fetch_all<T>(&self, sql: Sql) -> Result<Vec<T>, ApiError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.fetch_with(&self.client, sql).await
    }

    /// [`Store::fetch_all`] without row validation (see `unchecked`).
    async fn fetch_all_unchecked<T>(&self, sql: Sql) -> Result<Vec<T>, ApiError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        self.fetch_with(&self.unchecked, sql).await
    }

    async fn fetch_with<T>(&self, client: &clickhouse::Client, sql: Sql) -> Result<Vec<T>, ApiError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        // The engine stops on its own when the API gives up, so abandoned queries and their
        // retries never pile up behind new ones.
        let query = sql
            .into_query(client)
            .with_option("max_execution_time", self.timeout.as_secs_f64().to_string());
        match tokio::time::timeout(self.timeout, query.fetch_all::<T>()).await {
            Ok(Ok(rows)) => Ok(rows),
            // The engine's own limit (code 159) can fire just before ours.
            Ok(Err(e)) if e.to_string().contains("TIMEOUT_EXCEEDED") => {
                Err(ApiError::Timeout(self.timeout_ms()))
            }
            Ok(Err(e)) => Err(ApiError::store(&e)),
            Err(_) => Err(ApiError::Timeout(self.timeout_ms())),
        }
    }
}

/// A bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Str(String),
    Int(i64),
    Strs(Vec<String>),
}

/// SQL under construction: text and the values of its `?`s, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pub text: String,
    pub binds: Vec<Bind>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            binds: Vec::new(),
        }
    }

    /// Appends text with no placeholders.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends text holding as many `?` as `binds`, bound in order.
    pub fn push_bound(&mut self, text: &str, binds: impl IntoIterator<Item = Bind>) -> &mut Self {
        self.text.push_str(text);
        self.binds.extend(binds);
        self
    }

    /// Appends another fragment with its binds.
    pub fn append(&mut self, other: Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.binds.extend(other.binds);
        self
    }

    fn into_query(self, client: &clickhouse::Client) -> clickhouse::query::Query {
        debug_assert_eq!(
            self.text.matches('?').count(),
            self.binds.len(),
            "placeholders and binds of {}",
            self.text
        );
        let mut query = client.query(&self.text);
        for bind in self.binds {
            query = match bind {
                Bind::Str(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
                Bind::Strs(v) => query.bind(v),
            };
        }
        query
    }
}

/// Helpers for binds.
pub fn s(value: impl Into<String>) -> Bind {
    Bind::Str(value.into())
}

pub fn i(value: i64) -> Bind {
    Bind::Int(value)
}

/// `value` units of 10^-`decimals` as the engine prints a decimal: no trailing zeros, no
/// point for whole numbers.
pub fn decimal_text(value: i128, decimals: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let scale = 10u128.pow(decimals);
    let abs = value.unsigned_abs();
    let width = usize::try_from(decimals).unwrap_or(0);
    let fraction = format!("{:0width$}", abs % scale);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{}", abs / scale)
    } else {
        format!("{sign}{}.{fraction}", abs / scale)
    }
}

/// A decimal amount of USD as text, checked so it can be bound into `toDecimal128(?, 12)`.
pub fn decimal(value: &str) -> Result<Bind, ApiError> {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value.chars().filter(|c| *c == '.').count() <= 1
        && value
            .trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.');
    if ok {
        Ok(Bind::Str(value.to_owned()))
    } else {
        Err(ApiError::BadUserInput(format!(
            "`{value}` is not a decimal amount"
        )))
    }
}
