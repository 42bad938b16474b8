//! OTLP span → canonical [`EnrichedSpan`]: a pure function of the raw batch, the span and the
//! price tables.
//!
//! Every convention maps to the one record: span kind ([`kind`]), model and provider
//! ([`model`]), token usage in disjoint buckets ([`tokens`]), cost ([`cost`]), messages and tool
//! calls ([`payload`], reading [`genai`], [`openinference`], [`traceloop`] and [`vercel`]), and
//! session, user and tags ([`session`]). Identity, timing, status, resource, events and links
//! are copied; message payloads are capped ([`cap`]; the archive keeps them whole).
//!
//! Only model calls (`llm`, `embedding`) carry tokens and cost. Agent, chain and workflow spans
//! that report their children's totals (the Vercel AI SDK's `ai.generateText` around its
//! `doGenerate` calls, GenAI `invoke_agent`) would otherwise count them twice in the trace.

mod attrs;
mod cap;
mod cost;
mod genai;
mod kind;
mod messages;
mod model;
mod openinference;
mod payload;
mod session;
mod tokens;
mod traceloop;
mod vercel;

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde::Deserialize;
use spindle_schemas::canonical::{
    CostStatus, ENRICHED_SPAN_VERSION, EnrichedSpan, SpanEvent, SpanLink, StatusCode,
};
use spindle_schemas::prices::PriceTable;
use spindle_schemas::raw::RawSpanBatch;

use attrs::Attrs;

/// The version of this mapping, recorded in every record; bump it when the output for the same
/// input changes, so a replay knows which stored spans to rewrite.
pub const PROCESSOR_VERSION: u32 = 1;

/// Limits of the normalization.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Cap on each of `input_messages`, `output_messages` and `tool_arguments`, in bytes.
    pub max_message_bytes: usize,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            max_message_bytes: 64 * 1024,
        }
    }
}

/// [`normalize_with`] under the default limits.
pub fn normalize(
    batch: &RawSpanBatch,
    span: &Span,
    prices: &PriceTable,
    overrides: Option<&PriceTable>,
) -> EnrichedSpan {
    normalize_with(batch, span, prices, overrides, &NormalizeConfig::default())
}

/// The canonical record of `span`, one of `batch.spans`. `prices` is the embedded table
/// ([`PriceTable::embedded`]); `overrides` the project's own prices, consulted first.
pub fn normalize_with(
    batch: &RawSpanBatch,
    span: &Span,
    prices: &PriceTable,
    overrides: Option<&PriceTable>,
    config: &NormalizeConfig,
) -> EnrichedSpan {
    let attrs = Attrs::new(&span.attributes);
    let resource_attributes = batch
        .resource
        .as_ref()
        .map_or(&[][..], |r| r.attributes.as_slice());
    let resource = Attrs::new(resource_attributes);

    let kind = kind::classify(&attrs, &span.name);
    let model = model::model(&attrs);
    let mut provider = model::provider(&attrs);
    // Prices apply at the span's start; a span without one is priced when it arrived.
    let priced_at = match span.start_time_unix_nano {
        0 => batch.received_at_unix_nano,
        start => start,
    };
    let usage = if kind.carries_usage() {
        tokens::usage(&attrs, &provider)
    } else {
        None
    };
    let priced = if kind.carries_usage() {
        let tables = cost::Tables {
            embedded: prices,
            overrides,
        };
        cost::price(&attrs, usage.as_ref(), &model, &provider, priced_at, tables)
    } else {
        cost::Priced {
            input: None,
            output: None,
            total: None,
            status: CostStatus::NoUsage,
            table_version: String::new(),
            maker: None,
        }
    };
    if provider.is_empty()
        && let Some(maker) = &priced.maker
    {
        provider.clone_from(maker);
    }

    let payload = payload::extract(&attrs, &span.events, kind);
    let max = config.max_message_bytes;
    let (input_messages, input_cut) = cap::encode_capped(&payload.input, max);
    let (output_messages, output_cut) = cap::encode_capped(&payload.output, max);
    let tool_arguments = cap::cut(&payload.tool_arguments, max);
    let arguments_cut = tool_arguments.len() < payload.tool_arguments.len();

    let usage = usage.unwrap_or_default();
    let status = span.status.as_ref();
    EnrichedSpan {
        version: ENRICHED_SPAN_VERSION,
        processor_version: PROCESSOR_VERSION,
        workspace_id: batch.workspace_id.clone(),
        project_id: batch.project_id.clone(),
        received_at_unix_nano: batch.received_at_unix_nano,
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: hex::encode(&span.parent_span_id),
        name: span.name.clone(),
        kind: kind as i32,
        service: resource.text("service.name").unwrap_or_default(),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        duration_ns: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano),
        status_code: status_code(status.map_or(0, |s| s.code)) as i32,
        status_message: status.map(|s| s.message.clone()).unwrap_or_default(),
        model,
        provider,
        input_tokens: usage.input,
        output_tokens: usage.output,
        cache_read_tokens: usage.cache_read,
        cache_write_tokens: usage.cache_write,
        reasoning_tokens: usage.reasoning,
        input_cost_nanos: priced.input,
        output_cost_nanos: priced.output,
        total_cost_nanos: priced.total,
        cost_status: priced.status as i32,
        price_table_version: priced.table_version,
        input_messages,
        output_messages,
        messages_truncated: input_cut || output_cut || arguments_cut,
        tool_name: payload.tool_name,
        tool_call_id: payload.tool_call_id,
        tool_arguments: tool_arguments.to_owned(),
        session_id: session::session_id(&attrs, &resource),
        user_id: session::user_id(&attrs, &resource),
        tags: session::tags(&attrs, &resource),
        attributes: span_attributes(batch, span),
        resource_attributes: attrs::text_map(resource_attributes, |_| false),
        events: span
            .events
            .iter()
            .map(|event| SpanEvent {
                time_unix_nano: event.time_unix_nano,
                name: event.name.clone(),
                attributes: attrs::text_map(&event.attributes, |key| {
                    payload::is_payload_event_key(&event.name, key)
                }),
            })
            .collect(),
        links: span
            .links
            .iter()
            .map(|link| SpanLink {
                trace_id: hex::encode(&link.trace_id),
                span_id: hex::encode(&link.span_id),
                attributes: attrs::text_map(&link.attributes, |_| false),
            })
            .collect(),
        raw: batch.archive.clone(),
        span_bytes: u32::try_from(span.encoded_len()).unwrap_or(u32::MAX),
    }
}

/// The span's attributes without the payloads, plus its instrumentation scope under the
/// OpenTelemetry names for non-OTLP formats (`otel.scope.name`, `otel.scope.version`).
fn span_attributes(batch: &RawSpanBatch, span: &Span) -> BTreeMap<String, String> {
    let mut attributes = attrs::text_map(&span.attributes, payload::is_payload_key);
    if let Some(scope) = &batch.scope {
        for (key, value) in [
            ("otel.scope.name", &scope.name),
            ("otel.scope.version", &scope.version),
        ] {
            if !value.is_empty() {
                attributes
                    .entry(key.to_owned())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    attributes
}

fn status_code(code: i32) -> StatusCode {
    StatusCode::try_from(code).unwrap_or(StatusCode::Unset)
}

#[cfg(test)]
mod tests;
