//! Scalars, enums and small objects shared by the schema.

use async_graphql::{
    Enum, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// An instant, RFC 3339 in UTC with nanoseconds (`2026-11-27T09:00:00.123456789Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime(pub i64);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
            InputValueError::custom(format!("`{text}` is not an RFC 3339 date-time: {e}"))
        })?;
        i64::try_from(parsed.unix_timestamp_nanos())
            .map(DateTime)
            .map_err(|_| InputValueError::custom(format!("`{text}` is out of range")))
    }

    fn to_value(&self) -> Value {
        Value::String(format_nanos(self.0))
    }
}

/// RFC 3339 text of Unix nanoseconds.
pub fn format_nanos(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Now, in Unix nanoseconds.
pub fn now_nanos() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// An amount of US dollars as exact decimal text (`"0.00575"`): money never goes through a
/// float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal(pub String);

#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        let text = match &value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        crate::store::decimal(&text)
            .map(|_| Decimal(text.clone()))
            .map_err(|e| InputValueError::custom(e.message()))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

impl Decimal {
    /// Nano-dollars as decimal USD text.
    pub fn from_nanos(nanos: i64) -> Decimal {
        Decimal(crate::store::decimal_text(nanos.into(), 9))
    }
}

/// A time range; `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Copy, InputObject)]
pub struct TimeRange {
    pub from: DateTime,
    pub to: DateTime,
}

/// Default look-back of lists when no range is given.
pub const DEFAULT_RANGE_NS: i64 = 7 * 86_400 * 1_000_000_000;

impl TimeRange {
    /// The range in nanoseconds, or the last seven days (and the next hour, for clock skew).
    pub fn resolve(range: Option<TimeRange>) -> Result<(i64, i64), ApiError> {
        let (from, to) = match range {
            Some(r) => (r.from.0, r.to.0),
            None => {
                let now = now_nanos();
                (now - DEFAULT_RANGE_NS, now + 3_600 * 1_000_000_000)
            }
        };
        if from >= to {
            return Err(ApiError::BadUserInput(format!(
                "inverted time range: `from` ({}) must be before `to` ({})",
                format_nanos(from),
                format_nanos(to)
            )));
        }
        Ok((from, to))
    }
}

/// What a span does, whatever convention named it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum SpanKind {
    Llm,
    Embedding,
    Tool,
    Agent,
    Chain,
    Retrieval,
    Http,
    Db,
    Other,
}

impl SpanKind {
    pub fn from_canonical(kind: i32) -> SpanKind {
        use spindle_schemas::canonical::SpanKind as K;
        match K::try_from(kind).unwrap_or(K::Other) {
            K::Llm => SpanKind::Llm,
            K::Embedding => SpanKind::Embedding,
            K::Tool => SpanKind::Tool,
            K::Agent => SpanKind::Agent,
            K::Chain => SpanKind::Chain,
            K::Retrieval => SpanKind::Retrieval,
            K::Http => SpanKind::Http,
            K::Db => SpanKind::Db,
            K::Other => SpanKind::Other,
        }
    }

    /// The stored name (`llm`, `tool`, …).
    pub fn stored(self) -> &'static str {
        match self {
            SpanKind::Llm => "llm",
            SpanKind::Embedding => "embedding",
            SpanKind::Tool => "tool",
            SpanKind::Agent => "agent",
            SpanKind::Chain => "chain",
            SpanKind::Retrieval => "retrieval",
            SpanKind::Http => "http",
            SpanKind::Db => "db",
            SpanKind::Other => "other",
        }
    }
}

/// A span's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum StatusCode {
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn from_canonical(code: i32) -> StatusCode {
        use spindle_schemas::canonical::StatusCode as S;
        match S::try_from(code).unwrap_or(S::Unset) {
            S::Unset => StatusCode::Unset,
            S::Ok => StatusCode::Ok,
            S::Error => StatusCode::Error,
        }
    }
}

/// How a span's cost was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum CostStatus {
    /// No token usage: no cost.
    NoUsage,
    /// Tokens × the price table.
    Computed,
    /// The producer reported the cost.
    ProviderReported,
    /// Usage, but no price for the model: cost is null, never 0.
    UnknownModel,
}

impl CostStatus {
    pub fn from_canonical(status: i32) -> CostStatus {
        use spindle_schemas::canonical::CostStatus as C;
        match C::try_from(status).unwrap_or(C::NoUsage) {
            C::NoUsage => CostStatus::NoUsage,
            C::Computed => CostStatus::Computed,
            C::ProviderReported => CostStatus::ProviderReported,
            C::UnknownModel => CostStatus::UnknownModel,
        }
    }

    pub fn stored(self) -> &'static str {
        match self {
            CostStatus::NoUsage => "no_usage",
            CostStatus::Computed => "computed",
            CostStatus::ProviderReported => "provider_reported",
            CostStatus::UnknownModel => "unknown_model",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum, Default)]
pub enum OrderDirection {
    Asc,
    #[default]
    Desc,
}

/// Token counts in disjoint buckets.
#[derive(Debug, Clone, Copy, Default, SimpleObject)]
pub struct Tokens {
    /// Input read neither from nor into a prompt cache.
    pub input: i64,
    /// Output other than reasoning.
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    /// All five.
    pub total: i64,
}

impl Tokens {
    pub fn new(input: i64, output: i64, cache_read: i64, cache_write: i64, reasoning: i64) -> Self {
        Self {
            input,
            output,
            cache_read,
            cache_write,
            reasoning,
            total: input + output + cache_read + cache_write + reasoning,
        }
    }
}

/// A key and its value (attributes are text; arrays and maps as JSON).
#[derive(Debug, Clone, SimpleObject)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// A key and a value to match.
#[derive(Debug, Clone, InputObject)]
pub struct KeyValueInput {
    pub key: String,
    pub value: String,
}

/// Where a page stands.
#[derive(Debug, Clone, SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
}

/// `first` checked against the limits.
pub fn page_size(first: Option<i32>, default: usize, max: usize) -> Result<usize, ApiError> {
    match first {
        None => Ok(default),
        Some(n) if n < 1 => Err(ApiError::BadUserInput(format!(
            "`first` must be at least 1 (got {n})"
        ))),
        Some(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > max {
                Err(ApiError::BadUserInput(format!(
                    "`first` may be at most {max} (got {n})"
                )))
            } else {
                Ok(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_exact_decimal_text() {
        assert_eq!(Decimal::from_nanos(5_750_000).0, "0.00575");
        assert_eq!(Decimal::from_nanos(2_000_000_000).0, "2");
        assert_eq!(Decimal::from_nanos(-1).0, "-0.000000001");
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(page_size(None, 50, 200).expect("default"), 50);
        assert_eq!(page_size(Some(200), 50, 200).expect("max"), 200);
        assert!(page_size(Some(201), 50, 200).is_err());
        assert!(page_size(Some(0), 50, 200).is_err());
    }

    #[test]
    fn inverted_ranges_are_refused() {
        let range = TimeRange {
            from: DateTime(2),
            to: DateTime(1),
        };
        let error = TimeRange::resolve(Some(range)).expect_err("inverted");
        assert!(
            error.message().starts_with("inverted time range"),
            "{error:?}"
        );
    }
}
