//! The OTLP gateway against the real local stack: real OpenTelemetry exporters in, records in
//! Kafka and objects in S3 out; every bad input answered precisely with nothing written.

mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter, SpanLinks};
use prost::Message;
use spindle::config::Config;
use spindle_schemas::raw::ArchiveObject;

/// A realistic LLM span: a chat call with prompt, completion and token usage.
fn llm_span(trace: u128, span: u64, parent: u64, name: &'static str) -> SpanData {
    let start = SystemTime::now() - Duration::from_millis(1500);
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: name.into(),
        start_time: start,
        end_time: start + Duration::from_millis(1200),
        attributes: vec![
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-4o"),
            KeyValue::new("gen_ai.usage.input_tokens", 1234_i64),
            KeyValue::new("gen_ai.usage.output_tokens", 56_i64),
            KeyValue::new(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"What is 2+2? ✓"}]}]"#,
            ),
            KeyValue::new("session.id", "session-42"),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Ok,
        instrumentation_scope: InstrumentationScope::builder("spindle-tests").build(),
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attribute(KeyValue::new("service.name", "support-bot"))
        .build()
}

/// Exports three spans of two traces with a real exporter and checks Kafka and S3.
async fn export_and_verify(protocol: &str) {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let tail = support::RawTail::start(&config);
    let mut exporter = match protocol {
        "grpc" => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert("x-api-key", key.parse().expect("ascii key"));
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(format!("http://{}", config.gateway.grpc_listen))
                .with_metadata(metadata)
                .with_compression(opentelemetry_otlp::Compression::Gzip)
                .build()
                .expect("grpc exporter")
        }
        http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(if http == "http/json" {
                Protocol::HttpJson
            } else {
                Protocol::HttpBinary
            })
            .with_endpoint(format!("http://{}/v1/traces", config.gateway.http_listen))
            .with_headers(HashMap::from([(
                "Authorization".to_owned(),
                format!("Bearer {key}"),
            )]))
            .build()
            .expect("http exporter"),
    };
    exporter.set_resource(&resource());
    let batch = vec![
        llm_span(0xA1, 1, 0, "agent run"),
        llm_span(0xA1, 2, 1, "chat gpt-4o"),
        llm_span(0xB2, 3, 0, "embeddings"),
    ];
    exporter.export(batch).await.expect("export acknowledged");

    let records = tail.collect(&project, 3, Duration::from_secs(20));
    let mut names: Vec<String> = records
        .iter()
        .flat_map(|(_, b)| b.spans.iter().map(|s| s.name.clone()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["agent run", "chat gpt-4o", "embeddings"],
        "{protocol}"
    );
    // Keyed by trace: one record per partition, keyed by its first trace
    // (`records_carry_a_requests_traces_by_partition` covers the grouping).
    let partitions = u32::from(config.kafka.partitions);
    let partition = |trace: u128| {
        spindle_pipeline::gateway::partition_of(&format!("{project}/{trace:032x}"), partitions)
    };
    let expected = if partition(0xA1) == partition(0xB2) {
        1
    } else {
        2
    };
    assert_eq!(records.len(), expected, "{protocol}");
    for (key, batch) in &records {
        let first = &batch.spans[0].trace_id;
        assert_eq!(key, &spindle_schemas::raw::trace_key(&project, first));
    }

    let (_, batch) = &records[0];
    assert_eq!(batch.project_id, project);
    assert_eq!(batch.workspace_id, "tests");
    let service = batch
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
        .and_then(|a| a.value.clone());
    assert_eq!(
        format!("{service:?}"),
        format!(
            "{:?}",
            Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                value: Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                        "support-bot".into()
                    )
                )
            })
        )
    );
    let chat = records
        .iter()
        .flat_map(|(_, b)| b.spans.iter())
        .find(|s| s.name == "chat gpt-4o")
        .expect("chat span");
    assert_eq!(chat.parent_span_id, 1_u64.to_be_bytes());
    let messages = chat
        .attributes
        .iter()
        .find(|a| a.key == "gen_ai.input.messages")
        .expect("messages kept");
    assert!(format!("{messages:?}").contains("What is 2+2? ✓"));

    // The archive holds the same request, found through the pointer.
    let pointer = batch.archive.clone().expect("archive pointer");
    assert!(
        pointer.key.starts_with(&format!("raw/{project}/")),
        "{}",
        pointer.key
    );
    let object = spindle::clients::s3(&config.s3)
        .get_object()
        .bucket(&pointer.bucket)
        .key(&pointer.key)
        .send()
        .await
        .expect("archived object");
    let bytes = object.body.collect().await.expect("body").into_bytes();
    let archive = ArchiveObject::decode(bytes).expect("archive decodes");
    assert_eq!(archive.project_id, project);
    let entry = &archive.requests[pointer.index as usize];
    let expected_transport = if protocol == "grpc" { "grpc" } else { protocol };
    assert_eq!(entry.transport, expected_transport);
    let request =
        ExportTraceServiceRequest::decode(entry.request.clone()).expect("request decodes");
    let archived_spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(archived_spans, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_http_protobuf_exporter() {
    export_and_verify("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_http_json_exporter() {
    export_and_verify("http/json").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_exporter() {
    export_and_verify("grpc").await;
}

fn valid_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span(id: u8) -> Span {
    let now =
        u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("after 1970");
    Span {
        trace_id: vec![0x5b; 16],
        span_id: vec![id; 8],
        name: format!("span-{id}"),
        start_time_unix_nano: now - 2_000_000,
        end_time_unix_nano: now - 1_000_000,
        ..Default::default()
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    fn new(config: &Config) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("http://{}/v1/traces", config.gateway.http_listen),
        }
    }

    /// Posts `request` as OTLP/HTTP protobuf with `key`.
    async fn export(
        &self,
        key: &str,
        request: &ExportTraceServiceRequest,
    ) -> (u16, HashMap<String, String>, Vec<u8>) {
        self.post(
            Some(key),
            "application/x-protobuf",
            None,
            request.encode_to_vec(),
        )
        .await
    }

    async fn post(
        &self,
        key: Option<&str>,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, HashMap<String, String>, Vec<u8>) {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", content_type);
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        let response = request.body(body).send().await.expect("gateway answers");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        (
            status,
            headers,
            response.bytes().await.expect("body").to_vec(),
        )
    }
}

/// The message of a JSON `google.rpc.Status` error body.
fn message(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("error body is JSON: {}", String::from_utf8_lossy(body)));
    value["message"].as_str().unwrap_or_default().to_owned()
}

/// Asserts that nothing of `project` reached Kafka or S3.
/// A request's traces that share a partition travel in one record, on the partition
/// librdkafka's partitioner gives the record's key; every span arrives exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn records_carry_a_requests_traces_by_partition() {
    use spindle_pipeline::gateway::partition_of;
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let partitions = u32::from(config.kafka.partitions);
    // 16 traces of 3 spans, interleaved: span `t` of each trace, then the next round.
    let mut spans = Vec::new();
    for round in 0..3_u8 {
        for trace in 0..16_u8 {
            let mut s = span(round * 16 + trace + 1);
            s.trace_id = vec![trace + 1; 16];
            spans.push(s);
        }
    }
    let tail = support::RawTail::start(&config);
    let (status, _, _) = Client::new(&config)
        .export(&key, &valid_request(spans))
        .await;
    assert_eq!(status, 200);
    let records = tail.collect_placed(&project, 48, Duration::from_secs(20));

    let trace_partition =
        |id: &[u8]| partition_of(&spindle_schemas::raw::trace_key(&project, id), partitions);
    let used: std::collections::BTreeSet<u32> =
        (1..=16_u8).map(|t| trace_partition(&[t; 16])).collect();
    assert_eq!(records.len(), used.len(), "one record per partition used");
    let mut seen = Vec::new();
    for (partition, record_key, batch) in &records {
        let partition = u32::try_from(*partition).expect("a partition");
        assert_eq!(
            partition,
            partition_of(record_key, partitions),
            "{record_key}"
        );
        assert_eq!(
            record_key,
            &spindle_schemas::raw::trace_key(&project, &batch.spans[0].trace_id)
        );
        for s in &batch.spans {
            assert_eq!(trace_partition(&s.trace_id), partition);
            seen.push(s.span_id[0]);
        }
        // A trace's spans stay together and in request order.
        let traces: Vec<u8> = batch.spans.iter().map(|s| s.trace_id[0]).collect();
        let mut runs = traces.clone();
        runs.dedup();
        let mut distinct = runs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            runs.len(),
            distinct.len(),
            "each trace in one run: {traces:?}"
        );
        for run in batch.spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
            let ids: Vec<u8> = run.iter().map(|s| s.span_id[0]).collect();
            assert!(ids.is_sorted(), "{ids:?}");
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=48).collect::<Vec<u8>>());
}

async fn assert_nothing_written(config: &Config, tail: &support::RawTail, project: &str) {
    assert!(
        tail.collect(project, 0, Duration::from_secs(2)).is_empty(),
        "records reached spans.raw"
    );
    assert!(
        support::archived_keys(config, project).await.is_empty(),
        "objects reached the archive"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_errors_and_write_nothing() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let tail = support::RawTail::start(&config);
    let client = Client::new(&config);
    let body = valid_request(vec![span(1)]).encode_to_vec();
    let key = Some(key.as_str());

    let (status, _, reply) = client.post(key, "text/plain", None, body.clone()).await;
    assert_eq!(status, 415);
    assert!(message(&reply).contains("unsupported content type `text/plain`"));

    let (status, _, reply) = client
        .post(
            key,
            "application/x-protobuf",
            None,
            b"\xff\xff\xff not protobuf".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    let status_message = String::from_utf8_lossy(&reply).into_owned();
    assert!(
        status_message.contains("invalid OTLP protobuf"),
        "{status_message}"
    );

    let (status, _, reply) = client
        .post(
            key,
            "application/json",
            None,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}"#.to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    let text = message(&reply);
    assert!(
        text.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
        "{text}"
    );

    let (status, _, reply) = client
        .post(key, "application/json", None, b"{ nope".to_vec())
        .await;
    assert_eq!(status, 400);
    assert!(message(&reply).starts_with("invalid JSON"));

    let (status, _, reply) = client
        .post(
            key,
            "application/json",
            Some("gzip"),
            b"not gzip at all".to_vec(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(message(&reply).contains("invalid gzip body"));

    let (status, _, reply) = client
        .post(key, "application/json", Some("br"), body.clone())
        .await;
    assert_eq!(status, 415);
    assert!(message(&reply).contains("unsupported content encoding `br`"));

    let oversize = vec![b' '; config.gateway.max_request_bytes + 1];
    let (status, _, reply) = client.post(key, "application/json", None, oversize).await;
    assert_eq!(status, 413);
    assert!(message(&reply).contains("over the limit"));

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![b' '; config.gateway.max_request_bytes + 10])
        .expect("gzip");
    let bomb = gz.finish().expect("gzip");
    let (status, _, reply) = client
        .post(key, "application/json", Some("gzip"), bomb)
        .await;
    assert_eq!(status, 413);
    assert!(message(&reply).contains("after decompression"));

    let (status, _, reply) = client
        .post(None, "application/json", None, b"{}".to_vec())
        .await;
    assert_eq!(status, 401);
    assert!(message(&reply).contains("missing API key"));
    let (status, _, reply) = client
        .post(
            Some("spk_000000000000_00"),
            "application/json",
            None,
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(message(&reply), "unknown API key");
    let (status, _, reply) = client
        .post(Some("hunter2"), "application/json", None, b"{}".to_vec())
        .await;
    assert_eq!(status, 401);
    assert!(message(&reply).contains("malformed API key"));

    // An empty request is fine and produces nothing.
    let (status, _, reply) = client
        .post(key, "application/json", None, b"{}".to_vec())
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert_eq!(reply, b"{\"partialSuccess\":null}".to_vec());
    let (status, _, reply) = client
        .post(key, "application/x-protobuf", None, Vec::new())
        .await;
    assert_eq!(status, 200);
    assert!(
        ExportTraceServiceResponse::decode(&reply[..])
            .expect("protobuf answer")
            .partial_success
            .is_none()
    );

    assert_nothing_written(&config, &tail, &project).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_spans_are_rejected_through_partial_success() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let tail = support::RawTail::start(&config);
    let client = Client::new(&config);

    let mut zero_trace = span(2);
    zero_trace.trace_id = vec![0; 16];
    let mut backwards = span(3);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    let request = valid_request(vec![span(1), zero_trace, backwards]);
    let (status, _, reply) = client.export(&key, &request).await;
    assert_eq!(status, 200);
    let answer = ExportTraceServiceResponse::decode(&reply[..]).expect("protobuf answer");
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .contains("trace_id must be 16 bytes and not all zero"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("end_time_unix_nano"),
        "{}",
        partial.error_message
    );

    let records = tail.collect(&project, 1, Duration::from_secs(15));
    let names: Vec<&str> = records
        .iter()
        .flat_map(|(_, b)| b.spans.iter().map(|s| s.name.as_str()))
        .collect();
    assert_eq!(names, ["span-1"], "only the valid span is stored");

    // All invalid: answered with partial success, nothing written.
    let (other, other_key) = support::project_with_key(&config).await;
    let mut bad = span(9);
    bad.span_id = vec![1, 2, 3];
    let (status, _, reply) = client
        .post(
            Some(&other_key),
            "application/x-protobuf",
            None,
            valid_request(vec![bad]).encode_to_vec(),
        )
        .await;
    assert_eq!(status, 200);
    let partial = ExportTraceServiceResponse::decode(&reply[..])
        .expect("answer")
        .partial_success
        .expect("partial");
    assert_eq!(partial.rejected_spans, 1);
    assert_nothing_written(&config, &tail, &other).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_and_read_only_keys_are_forbidden() {
    let config = support::stack();
    let tail = support::RawTail::start(&config);
    let client = Client::new(&config);
    let body = valid_request(vec![span(1)]).encode_to_vec();

    let read_project = support::unique("ro");
    let read_only = spindle::platform_admin::create_key(
        &config,
        "tests",
        &read_project,
        &[spindle_schemas::platform::ApiKeyScope::Read],
        "reader",
    )
    .await
    .expect("read key");
    let (status, _, reply) = client
        .post(
            Some(read_only.value.reveal()),
            "application/json",
            None,
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(status, 403);
    assert!(message(&reply).contains("lacks the `ingest` scope"));

    let (project, key) = support::project_with_key(&config).await;
    let (status, _, _) = client
        .post(Some(&key), "application/x-protobuf", None, body.clone())
        .await;
    assert_eq!(status, 200);
    let records = tail.collect(&project, 1, Duration::from_secs(15));
    assert_eq!(records.len(), 1);

    let prefix = spindle_platform::api_keys::prefix_of(&key)
        .expect("prefix")
        .to_owned();
    spindle::platform_admin::revoke_key(&config, &prefix)
        .await
        .expect("revoked");
    // The gateway caches keys for `auth_cache_ttl_ms`; the revocation shows within 5 s.
    let started = std::time::Instant::now();
    let (status, reply) = loop {
        let (status, _, reply) = client
            .post(Some(&key), "application/json", None, b"{}".to_vec())
            .await;
        if status != 200 || started.elapsed() > Duration::from_secs(5) {
            break (status, reply);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 403, "revocation visible within 5 s");
    assert!(message(&reply).contains(&format!("API key `{prefix}` was revoked")));
    let (status, _, _) = client
        .post(Some(&key), "application/x-protobuf", None, body)
        .await;
    assert_eq!(status, 403);
    assert!(
        tail.collect(&project, 0, Duration::from_secs(2)).is_empty(),
        "nothing after revocation"
    );
    assert_nothing_written(&config, &tail, &read_project).await;
}

/// Accepted spans reach the project's monthly usage counter in Redis within a flush interval
/// (`gateway.usage_flush_ms`); rejected spans are not counted.
#[tokio::test(flavor = "multi_thread")]
async fn accepted_spans_reach_the_monthly_usage_counter() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let client = Client::new(&config);
    let mut backwards = span(9);
    backwards.end_time_unix_nano = backwards.start_time_unix_nano - 1;
    for body in [
        valid_request(vec![span(1), span(2), span(3)]),
        valid_request(vec![span(4), backwards, span(5), span(6), span(7)]),
    ] {
        let (status, _, _) = client.export(&key, &body).await;
        assert_eq!(status, 200);
    }
    let month = spindle_platform::entitlements::yyyymm(time::OffsetDateTime::now_utc());
    let counter = spindle_platform::keys::monthly_usage(&project, month);
    let mut redis = spindle::clients::redis(&config.redis)
        .expect("redis client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let deadline = std::time::Instant::now()
        + Duration::from_millis(config.gateway.usage_flush_ms)
        + Duration::from_secs(5);
    let mut used: Option<u64> = None;
    while used != Some(7) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        used = redis::cmd("GET")
            .arg(&counter)
            .query_async(&mut redis)
            .await
            .expect("GET");
    }
    assert_eq!(used, Some(7), "7 spans accepted, 1 rejected");
    // Nothing more arrives later: the counts were flushed once.
    tokio::time::sleep(Duration::from_millis(config.gateway.usage_flush_ms * 2)).await;
    let again: Option<u64> = redis::cmd("GET")
        .arg(&counter)
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(again, Some(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_monthly_quota_is_429_with_retry_after() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let done = spindle::platform_admin::set_entitlements(&config, "tests", &project, 0, 3)
        .await
        .expect("entitlements set");
    assert!(done.projected);
    let client = Client::new(&config);

    let two = valid_request(vec![span(1), span(2)]).encode_to_vec();
    let (status, _, _) = client
        .post(Some(&key), "application/x-protobuf", None, two.clone())
        .await;
    assert_eq!(status, 200, "2 of 3 spans");
    let tail = support::RawTail::start(&config);
    let (status, headers, reply) = client
        .post(Some(&key), "application/x-protobuf", None, two)
        .await;
    assert_eq!(status, 429);
    let retry: u64 = headers
        .get("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!(retry > 0);
    let text = String::from_utf8_lossy(&reply).into_owned();
    assert!(text.contains("monthly quota of 3 spans"), "{text}");
    assert!(tail.collect(&project, 0, Duration::from_secs(2)).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_errors_use_otlp_status_codes() {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let config = support::stack();
    let mut client = TraceServiceClient::connect(format!("http://{}", config.gateway.grpc_listen))
        .await
        .expect("grpc connects");
    let error = client
        .export(valid_request(vec![span(1)]))
        .await
        .expect_err("no key");
    assert_eq!(error.code(), tonic::Code::Unauthenticated);
    assert!(error.message().contains("missing API key"));

    let (project, key) = support::project_with_key(&config).await;
    let tail = support::RawTail::start(&config);
    let mut request = tonic::Request::new(valid_request(vec![span(1)]));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("ascii"),
    );
    let answer = client.export(request).await.expect("accepted").into_inner();
    assert!(answer.partial_success.is_none());
    assert_eq!(tail.collect(&project, 1, Duration::from_secs(15)).len(), 1);
}

/// A gRPC codec sending a request's bytes as they are, so a test can send what no generated
/// client would.
#[derive(Clone, Copy, Default)]
struct RawRequests;

impl tonic::codec::Codec for RawRequests {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawRequests;
    type Decoder = RawRequests;

    fn encoder(&mut self) -> Self::Encoder {
        RawRequests
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawRequests
    }
}

impl tonic::codec::Encoder for RawRequests {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        buf.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawRequests {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(buf)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_bad_input_is_refused_precisely_and_writes_nothing() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let tail = support::RawTail::start(&config);
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", config.gateway.grpc_listen))
            .expect("endpoint")
            .connect()
            .await
            .expect("grpc connects");
    let export = |bytes: Vec<u8>, encoding: Option<&'static str>| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        let mut request = tonic::Request::new(bytes);
        request
            .metadata_mut()
            .insert("x-api-key", key.parse().expect("ascii"));
        if let Some(encoding) = encoding {
            request
                .metadata_mut()
                .insert("grpc-encoding", encoding.parse().expect("ascii"));
        }
        async move {
            grpc.ready().await.expect("ready");
            grpc.unary(
                request,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
                    .parse()
                    .expect("path"),
                RawRequests,
            )
            .await
        }
    };

    let error = export(vec![0x0a, 0xff, 0x01], None)
        .await
        .expect_err("malformed protobuf");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().starts_with("invalid OTLP protobuf"),
        "{}",
        error.message()
    );

    let error = export(valid_request(vec![span(1)]).encode_to_vec(), Some("br"))
        .await
        .expect_err("unknown encoding");
    assert_eq!(error.code(), tonic::Code::Unimplemented);
    assert!(error.message().contains("`br`"), "{}", error.message());
    assert_eq!(
        error
            .metadata()
            .get("grpc-accept-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip,zstd")
    );

    let error = export(vec![b' '; config.gateway.max_request_bytes + 1], None)
        .await
        .expect_err("oversize");
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        error.message(),
        format!(
            "request body over the limit of {} bytes",
            config.gateway.max_request_bytes
        )
    );

    // An empty request is a valid export of nothing.
    let answer = export(Vec::new(), None).await.expect("empty export");
    assert!(answer.into_inner().partial_success.is_none());

    assert!(tail.collect(&project, 0, Duration::from_secs(2)).is_empty());

    // A valid export on the same channel still goes through.
    export(valid_request(vec![span(1)]).encode_to_vec(), None)
        .await
        .expect("accepted");
    assert_eq!(tail.collect(&project, 1, Duration::from_secs(15)).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn gateway_metrics_and_readiness() {
    let config = support::stack();
    let base = format!("http://{}", config.gateway.health_listen);
    let ready = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let (_, key) = support::project_with_key(&config).await;
    let client = Client::new(&config);
    let (status, _, _) = client.export(&key, &valid_request(vec![span(1)])).await;
    assert_eq!(status, 200);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "spindle_gateway_requests_total",
        "spindle_gateway_spans_total",
        "spindle_gateway_bytes_total",
        "spindle_gateway_archive_seconds",
        "spindle_gateway_produce_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_project_over_its_rate_gets_429_with_retry_after() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    spindle::platform_admin::set_entitlements(&config, "tests", &project, 1, 0)
        .await
        .expect("entitlements set");
    // The gateway caches entitlements for `auth_cache_ttl_ms`; this project is new, so the
    // first request already reads the projected value.
    let client = Client::new(&config);
    let five = valid_request((1..=5).map(span).collect()).encode_to_vec();
    let (status, _, _) = client
        .post(Some(&key), "application/x-protobuf", None, five.clone())
        .await;
    assert_eq!(status, 200, "a burst passes, leaving a debt of 4 spans");
    let tail = support::RawTail::start(&config);
    let (status, headers, reply) = client.post(Some(&key), "application/json", None, b"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b174\",\"startTimeUnixNano\":\"1764230400000000000\",\"endTimeUnixNano\":\"1764230400000000001\"}]}]}]}".to_vec()).await;
    assert_eq!(status, 429, "{}", String::from_utf8_lossy(&reply));
    let retry: u64 = headers
        .get("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=5).contains(&retry), "{retry}");
    assert!(message(&reply).contains("over its rate of 1 spans per second"));
    assert!(tail.collect(&project, 0, Duration::from_secs(2)).is_empty());
}

/// Shutdown drains: a request in flight when the signal comes is still answered 200 (durable),
/// new connections are refused, and `serve` returns cleanly.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_drains_in_flight_requests() {
    let mut config = support::stack();
    config.gateway.http_listen = "127.0.0.1:0".parse().expect("addr");
    config.gateway.grpc_listen = "127.0.0.1:0".parse().expect("addr");
    // A long group-commit window keeps the request in flight while shutdown starts.
    config.gateway.group_commit_window_ms = 1500;
    let (project, key) = support::project_with_key(&config).await;
    let deps = spindle::roles::gateway_deps(&config).await.expect("deps");
    let bound = spindle_pipeline::gateway::bind(config.gateway.clone(), deps)
        .await
        .expect("bind");
    let url = format!("http://{}/v1/traces", bound.http_addr);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(bound.serve(shutdown.clone()));
    let tail = support::RawTail::start(&config);

    let in_flight = tokio::spawn({
        let url = url.clone();
        let body = valid_request(vec![span(1)]).encode_to_vec();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-protobuf")
                .header("x-api-key", key)
                .body(body)
                .send()
                .await
                .expect("answered")
                .status()
                .as_u16()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    assert_eq!(
        in_flight.await.expect("request task"),
        200,
        "drained, not dropped"
    );
    server.await.expect("server task").expect("clean shutdown");
    assert!(
        reqwest::Client::new()
            .post(&url)
            .body(Vec::new())
            .send()
            .await
            .is_err(),
        "no longer listening"
    );
    assert_eq!(
        tail.collect(&project, 1, Duration::from_secs(15)).len(),
        1,
        "the drained request is durable"
    );
}
