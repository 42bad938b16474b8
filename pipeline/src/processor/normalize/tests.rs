use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Status, status};
use spindle_schemas::raw::ArchivePointer;

use super::attrs::test_support::{i, s};
use super::*;
use spindle_schemas::canonical::SpanKind;

const START: u64 = 1_764_230_400_000_000_000; // 2025-11-27T08:00:00Z

fn batch(spans: Vec<Span>) -> RawSpanBatch {
    RawSpanBatch {
        version: 1,
        workspace_id: "ws".into(),
        project_id: "proj".into(),
        received_at_unix_nano: START + 5_000_000_000,
        resource: Some(Resource {
            attributes: vec![
                s("service.name", "checkout"),
                s("session.id", "from-resource"),
            ],
            ..Default::default()
        }),
        scope: Some(InstrumentationScope {
            name: "opentelemetry.instrumentation.openai".into(),
            version: "0.40.0".into(),
            ..Default::default()
        }),
        spans,
        archive: Some(ArchivePointer {
            bucket: "spindle".into(),
            key: "raw/proj/2025/11/27/08/b.pb".into(),
            index: 1,
        }),
        ..Default::default()
    }
}

fn span(name: &str, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        parent_span_id: vec![0x02; 8],
        name: name.into(),
        start_time_unix_nano: START,
        end_time_unix_nano: START + 1_500_000_000,
        attributes,
        ..Default::default()
    }
}

fn run(span: Span) -> EnrichedSpan {
    let batch = batch(vec![span.clone()]);
    normalize(&batch, &span, PriceTable::embedded(), None)
}

#[test]
fn copies_identity_timing_status_and_context() {
    let mut span = span("chat gpt-4o", vec![s("gen_ai.operation.name", "chat")]);
    span.status = Some(Status {
        message: "rate limited".into(),
        code: status::StatusCode::Error as i32,
    });
    span.events = vec![Event {
        time_unix_nano: START + 1,
        name: "exception".into(),
        attributes: vec![s("exception.message", "429")],
        ..Default::default()
    }];
    span.links = vec![Link {
        trace_id: vec![0xcd; 16],
        span_id: vec![0x03; 8],
        attributes: vec![i("weight", 2)],
        ..Default::default()
    }];
    let record = run(span);
    assert_eq!(record.trace_id, "ab".repeat(16));
    assert_eq!(record.span_id, "0101010101010101");
    assert_eq!(record.parent_span_id, "0202020202020202");
    assert_eq!(record.duration_ns, 1_500_000_000);
    assert_eq!(record.status_code(), StatusCode::Error);
    assert_eq!(record.status_message, "rate limited");
    assert_eq!(record.service, "checkout");
    assert_eq!(record.session_id, "from-resource");
    assert_eq!(record.events[0].attributes["exception.message"], "429");
    assert_eq!(record.links[0].trace_id, "cd".repeat(16));
    assert_eq!(record.links[0].attributes["weight"], "2");
    assert_eq!(
        record.attributes["otel.scope.name"],
        "opentelemetry.instrumentation.openai"
    );
    assert_eq!(
        record.raw_pointer(),
        "s3://spindle/raw/proj/2025/11/27/08/b.pb#1"
    );
    assert_eq!(
        (record.workspace_id.as_str(), record.project_id.as_str()),
        ("ws", "proj")
    );
    assert_eq!(record.processor_version, PROCESSOR_VERSION);
    assert!(record.span_bytes > 0);
}

#[test]
fn prices_a_model_call_and_fills_the_provider_from_the_table() {
    let record = run(span(
        "chat",
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.request.model", "claude-3-5-haiku-20241022"),
            i("gen_ai.usage.input_tokens", 1_000),
            i("gen_ai.usage.output_tokens", 200),
        ],
    ));
    assert_eq!(record.kind(), SpanKind::Llm);
    assert_eq!(record.provider, "anthropic");
    assert_eq!(record.cost_status(), CostStatus::Computed);
    // 1000 × $0.80/M + 200 × $4/M
    assert_eq!(record.input_cost_nanos, Some(800_000));
    assert_eq!(record.output_cost_nanos, Some(800_000));
    assert_eq!(record.total_cost_nanos, Some(1_600_000));
    assert_eq!(record.price_table_version, PriceTable::embedded().version());
}

#[test]
fn spans_around_model_calls_do_not_count_their_usage_again() {
    let record = run(span(
        "ai.generateText",
        vec![
            s("ai.model.id", "gpt-4o"),
            i("ai.usage.promptTokens", 500),
            i("ai.usage.completionTokens", 50),
        ],
    ));
    assert_eq!(record.kind(), SpanKind::Chain);
    assert_eq!((record.input_tokens, record.output_tokens), (0, 0));
    assert_eq!(record.cost_status(), CostStatus::NoUsage);
    assert_eq!(record.total_cost_nanos, None);
    assert_eq!(
        record.attributes["ai.usage.promptTokens"], "500",
        "still visible"
    );
}

#[test]
fn a_span_without_a_start_is_priced_when_it_arrived() {
    let mut span = span(
        "chat",
        vec![
            s("gen_ai.request.model", "gpt-4o"),
            i("gen_ai.usage.input_tokens", 1_000_000),
        ],
    );
    span.start_time_unix_nano = 0;
    span.end_time_unix_nano = 0;
    let record = run(span);
    assert_eq!(record.total_cost_nanos, Some(2_500_000_000));
    assert_eq!(record.duration_ns, 0);
}

#[test]
fn payload_attributes_move_to_the_message_columns() {
    let record = run(span(
        "openai.chat",
        vec![
            s("llm.request.type", "chat"),
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.prompt.0.role", "user"),
            s("gen_ai.prompt.0.content", "hello"),
            s("gen_ai.completion.0.role", "assistant"),
            s("gen_ai.completion.0.content", "hi!"),
            s("llm.is_streaming", "false"),
        ],
    ));
    assert_eq!(
        record.input_messages,
        r#"[{"role":"user","content":"hello"}]"#
    );
    assert_eq!(
        record.output_messages,
        r#"[{"role":"assistant","content":"hi!"}]"#
    );
    assert!(
        !record
            .attributes
            .keys()
            .any(|k| k.starts_with("gen_ai.prompt."))
    );
    assert!(record.attributes.contains_key("llm.is_streaming"));
    assert!(!record.messages_truncated);
}

#[test]
fn large_payloads_are_capped_and_flagged() {
    let big = "x".repeat(10_000);
    let spans = [
        span(
            "chat",
            vec![s("gen_ai.request.model", "gpt-4o"), s("input.value", &big)],
        ),
        span(
            "execute_tool",
            vec![
                s("gen_ai.tool.name", "t"),
                s("gen_ai.tool.call.arguments", &big),
            ],
        ),
    ];
    let config = NormalizeConfig {
        max_message_bytes: 1_000,
    };
    for span in spans {
        let batch = batch(vec![span.clone()]);
        let record = normalize_with(&batch, &span, PriceTable::embedded(), None, &config);
        assert!(record.messages_truncated, "{}", record.name);
        assert!(record.input_messages.len() <= 1_000);
        assert!(record.tool_arguments.len() <= 1_000);
    }
}

#[test]
fn the_default_cap_is_64_kib_and_configs_reject_unknown_keys() {
    assert_eq!(NormalizeConfig::default().max_message_bytes, 65_536);
    let parsed: Result<NormalizeConfig, _> =
        serde_json::from_str(r#"{"max_message_bytes": 10, "other": 1}"#);
    assert!(parsed.is_err());
}
