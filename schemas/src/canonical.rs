//! The canonical, LLM-aware span: one [`EnrichedSpan`] per span on `spans.enriched`, as a
//! hand-written prost message, carrying every column of the ClickHouse `spans` table
//! (`migrations/sql/0001_spans.sql`) except the sink's own (`retention_days`, `ingested_at`,
//! `version`, `sign`).
//!
//! Whatever convention the producer used (OpenTelemetry GenAI, OpenInference, Traceloop, the
//! Vercel AI SDK), the processor maps it to this one shape. It also serializes to JSON (serde),
//! which the golden tests snapshot.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use crate::raw::ArchivePointer;

/// The version written in every new [`EnrichedSpan`]; readers reject versions they do not know.
pub const ENRICHED_SPAN_VERSION: u32 = 1;

/// One Kafka record on `spans.enriched`, keyed `<project_id>/<trace_id>` like `spans.raw`.
///
/// Token buckets are disjoint: `input_tokens` counts only input read neither from nor into a
/// prompt cache, `output_tokens` only output that is not reasoning; the five add up to what the
/// provider billed.
///
/// Costs are integer nano-dollars (1e-9 USD). `None` means unknown — the model is not in the
/// price table, or the span carries no usage, or the provider reported only a total — and is
/// never written as 0; `cost_status` says which. `total_cost_nanos` equals the sum of the other
/// two whenever both are known.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct EnrichedSpan {
    /// Payload version ([`ENRICHED_SPAN_VERSION`]).
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// The processor's logic version, so a replay can tell which spans it would change.
    #[prost(uint32, tag = "2")]
    pub processor_version: u32,
    #[prost(string, tag = "3")]
    pub workspace_id: String,
    #[prost(string, tag = "4")]
    pub project_id: String,
    /// When the gateway received the span (Unix nanoseconds).
    #[prost(fixed64, tag = "5")]
    pub received_at_unix_nano: u64,
    /// Lowercase hex, 32 characters.
    #[prost(string, tag = "6")]
    pub trace_id: String,
    /// Lowercase hex, 16 characters.
    #[prost(string, tag = "7")]
    pub span_id: String,
    /// Lowercase hex, empty for a root span.
    #[prost(string, tag = "8")]
    pub parent_span_id: String,
    #[prost(string, tag = "9")]
    pub name: String,
    #[prost(enumeration = "SpanKind", tag = "10")]
    #[serde(serialize_with = "span_kind_name")]
    pub kind: i32,
    /// The resource's `service.name`.
    #[prost(string, tag = "11")]
    pub service: String,
    #[prost(fixed64, tag = "12")]
    pub start_time_unix_nano: u64,
    #[prost(fixed64, tag = "13")]
    pub end_time_unix_nano: u64,
    #[prost(uint64, tag = "14")]
    pub duration_ns: u64,
    #[prost(enumeration = "StatusCode", tag = "15")]
    #[serde(serialize_with = "status_code_name")]
    pub status_code: i32,
    #[prost(string, tag = "16")]
    pub status_message: String,
    /// The model that answered (the response model when reported, else the requested one).
    #[prost(string, tag = "17")]
    pub model: String,
    /// Who served the request, normalized (`openai`, `anthropic`, `google`, `bedrock`, …).
    #[prost(string, tag = "18")]
    pub provider: String,
    /// Uncached input tokens.
    #[prost(uint64, tag = "19")]
    pub input_tokens: u64,
    /// Output tokens other than reasoning.
    #[prost(uint64, tag = "20")]
    pub output_tokens: u64,
    #[prost(uint64, tag = "21")]
    pub cache_read_tokens: u64,
    #[prost(uint64, tag = "22")]
    pub cache_write_tokens: u64,
    #[prost(uint64, tag = "23")]
    pub reasoning_tokens: u64,
    /// Nano-dollars for uncached input, cache reads and cache writes; `None` when unknown.
    #[prost(int64, optional, tag = "24")]
    pub input_cost_nanos: Option<i64>,
    /// Nano-dollars for output and reasoning; `None` when unknown.
    #[prost(int64, optional, tag = "25")]
    pub output_cost_nanos: Option<i64>,
    /// Nano-dollars in all; `None` when unknown.
    #[prost(int64, optional, tag = "26")]
    pub total_cost_nanos: Option<i64>,
    #[prost(enumeration = "CostStatus", tag = "27")]
    #[serde(serialize_with = "cost_status_name")]
    pub cost_status: i32,
    /// The `version` of the price table the cost came from (empty when not computed).
    #[prost(string, tag = "28")]
    pub price_table_version: String,
    /// Canonical message JSON: `[{"role", "content", "tool_calls"?, "tool_call_id"?}, …]`,
    /// capped in size (see `messages_truncated`); empty when the span carries none.
    #[prost(string, tag = "29")]
    pub input_messages: String,
    #[prost(string, tag = "30")]
    pub output_messages: String,
    /// Whether messages or tool arguments were cut to fit; the full payload is in the archive
    /// object `raw` points to.
    #[prost(bool, tag = "31")]
    pub messages_truncated: bool,
    #[prost(string, tag = "32")]
    pub tool_name: String,
    #[prost(string, tag = "33")]
    pub tool_call_id: String,
    /// The tool call's arguments as sent (usually JSON text).
    #[prost(string, tag = "34")]
    pub tool_arguments: String,
    #[prost(string, tag = "35")]
    pub session_id: String,
    #[prost(string, tag = "36")]
    pub user_id: String,
    #[prost(string, repeated, tag = "37")]
    pub tags: Vec<String>,
    /// The span's attributes as text (arrays and maps as JSON), without the message payloads
    /// already carried by the message and tool columns.
    #[prost(btree_map = "string, string", tag = "38")]
    pub attributes: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "39")]
    pub resource_attributes: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "40")]
    pub events: Vec<SpanEvent>,
    #[prost(message, repeated, tag = "41")]
    pub links: Vec<SpanLink>,
    /// Where the request that carried the span is archived in S3.
    #[prost(message, optional, tag = "42")]
    #[serde(serialize_with = "archive_pointer")]
    pub raw: Option<ArchivePointer>,
    /// Size of the span as received (protobuf bytes).
    #[prost(uint32, tag = "43")]
    pub span_bytes: u32,
}

/// A span event.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct SpanEvent {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub attributes: BTreeMap<String, String>,
}

/// A link to another span, ids in lowercase hex.
#[derive(Clone, PartialEq, Eq, prost::Message, Serialize)]
pub struct SpanLink {
    #[prost(string, tag = "1")]
    pub trace_id: String,
    #[prost(string, tag = "2")]
    pub span_id: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub attributes: BTreeMap<String, String>,
}

/// What a span does, whatever convention named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SpanKind {
    /// None of the below.
    Other = 0,
    /// A model call producing text (chat, completion, generate content).
    Llm = 1,
    Embedding = 2,
    Tool = 3,
    Agent = 4,
    /// A workflow, task or pipeline step around other spans.
    Chain = 5,
    /// Retrieval, reranking, vector search.
    Retrieval = 6,
    Http = 7,
    Db = 8,
}

/// The span's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum StatusCode {
    Unset = 0,
    Ok = 1,
    Error = 2,
}

/// How the cost columns were filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CostStatus {
    /// The span reports no token usage (or is not a model call): costs are `None`.
    NoUsage = 0,
    /// Tokens × the price table.
    Computed = 1,
    /// The producer reported the cost; it wins over the table.
    ProviderReported = 2,
    /// Usage but no price for the model (or no model): costs are `None`, never 0.
    UnknownModel = 3,
}

impl SpanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Other => "other",
            SpanKind::Llm => "llm",
            SpanKind::Embedding => "embedding",
            SpanKind::Tool => "tool",
            SpanKind::Agent => "agent",
            SpanKind::Chain => "chain",
            SpanKind::Retrieval => "retrieval",
            SpanKind::Http => "http",
            SpanKind::Db => "db",
        }
    }

    /// Whether spans of this kind carry the token usage and cost of a model call. Other kinds
    /// (an agent or a workflow around model calls) may report their children's totals; those
    /// are not counted again.
    pub fn carries_usage(self) -> bool {
        matches!(self, SpanKind::Llm | SpanKind::Embedding)
    }
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

impl CostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CostStatus::NoUsage => "no_usage",
            CostStatus::Computed => "computed",
            CostStatus::ProviderReported => "provider_reported",
            CostStatus::UnknownModel => "unknown_model",
        }
    }
}

impl EnrichedSpan {
    /// The Kafka key: `<project_id>/<trace_id>`, as on `spans.raw`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.project_id, self.trace_id)
    }

    /// The `raw_pointer` column: `s3://<bucket>/<key>#<index>`, empty when not archived.
    pub fn raw_pointer(&self) -> String {
        self.raw.as_ref().map_or_else(String::new, |p| {
            format!("s3://{}/{}#{}", p.bucket, p.key, p.index)
        })
    }
}

fn span_kind_name<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(SpanKind::try_from(*value).map_or("unknown", SpanKind::as_str))
}

fn status_code_name<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(StatusCode::try_from(*value).map_or("unknown", StatusCode::as_str))
}

fn cost_status_name<S: Serializer>(value: &i32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(CostStatus::try_from(*value).map_or("unknown", CostStatus::as_str))
}

fn archive_pointer<S: Serializer>(
    value: &Option<ArchivePointer>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Pointer<'a> {
        bucket: &'a str,
        key: &'a str,
        index: u32,
    }
    value
        .as_ref()
        .map(|p| Pointer {
            bucket: &p.bucket,
            key: &p.key,
            index: p.index,
        })
        .serialize(serializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn sample() -> EnrichedSpan {
        EnrichedSpan {
            version: ENRICHED_SPAN_VERSION,
            project_id: "p".into(),
            trace_id: "5b8efff798038103d269b633813fc60c".into(),
            span_id: "eee19b7ec3c1b174".into(),
            kind: SpanKind::Llm as i32,
            status_code: StatusCode::Error as i32,
            cost_status: CostStatus::UnknownModel as i32,
            input_tokens: 10,
            input_cost_nanos: None,
            output_cost_nanos: Some(0),
            attributes: BTreeMap::from([("a".to_owned(), "1".to_owned())]),
            events: vec![SpanEvent {
                time_unix_nano: 7,
                name: "e".into(),
                attributes: BTreeMap::new(),
            }],
            raw: Some(ArchivePointer {
                bucket: "b".into(),
                key: "raw/p/k.pb".into(),
                index: 2,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips_through_protobuf_keeping_unknown_costs_apart_from_zero() {
        let span = sample();
        let decoded = EnrichedSpan::decode(span.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, span);
        assert_eq!(decoded.input_cost_nanos, None);
        assert_eq!(decoded.output_cost_nanos, Some(0));
        assert_eq!(decoded.kind(), SpanKind::Llm);
    }

    #[test]
    fn serializes_enums_by_name() {
        let json = serde_json::to_value(sample()).expect("serializes");
        assert_eq!(json["kind"], "llm");
        assert_eq!(json["status_code"], "error");
        assert_eq!(json["cost_status"], "unknown_model");
        assert_eq!(json["input_cost_nanos"], serde_json::Value::Null);
        assert_eq!(json["raw"]["index"], 2);
    }

    #[test]
    fn names_the_key_and_the_raw_pointer() {
        let span = sample();
        assert_eq!(span.key(), "p/5b8efff798038103d269b633813fc60c");
        assert_eq!(span.raw_pointer(), "s3://b/raw/p/k.pb#2");
        assert_eq!(EnrichedSpan::default().raw_pointer(), "");
    }

    #[test]
    fn only_model_calls_carry_usage() {
        assert!(SpanKind::Llm.carries_usage());
        assert!(SpanKind::Embedding.carries_usage());
        assert!(!SpanKind::Agent.carries_usage());
        assert!(!SpanKind::Chain.carries_usage());
    }
}
