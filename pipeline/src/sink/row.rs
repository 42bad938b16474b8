//! Canonical span ↔ ClickHouse `spans` row (`migrations/sql/0001_spans.sql`), the one conversion
//! file of that boundary.
//!
//! [`SpanRow`] has exactly the table's columns, in its order, typed as the `clickhouse` crate
//! reads and writes them losslessly: `DateTime64` as raw ticks (`i64` nanoseconds, `ingested_at`
//! in milliseconds), `Decimal(18, 12)` as its raw `i64` scaled by 1e12, `Nullable` as `Option`,
//! `Map` as `BTreeMap`, and each `Nested` field as its own array column (`events.time`, …). A
//! row read back is therefore byte-for-byte what was written, which the sign protocol needs:
//! the `-1` row that cancels a stored span must repeat it exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spindle_schemas::canonical::{
    CostStatus, ENRICHED_SPAN_VERSION, EnrichedSpan, SpanKind, StatusCode,
};

/// One row of `spans`: one version of one span.
#[derive(Clone, Debug, PartialEq, Eq, clickhouse::Row, Serialize, Deserialize)]
pub struct SpanRow {
    pub project_id: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: String,
    pub service: String,
    /// Unix nanoseconds (`DateTime64(9, 'UTC')` ticks).
    pub start_time: i64,
    pub end_time: i64,
    pub duration_ns: u64,
    pub status_code: String,
    pub status_message: String,
    pub model: String,
    pub provider: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    /// USD scaled by 1e12 (`Decimal(18, 12)`), i.e. nano-dollars × 1000; `None` when unknown.
    pub input_cost: Option<i64>,
    pub output_cost: Option<i64>,
    pub total_cost: Option<i64>,
    pub cost_status: String,
    pub input_messages: String,
    pub output_messages: String,
    pub messages_truncated: bool,
    pub tool_name: String,
    pub tool_call_id: String,
    pub tool_arguments: String,
    pub session_id: String,
    pub user_id: String,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub resource_attributes: BTreeMap<String, String>,
    #[serde(rename = "events.time")]
    pub events_time: Vec<i64>,
    #[serde(rename = "events.name")]
    pub events_name: Vec<String>,
    #[serde(rename = "events.attributes")]
    pub events_attributes: Vec<BTreeMap<String, String>>,
    #[serde(rename = "links.trace_id")]
    pub links_trace_id: Vec<String>,
    #[serde(rename = "links.span_id")]
    pub links_span_id: Vec<String>,
    #[serde(rename = "links.attributes")]
    pub links_attributes: Vec<BTreeMap<String, String>>,
    pub raw_pointer: String,
    pub span_bytes: u32,
    pub retention_days: u16,
    /// Unix milliseconds (`DateTime64(3, 'UTC')` ticks).
    pub ingested_at: i64,
    pub version: u64,
    pub sign: i8,
}

/// What identifies a span across its versions (and across tenants: the project comes first).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanKey {
    pub project_id: String,
    pub trace_id: String,
    pub span_id: String,
}

/// Why a canonical span cannot become a row. Permanent: the record never will.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("enriched span version {found} is not supported (this sink reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("`{field}` is empty")]
    MissingId { field: &'static str },
    #[error("`{field}` = {value} is not a known value")]
    UnknownEnum { field: &'static str, value: i32 },
    #[error("`{field}` = {nanos} nano-dollars does not fit `Decimal(18, 12)` (|USD| < 1e6)")]
    CostOutOfRange { field: &'static str, nanos: i64 },
    #[error("`{field}` = {nanos} ns is past 2262-04-11, the end of `DateTime64(9)`")]
    TimeOutOfRange { field: &'static str, nanos: u64 },
}

/// `Decimal(18, 12)` holds 18 digits: |raw| ≤ 10^18 − 1.
const DECIMAL_18_MAX: i64 = 999_999_999_999_999_999;
/// Raw `Decimal(18, 12)` units per nano-dollar (1e12 / 1e9).
const DECIMAL_PER_NANO: i64 = 1_000;

impl SpanRow {
    /// The row for `span`, with the sink's own columns given.
    pub fn from_enriched(
        span: &EnrichedSpan,
        version: u64,
        sign: i8,
        retention_days: u16,
        ingested_at_ms: i64,
    ) -> Result<SpanRow, RowError> {
        if span.version != ENRICHED_SPAN_VERSION {
            return Err(RowError::UnsupportedVersion {
                found: span.version,
                supported: ENRICHED_SPAN_VERSION,
            });
        }
        for (field, value) in [
            ("project_id", &span.project_id),
            ("trace_id", &span.trace_id),
            ("span_id", &span.span_id),
        ] {
            if value.is_empty() {
                return Err(RowError::MissingId { field });
            }
        }
        let kind = SpanKind::try_from(span.kind).map_err(|_| RowError::UnknownEnum {
            field: "kind",
            value: span.kind,
        })?;
        let status = StatusCode::try_from(span.status_code).map_err(|_| RowError::UnknownEnum {
            field: "status_code",
            value: span.status_code,
        })?;
        let cost_status =
            CostStatus::try_from(span.cost_status).map_err(|_| RowError::UnknownEnum {
                field: "cost_status",
                value: span.cost_status,
            })?;
        let mut events_time = Vec::with_capacity(span.events.len());
        for event in &span.events {
            events_time.push(ticks("events.time", event.time_unix_nano)?);
        }
        Ok(SpanRow {
            project_id: span.project_id.clone(),
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
            parent_span_id: span.parent_span_id.clone(),
            name: span.name.clone(),
            kind: kind.as_str().to_owned(),
            service: span.service.clone(),
            start_time: ticks("start_time", span.start_time_unix_nano)?,
            end_time: ticks("end_time", span.end_time_unix_nano)?,
            duration_ns: span.duration_ns,
            status_code: status.as_str().to_owned(),
            status_message: span.status_message.clone(),
            model: span.model.clone(),
            provider: span.provider.clone(),
            input_tokens: span.input_tokens,
            output_tokens: span.output_tokens,
            cache_read_tokens: span.cache_read_tokens,
            cache_write_tokens: span.cache_write_tokens,
            reasoning_tokens: span.reasoning_tokens,
            input_cost: decimal("input_cost", span.input_cost_nanos)?,
            output_cost: decimal("output_cost", span.output_cost_nanos)?,
            total_cost: decimal("total_cost", span.total_cost_nanos)?,
            cost_status: cost_status.as_str().to_owned(),
            input_messages: span.input_messages.clone(),
            output_messages: span.output_messages.clone(),
            messages_truncated: span.messages_truncated,
            tool_name: span.tool_name.clone(),
            tool_call_id: span.tool_call_id.clone(),
            tool_arguments: span.tool_arguments.clone(),
            session_id: span.session_id.clone(),
            user_id: span.user_id.clone(),
            tags: span.tags.clone(),
            attributes: span.attributes.clone(),
            resource_attributes: span.resource_attributes.clone(),
            events_time,
            events_name: span.events.iter().map(|e| e.name.clone()).collect(),
            events_attributes: span.events.iter().map(|e| e.attributes.clone()).collect(),
            links_trace_id: span.links.iter().map(|l| l.trace_id.clone()).collect(),
            links_span_id: span.links.iter().map(|l| l.span_id.clone()).collect(),
            links_attributes: span.links.iter().map(|l| l.attributes.clone()).collect(),
            raw_pointer: span.raw_pointer(),
            span_bytes: span.span_bytes,
            retention_days,
            ingested_at: ingested_at_ms,
            version,
            sign,
        })
    }

    pub fn key(&self) -> SpanKey {
        SpanKey {
            project_id: self.project_id.clone(),
            trace_id: self.trace_id.clone(),
            span_id: self.span_id.clone(),
        }
    }

    /// Whether two rows hold the same span content: every column equal except the sink's
    /// bookkeeping (`version`, `sign`, `ingested_at`). This is "identical" in the sign
    /// protocol: such a span is not written again. The destructuring is exhaustive, so a new
    /// column must be placed on one side or the other to compile.
    pub fn same_content(&self, other: &SpanRow) -> bool {
        let SpanRow {
            project_id,
            trace_id,
            span_id,
            parent_span_id,
            name,
            kind,
            service,
            start_time,
            end_time,
            duration_ns,
            status_code,
            status_message,
            model,
            provider,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
            input_cost,
            output_cost,
            total_cost,
            cost_status,
            input_messages,
            output_messages,
            messages_truncated,
            tool_name,
            tool_call_id,
            tool_arguments,
            session_id,
            user_id,
            tags,
            attributes,
            resource_attributes,
            events_time,
            events_name,
            events_attributes,
            links_trace_id,
            links_span_id,
            links_attributes,
            raw_pointer,
            span_bytes,
            retention_days,
            ingested_at: _,
            version: _,
            sign: _,
        } = self;
        *project_id == other.project_id
            && *trace_id == other.trace_id
            && *span_id == other.span_id
            && *parent_span_id == other.parent_span_id
            && *name == other.name
            && *kind == other.kind
            && *service == other.service
            && *start_time == other.start_time
            && *end_time == other.end_time
            && *duration_ns == other.duration_ns
            && *status_code == other.status_code
            && *status_message == other.status_message
            && *model == other.model
            && *provider == other.provider
            && *input_tokens == other.input_tokens
            && *output_tokens == other.output_tokens
            && *cache_read_tokens == other.cache_read_tokens
            && *cache_write_tokens == other.cache_write_tokens
            && *reasoning_tokens == other.reasoning_tokens
            && *input_cost == other.input_cost
            && *output_cost == other.output_cost
            && *total_cost == other.total_cost
            && *cost_status == other.cost_status
            && *input_messages == other.input_messages
            && *output_messages == other.output_messages
            && *messages_truncated == other.messages_truncated
            && *tool_name == other.tool_name
            && *tool_call_id == other.tool_call_id
            && *tool_arguments == other.tool_arguments
            && *session_id == other.session_id
            && *user_id == other.user_id
            && *tags == other.tags
            && *attributes == other.attributes
            && *resource_attributes == other.resource_attributes
            && *events_time == other.events_time
            && *events_name == other.events_name
            && *events_attributes == other.events_attributes
            && *links_trace_id == other.links_trace_id
            && *links_span_id == other.links_span_id
            && *links_attributes == other.links_attributes
            && *raw_pointer == other.raw_pointer
            && *span_bytes == other.span_bytes
            && *retention_days == other.retention_days
    }

    /// The row that cancels this one: the same columns with `sign = -1`.
    pub fn cancelling(&self) -> SpanRow {
        SpanRow {
            sign: -1,
            ..self.clone()
        }
    }

    /// The stored total cost back in nano-dollars (`None` when unknown).
    pub fn total_cost_nanos(&self) -> Option<i64> {
        self.total_cost.map(|raw| raw / DECIMAL_PER_NANO)
    }
}

impl From<&EnrichedSpan> for SpanKey {
    fn from(span: &EnrichedSpan) -> SpanKey {
        SpanKey {
            project_id: span.project_id.clone(),
            trace_id: span.trace_id.clone(),
            span_id: span.span_id.clone(),
        }
    }
}

/// Nano-dollars to raw `Decimal(18, 12)`, refusing what the column cannot hold.
fn decimal(field: &'static str, nanos: Option<i64>) -> Result<Option<i64>, RowError> {
    nanos
        .map(|n| {
            n.checked_mul(DECIMAL_PER_NANO)
                .filter(|raw| raw.abs() <= DECIMAL_18_MAX)
                .ok_or(RowError::CostOutOfRange { field, nanos: n })
        })
        .transpose()
}

fn ticks(field: &'static str, nanos: u64) -> Result<i64, RowError> {
    i64::try_from(nanos).map_err(|_| RowError::TimeOutOfRange { field, nanos })
}

#[cfg(test)]
mod tests;
