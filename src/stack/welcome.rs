//! The end of `spindle up`: a ready ingest key for a default project, and one real OTLP
//! export through the gateway to show the whole path working.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use spindle_schemas::platform::ApiKeyScope;

use super::{Layout, Output};
use crate::config::Config;

pub(crate) const DEV_WORKSPACE: &str = "default";
pub(crate) const DEV_PROJECT: &str = "default";

/// Returns the local stack's ingest key, issuing one the first time (or when the projection
/// lost it). The key is kept in `run/dev-ingest.key`, readable by its owner only.
pub(crate) async fn dev_key(
    config: &Config,
    layout: &Layout,
    out: &mut Output,
) -> anyhow::Result<String> {
    let file = layout.run_dir().join("dev-ingest.key");
    if let Ok(key) = std::fs::read_to_string(&file) {
        let key = key.trim().to_owned();
        let mut redis = crate::roles::redis_manager(config).await?;
        let fields: HashMap<String, String> = redis::AsyncCommands::hgetall(
            &mut redis,
            spindle_platform::keys::api_key(&spindle_platform::api_keys::hash(&key)),
        )
        .await
        .context("cannot read the key projection")?;
        if !fields.is_empty() && fields.get("revoked").map(String::as_str) != Some("1") {
            out.step("ingest key", "present");
            return Ok(key);
        }
    }
    let done = crate::platform_admin::create_key(
        config,
        DEV_WORKSPACE,
        DEV_PROJECT,
        &[ApiKeyScope::Ingest, ApiKeyScope::Read],
        "local stack",
    )
    .await?;
    if !done.projected {
        bail!("the projector did not apply the new key within 15 s; see its log");
    }
    let key = done.value.reveal().to_owned();
    super::services::write_private(&file, &key)?;
    out.step(
        "ingest key",
        &format!("issued `{}` for project `{DEV_PROJECT}`", done.value.prefix),
    );
    Ok(key)
}

/// Exports one span over OTLP/HTTP and requires a full acknowledgement.
pub(crate) async fn smoke_test(config: &Config, key: &str, out: &mut Output) -> anyhow::Result<()> {
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0);
    let mut trace_id = uuid::Uuid::now_v7().as_bytes().to_vec();
    trace_id.truncate(16);
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attribute("service.name", "spindle-up")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id,
                    span_id: now.to_be_bytes().to_vec(),
                    name: "spindle up check".into(),
                    kind: 1,
                    start_time_unix_nano: now.saturating_sub(1_000_000),
                    end_time_unix_nano: now,
                    attributes: vec![attribute("spindle.check", "up")],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let trace_hex = hex::encode(&request.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let url = format!("http://{}/v1/traces", config.gateway.http_listen);
    let payload = request.encode_to_vec();
    // A gateway whose broker just came back answers 503 until its producer reconnects.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/x-protobuf")
            .header("x-api-key", key)
            .body(payload.clone())
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {url}"))?;
        let status = response.status();
        let answer = response.bytes().await.unwrap_or_default();
        if status.is_success() {
            break answer;
        }
        if status != reqwest::StatusCode::SERVICE_UNAVAILABLE
            || std::time::Instant::now() > deadline
        {
            bail!(
                "the gateway refused the check span: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let answer =
        ExportTraceServiceResponse::decode(body).context("the gateway's answer is not OTLP")?;
    if answer.partial_success.is_some_and(|p| p.rejected_spans > 0) {
        bail!("the gateway rejected the check span");
    }
    out.step(
        "check",
        "exported 1 span over OTLP/HTTP: acknowledged once archived in S3 and produced to `spans.raw`",
    );
    let sent = std::time::Instant::now();
    if query_back(config, key, &trace_hex).await? {
        out.step(
            "query",
            &format!(
                "GraphQL returned it from ClickHouse {} ms after the acknowledgement \
                 (processor → sink → ClickHouse → http://{}/graphql)",
                sent.elapsed().as_millis(),
                config.graphql.listen
            ),
        );
    } else {
        // Not an error: a role restarted just now may still be rejoining its consumer group
        // or reconnecting, and the acknowledged span is safe in Kafka meanwhile.
        out.step(
            "query",
            &format!(
                "the check span is acknowledged but not queryable yet after {} s: the processor \
                 or the sink is still catching up (see their logs)",
                QUERY_BACK_WAIT.as_secs()
            ),
        );
    }
    Ok(())
}

/// How long `up` waits to read the check span back through GraphQL.
const QUERY_BACK_WAIT: Duration = Duration::from_secs(10);

/// Asks the GraphQL API for the check span until the pipeline has stored it; false when it
/// is not stored within [`QUERY_BACK_WAIT`].
async fn query_back(config: &Config, key: &str, trace_id: &str) -> anyhow::Result<bool> {
    let url = format!("http://{}/graphql", config.graphql.listen);
    let body = serde_json::json!({
        "query": "query($p: String!, $t: String!) { trace(projectId: $p, traceId: $t) { spans { edges { node { name } } } } }",
        "variables": { "p": DEV_PROJECT, "t": trace_id },
    });
    let deadline = std::time::Instant::now() + QUERY_BACK_WAIT;
    loop {
        let answer: serde_json::Value = reqwest::Client::new()
            .post(&url)
            .header("x-api-key", key)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .with_context(|| format!("cannot reach the GraphQL API at {url}"))?
            .json()
            .await
            .context("the GraphQL API's answer is not JSON")?;
        // Errors are retried too: a role whose Redis or ClickHouse just came back answers
        // UNAVAILABLE until its connection is re-established.
        if answer.get("errors").is_none()
            && answer["data"]["trace"]["spans"]["edges"][0]["node"]["name"] == "spindle up check"
        {
            return Ok(true);
        }
        if std::time::Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}
