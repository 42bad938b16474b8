//! The processor role against the real stack: OTLP in through the gateway, LLM-aware records
//! out on `spans.enriched`; poison records to `spans.dlq` while later records keep flowing.

mod support;

use std::time::Duration;

use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Headers as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use spindle_schemas::canonical::EnrichedSpan;

/// Collects the messages of `project` until `count` arrived or `wait` passed.
fn collect(
    consumer: &BaseConsumer,
    project: &str,
    count: usize,
    wait: Duration,
) -> Vec<rdkafka::message::OwnedMessage> {
    let deadline = std::time::Instant::now() + wait;
    let mut out = Vec::new();
    while out.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200))
            && message
                .key()
                .unwrap_or_default()
                .starts_with(format!("{project}/").as_bytes())
        {
            out.push(message.detach());
        }
    }
    out
}

fn genai_request(now: u64) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"support-bot"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"opentelemetry.instrumentation.openai"}},"spans":[{{
          "traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7","name":"chat gpt-4o",
          "kind":3,"startTimeUnixNano":"{start}","endTimeUnixNano":"{now}",
          "attributes":[
            {{"key":"gen_ai.operation.name","value":{{"stringValue":"chat"}}}},
            {{"key":"gen_ai.provider.name","value":{{"stringValue":"openai"}}}},
            {{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o"}}}},
            {{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"1200"}}}},
            {{"key":"gen_ai.usage.cache_read.input_tokens","value":{{"intValue":"200"}}}},
            {{"key":"gen_ai.usage.output_tokens","value":{{"intValue":"300"}}}},
            {{"key":"gen_ai.conversation.id","value":{{"stringValue":"conv-7"}}}},
            {{"key":"gen_ai.input.messages","value":{{"stringValue":"[{{\"role\":\"user\",\"parts\":[{{\"type\":\"text\",\"content\":\"Where is my order?\"}}]}}]"}}}}
          ]}}]}}]}}]}}"#,
        start = now - 2_000_000_000,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_in_enriched_records_out() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let enriched = support::tail(&config, spindle_schemas::topics::SPANS_ENRICHED.name);
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", config.gateway.http_listen))
        .header("content-type", "application/json")
        .header("x-api-key", &key)
        .body(genai_request(now))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);

    let messages = tokio::task::spawn_blocking(move || {
        collect(&enriched, &project, 1, Duration::from_secs(30))
    })
    .await
    .expect("collector");
    assert_eq!(messages.len(), 1, "one enriched record");
    let span = EnrichedSpan::decode(messages[0].payload().unwrap_or_default()).expect("decodes");
    assert_eq!(span.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.model, "gpt-4o");
    assert_eq!(span.provider, "openai");
    assert_eq!(span.service, "support-bot");
    assert_eq!(span.session_id, "conv-7");
    // Disjoint buckets: 1200 input of which 200 were cache reads.
    assert_eq!(
        (
            span.input_tokens,
            span.cache_read_tokens,
            span.output_tokens
        ),
        (1000, 200, 300)
    );
    assert!(
        span.total_cost_nanos.is_some_and(|c| c > 0),
        "{:?}",
        span.total_cost_nanos
    );
    assert!(
        span.input_messages.contains("Where is my order?"),
        "{}",
        span.input_messages
    );
    assert!(span.raw.as_ref().is_some_and(|p| p.key.starts_with("raw/")));
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_goes_to_the_dlq_and_the_partition_keeps_flowing() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let dlq = support::tail(&config, spindle_schemas::topics::SPANS_DLQ.name);
    let enriched = support::tail(&config, spindle_schemas::topics::SPANS_ENRICHED.name);

    // A record no processor can read, on the partition the next trace also uses.
    let producer: FutureProducer = spindle::clients::kafka_config(&config.kafka)
        .set("acks", "all")
        .create()
        .expect("producer");
    let poison_key = format!("{project}/4bf92f3577b34da6a3ce929d0e0e4736");
    producer
        .send(
            FutureRecord::to(spindle_schemas::topics::SPANS_RAW.name)
                .key(&poison_key)
                .payload(b"\xff\xfe definitely not protobuf"),
            Duration::from_secs(10),
        )
        .await
        .expect("poison produced");
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", config.gateway.http_listen))
        .header("content-type", "application/json")
        .header("x-api-key", &key)
        .body(genai_request(now))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);

    let project_for_dlq = project.clone();
    let dead = tokio::task::spawn_blocking(move || {
        collect(&dlq, &project_for_dlq, 1, Duration::from_secs(30))
    })
    .await
    .expect("collector");
    assert_eq!(dead.len(), 1, "the poison record is on the DLQ");
    let headers = dead[0].headers().expect("reason headers");
    let reason = (0..headers.count())
        .map(|i| headers.get(i))
        .find(|h| h.key == "spindle.reason")
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("a reason");
    assert!(reason.starts_with("not a RawSpanBatch"), "{reason}");
    assert_eq!(
        dead[0].payload(),
        Some(b"\xff\xfe definitely not protobuf".as_slice())
    );

    let flowing = tokio::task::spawn_blocking(move || {
        collect(&enriched, &project, 1, Duration::from_secs(30))
    })
    .await
    .expect("collector");
    assert_eq!(
        flowing.len(),
        1,
        "the record after the poison was processed"
    );
}

/// The whole pipeline: OTLP through the gateway, the processor and the sink into ClickHouse,
/// with the right tokens and cost in `spans`, `traces` and `usage_hourly`.
#[tokio::test(flavor = "multi_thread")]
async fn otlp_in_rows_in_clickhouse() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", config.gateway.http_listen))
        .header("content-type", "application/json")
        .header("x-api-key", &key)
        .body(genai_request(now))
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(response.status(), 200);

    let db =
        spindle::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    #[derive(Debug, serde::Deserialize, clickhouse::Row)]
    struct Stored {
        model: String,
        input_tokens: u64,
        cache_read_tokens: u64,
        output_tokens: u64,
        total_cost: String,
        session_id: String,
    }
    let started = std::time::Instant::now();
    let rows: Vec<Stored> = loop {
        let rows = db
            .query(
                "SELECT model, input_tokens, cache_read_tokens, output_tokens, \
                 toString(assumeNotNull(total_cost)) AS total_cost, session_id \
                 FROM spans FINAL WHERE project_id = ?",
            )
            .bind(&project)
            .fetch_all()
            .await
            .expect("select");
        // The summaries are written by materialized views right after the `spans` part, in
        // the same insert but not atomically with it: wait for both.
        let summarized: u64 = db
            .query("SELECT count() FROM traces WHERE project_id = ?")
            .bind(&project)
            .fetch_one()
            .await
            .expect("traces");
        if (!rows.is_empty() && summarized > 0) || started.elapsed() > Duration::from_secs(45) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(rows.len(), 1, "one row, stored once");
    let row = &rows[0];
    assert_eq!(row.model, "gpt-4o");
    assert_eq!(
        (row.input_tokens, row.cache_read_tokens, row.output_tokens),
        (1000, 200, 300)
    );
    assert_eq!(row.session_id, "conv-7");
    // gpt-4o: $2.50 per 1M input, $1.25 per 1M cached input, $10 per 1M output.
    assert_eq!(
        row.total_cost, "0.00575",
        "1000×2.5e-6 + 200×1.25e-6 + 300×10e-6"
    );

    let (spans, tokens, cost): (i64, i64, String) = db
        .query(
            "SELECT sum(span_count), sum(input_tokens), toString(sum(total_cost)) \
             FROM traces WHERE project_id = ?",
        )
        .bind(&project)
        .fetch_one()
        .await
        .expect("traces");
    assert_eq!((spans, tokens, cost.as_str()), (1, 1000, "0.00575"));
    let (spans, cost): (i64, String) = db
        .query(
            "SELECT sum(spans), toString(sum(total_cost)) FROM usage_hourly WHERE project_id = ?",
        )
        .bind(&project)
        .fetch_one()
        .await
        .expect("usage");
    assert_eq!((spans, cost.as_str()), (1, "0.00575"));
}

fn trace_request(spans: &[(u64, u64)], now: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    let spans = spans
        .iter()
        .map(|(id, parent)| Span {
            trace_id: vec![0x7e; 16],
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: if *parent == 0 {
                vec![]
            } else {
                parent.to_be_bytes().to_vec()
            },
            name: format!("step {id}"),
            start_time_unix_nano: now - 2_000_000_000,
            end_time_unix_nano: now - 1_000_000_000,
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

/// A trace's children, then a processor crash, then its root: `trace.completed` still counts
/// every span, because the open-trace table lives in Redis, not in the process.
#[tokio::test(flavor = "multi_thread")]
async fn trace_completion_survives_a_processor_restart() {
    use spindle_schemas::trace_events::{TraceEvent, TraceEventKind};
    let stack = support::PrivateStack::with(&[
        ("SPINDLE__PROCESSOR__TRACE_QUIET_MS", "1500"),
        ("SPINDLE__PROCESSOR__COMPLETION_CHECK_MS", "300"),
    ]);
    stack.must(&["up"]);
    let key = stack.dev_key();
    let events = support::tail(&stack.config, spindle_schemas::topics::TRACES_EVENTS.name);
    let events_after = support::tail(&stack.config, spindle_schemas::topics::TRACES_EVENTS.name);
    let url = format!("http://{}/v1/traces", stack.config.gateway.http_listen);
    let post = |body: Vec<u8>| {
        let key = key.clone();
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-protobuf")
                .header("x-api-key", key)
                .body(body)
                .send()
                .await
                .expect("gateway answers")
                .status()
                .as_u16()
        }
    };
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
    assert_eq!(
        post(trace_request(&[(2, 1), (3, 1), (4, 3)], now)).await,
        200
    );
    // Let the processor record the children, then crash it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.kill9("processor");
    stack.must(&["up"]);
    assert_eq!(post(trace_request(&[(1, 0)], now)).await, 200);

    let wanted = format!("default/{}", "7e".repeat(16));
    let completed = tokio::task::spawn_blocking(move || {
        // A restarted processor waits for the dead member's session (45 s) before it owns
        // the partitions again. Other traces of the project (the `up` check) complete too.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut found = Vec::new();
        while found.is_empty() && std::time::Instant::now() < deadline {
            found = collect(&events, "default", 1, Duration::from_secs(1))
                .into_iter()
                .filter(|m| m.key() == Some(wanted.as_bytes()))
                .collect();
        }
        found
    })
    .await
    .expect("collector");
    assert_eq!(completed.len(), 1, "one completion event for the trace");
    let event = TraceEvent::decode(completed[0].payload().unwrap_or_default()).expect("decodes");
    assert_eq!(event.kind(), TraceEventKind::Completed);
    assert_eq!(event.trace_id, "7e".repeat(16));
    assert_eq!(
        event.span_count, 4,
        "children before the crash and the root after it"
    );
    assert!(event.root_seen);

    // The sink answers with `trace.persisted` once all four spans are in ClickHouse.
    let persisted = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            for message in collect(&events_after, "default", 1, Duration::from_secs(1)) {
                let Ok(event) = TraceEvent::decode(message.payload().unwrap_or_default()) else {
                    continue;
                };
                if event.trace_id == "7e".repeat(16) && event.kind() == TraceEventKind::Persisted {
                    return Some(event);
                }
            }
        }
        None
    })
    .await
    .expect("collector")
    .expect("a trace.persisted event");
    assert_eq!(persisted.span_count, 4);
    let db = spindle::clients::clickhouse(&stack.config.clickhouse)
        .with_database(&stack.config.clickhouse.database);
    let stored: u64 = db
        .query("SELECT count() FROM spans FINAL WHERE project_id = 'default' AND trace_id = ?")
        .bind("7e".repeat(16))
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(stored, 4, "persisted means every span is queryable");
}

/// `spindle prices set` gives a project its own prices: the next spans are priced with them
/// (a model the built-in table does not know included), and `spindle prices clear` brings the
/// built-in table back. Other projects never see them.
#[tokio::test(flavor = "multi_thread")]
async fn project_price_overrides_apply_to_new_spans() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let (other, other_key) = support::project_with_key(&config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let table = dir.path().join("prices.json");
    std::fs::write(
        &table,
        r#"{"version": "acme-negotiated-1", "models": [
            {"id": "gpt-4o", "provider": "openai", "input": "100", "cache_read": "50", "output": "200", "valid_from": "2024-01-01"},
            {"id": "acme-tuned-1", "provider": "acme", "input": "1", "output": "2", "valid_from": "2024-01-01"}
        ]}"#,
    )
    .expect("table written");
    let set = |args: &[&str]| {
        let output = support::run_spindle(args, &[]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let table_arg = table.to_str().expect("utf-8 path");
    let said = set(&[
        "prices",
        "set",
        "--workspace",
        "default",
        "--project",
        &project,
        "--file",
        table_arg,
    ]);
    assert!(
        said.contains("`acme-negotiated-1` with 2 model prices"),
        "{said}"
    );

    // A table that does not parse is refused before anything is appended.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"version": "x", "models": [{"id": "m"}]}"#,
    )
    .expect("written");
    let refused = support::run_spindle(
        &[
            "prices",
            "set",
            "--workspace",
            "default",
            "--project",
            &project,
            "--file",
            dir.path().join("bad.json").to_str().expect("utf-8"),
        ],
        &[],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a valid price table"), "{stderr}");

    let send = |key: String, span_id: &'static str, model: &'static str| async move {
        let now =
            u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
        let body = genai_request(now)
            .replace("00f067aa0ba902b7", span_id)
            .replace("\"gpt-4o\"", &format!("\"{model}\""));
        let response = reqwest::Client::new()
            .post(format!("http://{}/v1/traces", config.gateway.http_listen))
            .header("content-type", "application/json")
            .header("x-api-key", key)
            .body(body)
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 200);
    };
    send(key.clone(), "00f067aa0ba90001", "gpt-4o").await;
    send(key.clone(), "00f067aa0ba90002", "acme-tuned-1").await;
    send(other_key.clone(), "00f067aa0ba90003", "gpt-4o").await;

    let db =
        spindle::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    let costs = |project: String, count: usize| {
        let db = db.clone();
        async move {
            let started = std::time::Instant::now();
            loop {
                let rows: Vec<(String, String, String)> = db
                    .query(
                        "SELECT span_id, ifNull(toString(total_cost), 'null'), cost_status \
                         FROM spans FINAL WHERE project_id = ? ORDER BY span_id",
                    )
                    .bind(&project)
                    .fetch_all()
                    .await
                    .expect("select");
                if rows.len() >= count || started.elapsed() > Duration::from_secs(45) {
                    return rows;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    // gpt-4o: 1000 input × $100/M + 200 cache reads × $50/M + 300 output × $200/M; acme-tuned-1
    // has no cache price, so cache reads bill as input: (1000 + 200) × $1/M + 300 × $2/M.
    assert_eq!(
        costs(project.clone(), 2).await,
        vec![
            ("00f067aa0ba90001".into(), "0.17".into(), "computed".into()),
            (
                "00f067aa0ba90002".into(),
                "0.0018".into(),
                "computed".into()
            ),
        ]
    );
    assert_eq!(
        costs(other.clone(), 1).await,
        vec![(
            "00f067aa0ba90003".into(),
            "0.00575".into(),
            "computed".into()
        )],
        "another project keeps the built-in prices"
    );

    let said = set(&[
        "prices",
        "clear",
        "--workspace",
        "default",
        "--project",
        &project,
    ]);
    assert!(said.contains("price overrides removed"), "{said}");
    // Processors see the change once their cached copy expires.
    tokio::time::sleep(Duration::from_millis(
        config.processor.price_overrides_ttl_ms + 500,
    ))
    .await;
    send(key.clone(), "00f067aa0ba90004", "gpt-4o").await;
    send(key.clone(), "00f067aa0ba90005", "acme-tuned-1").await;
    let rows = costs(project.clone(), 4).await;
    assert_eq!(
        rows[2..],
        [
            (
                "00f067aa0ba90004".into(),
                "0.00575".into(),
                "computed".into()
            ),
            (
                "00f067aa0ba90005".into(),
                "null".into(),
                "unknown_model".into()
            ),
        ]
    );
}
