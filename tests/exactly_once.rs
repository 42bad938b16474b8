//! Nothing lost, nothing counted twice: with spans in flight, the processor and then the sink
//! are killed with SIGKILL and restarted; every acknowledged span ends up in ClickHouse exactly
//! once, and the token and cost totals of `spans`, `traces` and `usage_hourly` are exact.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::PrivateStack;

const REQUESTS: u64 = 60;
const SPANS_PER_REQUEST: u64 = 200;
const INPUT_TOKENS: i64 = 100;
const OUTPUT_TOKENS: i64 = 10;

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// 200 LLM spans, 8 per trace, each 100 input and 10 output tokens of gpt-4o.
fn request(n: u64, now: u64) -> Vec<u8> {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| Span {
            trace_id: ((u128::from(n) << 64) | u128::from(i / 8) | (1 << 127))
                .to_be_bytes()
                .to_vec(),
            span_id: ((n << 20) | (i + 1)).to_be_bytes().to_vec(),
            name: "chat gpt-4o".into(),
            kind: 3,
            start_time_unix_nano: now - 3_000_000_000,
            end_time_unix_nano: now - 2_000_000_000,
            attributes: vec![
                attribute(
                    "gen_ai.operation.name",
                    any_value::Value::StringValue("chat".into()),
                ),
                attribute(
                    "gen_ai.provider.name",
                    any_value::Value::StringValue("openai".into()),
                ),
                attribute(
                    "gen_ai.request.model",
                    any_value::Value::StringValue("gpt-4o".into()),
                ),
                attribute(
                    "gen_ai.usage.input_tokens",
                    any_value::Value::IntValue(INPUT_TOKENS),
                ),
                attribute(
                    "gen_ai.usage.output_tokens",
                    any_value::Value::IntValue(OUTPUT_TOKENS),
                ),
            ],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_processor_and_sink_loses_nothing_and_counts_nothing_twice() {
    let stack = PrivateStack::with(&[
        // Small, slow sink batches, so a kill lands with records read but not committed.
        ("SPINDLE__SINK__BATCH_MAX_ROWS", "1500"),
        ("SPINDLE__SINK__BATCH_MAX_WAIT_MS", "700"),
        ("SPINDLE__PROCESSOR__BATCH_MAX_RECORDS", "100"),
    ]);
    stack.must(&["up"]);
    let key = stack.dev_key();
    let url = format!("http://{}/v1/traces", stack.config.gateway.http_listen);
    let http = reqwest::Client::new();
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");

    for n in 0..REQUESTS {
        let response = http
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .header("x-api-key", &key)
            .body(request(n, now))
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 200, "request {n} acknowledged");
        if n == REQUESTS / 3 {
            stack.kill9("processor");
            stack.must(&["up"]);
        }
        if n == 2 * REQUESTS / 3 {
            stack.kill9("sink");
            stack.must(&["up"]);
        }
    }

    let expected_spans = i64::try_from(REQUESTS * SPANS_PER_REQUEST).expect("fits");
    let db = spindle::clients::clickhouse(&stack.config.clickhouse)
        .with_database(&stack.config.clickhouse.database);
    let started = Instant::now();
    let stored = loop {
        let stored: u64 = db
            .query("SELECT count() FROM spans FINAL WHERE project_id = 'default' AND name = 'chat gpt-4o'")
            .fetch_one()
            .await
            .expect("count");
        // Generous: CI runs this beside every other test on two cores.
        if stored >= expected_spans as u64 || started.elapsed() > Duration::from_secs(300) {
            break stored;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        stored,
        expected_spans as u64,
        "every acknowledged span is stored\n{}",
        stack.logs()
    );
    // Give a late duplicate the chance to show up before checking it did not.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (count, sign_sum, tokens, cost): (u64, i64, u64, String) = db
        .query(
            "SELECT count(), sum(sign), sum(input_tokens), toString(sum(assumeNotNull(total_cost))) \
             FROM spans FINAL WHERE project_id = 'default' AND name = 'chat gpt-4o'",
        )
        .fetch_one()
        .await
        .expect("spans totals");
    let expected_tokens = expected_spans * INPUT_TOKENS;
    // gpt-4o: 100 × $2.50/M + 10 × $10/M = $0.00035 per span.
    let expected_cost = "4.2";
    assert_eq!(count, expected_spans as u64);
    assert_eq!(sign_sum, expected_spans);
    assert_eq!(tokens, expected_tokens as u64);
    assert_eq!(cost, expected_cost);

    // The summaries (which also hold the `spindle up` check span: filtered out by tokens).
    let (spans, tokens, cost): (i64, i64, String) = db
        .query(
            "SELECT sum(span_count), sum(input_tokens), toString(sum(total_cost)) FROM traces \
             WHERE project_id = 'default' AND llm_span_count > 0",
        )
        .fetch_one()
        .await
        .expect("traces totals");
    assert_eq!(
        (spans, tokens, cost.as_str()),
        (expected_spans, expected_tokens, expected_cost)
    );
    let (spans, tokens, cost): (i64, i64, String) = db
        .query(
            "SELECT sum(llm_spans), sum(input_tokens), toString(sum(total_cost)) FROM usage_hourly \
             WHERE project_id = 'default'",
        )
        .fetch_one()
        .await
        .expect("usage totals");
    assert_eq!(
        (spans, tokens, cost.as_str()),
        (expected_spans, expected_tokens, expected_cost)
    );
}
