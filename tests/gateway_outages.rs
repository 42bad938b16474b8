//! The gateway when Kafka or S3 is down: 503 with Retry-After, nothing acknowledged, load shed
//! instead of memory growing, and recovery without a restart once the service is back.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use support::PrivateStack;

fn request(spans: usize, padding: usize) -> Vec<u8> {
    let now = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time");
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: (now as u128 + i as u128).to_be_bytes().to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: "x".repeat(padding.max(1)),
            start_time_unix_nano: now - 2_000,
            end_time_unix_nano: now - 1_000,
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

async fn post(stack: &PrivateStack, key: &str, body: Vec<u8>) -> (u16, Option<String>, String) {
    post_to(&stack.config.gateway.http_listen.to_string(), key, body).await
}

/// An export to the gateway at `addr`: its status, Retry-After and body.
async fn post_to(addr: &str, key: &str, body: Vec<u8>) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("x-api-key", key)
        .body(body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = String::from_utf8_lossy(&response.bytes().await.expect("body")).into_owned();
    (status, retry, body)
}

/// Checks a retryable 503 for `what` being down: Retry-After 1, nothing accepted.
fn assert_unavailable((status, retry, body): &(u16, Option<String>, String), what: &str) {
    assert_eq!(*status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(
        body.contains(&format!("{what} is unavailable, nothing was accepted")),
        "{body}"
    );
}

async fn until_accepted(stack: &PrivateStack, key: &str) -> Duration {
    until_accepted_at(&stack.config.gateway.http_listen.to_string(), key).await
}

/// Exports every 250 ms until the gateway at `addr` accepts one; fails after 60 s.
async fn until_accepted_at(addr: &str, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, body) = post_to(addr, key, request(3, 10)).await;
        if status == 200 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the gateway did not recover: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_then_archive_outage_is_503_and_recovers_by_itself() {
    let stack = PrivateStack::with(&[
        ("SPINDLE__GATEWAY__PRODUCE_TIMEOUT_MS", "2000"),
        ("SPINDLE__GATEWAY__S3_TIMEOUT_MS", "2000"),
        ("SPINDLE__GATEWAY__MAX_REQUEST_BYTES", "200000"),
        ("SPINDLE__GATEWAY__MAX_INFLIGHT_BYTES", "300000"),
    ]);
    stack.must(&["up"]);
    let key = stack.dev_key();
    let (status, _, body) = post(&stack, &key, request(3, 10)).await;
    assert_eq!(status, 200, "{body}");

    // The broker dies: no acknowledgement, a retryable 503.
    stack.kill9("kafka");
    assert_unavailable(&post(&stack, &key, request(3, 10)).await, "kafka");
    stack.must(&["up"]);
    let took = until_accepted(&stack, &key).await;
    eprintln!("recovered from the broker outage {took:?} after the broker returned");

    // The archive dies: same contract.
    stack.kill9("s3");
    assert_unavailable(&post(&stack, &key, request(3, 10)).await, "s3");

    // While S3 hangs, requests pile up: past the in-flight budget they are shed at once.
    let connect =
        tokio::net::TcpListener::bind(stack.config.s3.endpoint.trim_start_matches("http://"))
            .await
            .expect("hold the S3 port so writes hang instead of failing fast");
    let big = request(100, 1500);
    assert!(big.len() > 150_000 && big.len() < 200_000, "{}", big.len());
    let first = {
        let stack_key = key.clone();
        let env = stack.env.clone();
        tokio::spawn(async move {
            let config = support::config(&env);
            let response = reqwest::Client::new()
                .post(format!("http://{}/v1/traces", config.gateway.http_listen))
                .header("content-type", "application/x-protobuf")
                .header("x-api-key", stack_key)
                .body(request(100, 1500))
                .send()
                .await
                .expect("answer");
            response.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, retry, body) = post(&stack, &key, big).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("in-flight limit of 300000 bytes"), "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    // A request that declares its length is shed before its body is read: the answer comes
    // although the body it announced never does.
    let answer = announce_without_body(&stack.config, &key, 190_000).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("in-flight limit of 300000 bytes"),
        "{answer}"
    );
    // So is one declaring more than `max_request_bytes`.
    let answer = announce_without_body(&stack.config, &key, 250_000).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("request body over the limit of 200000 bytes"),
        "{answer}"
    );
    assert_eq!(
        first.await.expect("first request"),
        503,
        "the held request times out"
    );
    drop(connect);

    stack.must(&["up"]);
    let took = until_accepted(&stack, &key).await;
    eprintln!("recovered from the archive outage {took:?} after S3 returned");
}

/// A gateway process of its own, killed when dropped.
struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `/readyz` of the health server at `addr`: its status and JSON report.
async fn readiness(addr: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("the health server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON report"))
}

/// Pods restart in any order: a gateway that starts while the broker is down serves at once,
/// answers 503 with Retry-After and acknowledges nothing, says it is not ready because of
/// Kafka, and accepts once the broker is back, without a restart. A request answered 503
/// spends none of the project's rate: its retry is not refused with 429.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_started_with_the_broker_down_recovers_and_its_503s_cost_no_rate() {
    let stack = PrivateStack::with(&[("SPINDLE__GATEWAY__PRODUCE_TIMEOUT_MS", "2000")]);
    stack.must(&["up"]);
    let key = stack.dev_key();
    // 10 spans per second: one request of 100 spans leaves a debt of 9 s.
    spindle::platform_admin::set_entitlements(&stack.config, "default", "default", 10, 0)
        .await
        .expect("entitlements set");
    stack.kill9("kafka");

    // A second gateway of this stack, on ports of its own, started after the broker died.
    let ports = support::free_ports(3);
    let http = format!("127.0.0.1:{}", ports[0]);
    let health = format!("127.0.0.1:{}", ports[2]);
    let _gateway = Gateway(
        support::spindle()
            .arg("gateway")
            .envs(stack.env.iter().map(|(k, v)| (k, v)))
            .env("SPINDLE__GATEWAY__HTTP_LISTEN", &http)
            .env(
                "SPINDLE__GATEWAY__GRPC_LISTEN",
                format!("127.0.0.1:{}", ports[1]),
            )
            .env("SPINDLE__GATEWAY__HEALTH_LISTEN", &health)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the gateway starts"),
    );
    let started = Instant::now();
    while reqwest::get(format!("http://{http}/")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the gateway did not start serving without its broker"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for _ in 0..2 {
        let answer = post_to(&http, &key, request(100, 10)).await;
        assert_unavailable(&answer, "kafka");
        let body = &answer.2;
        assert!(
            body.contains("the partitions of `spans.raw` are not known yet"),
            "{body}"
        );
    }
    let (status, report) = readiness(&health).await;
    assert_eq!(status, 503, "{report}");
    let kafka = report["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .find(|d| d["name"] == "kafka")
        .cloned()
        .expect("kafka is checked");
    assert_eq!(kafka["ok"], false, "{report}");

    // `up` brings the broker back; this gateway is never restarted.
    stack.must(&["up"]);
    let took = until_accepted_at(&http, &key).await;
    eprintln!("accepted {took:?} after the broker returned");
    let (status, report) = readiness(&health).await;
    assert_eq!(status, 200, "{report}");

    // The broker dies under the running gateway: each request is admitted, then times out
    // waiting for its acknowledgement, and its spans are given back to the rate.
    stack.kill9("kafka");
    for _ in 0..2 {
        let (status, _, body) = post_to(&http, &key, request(100, 10)).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("no acknowledgement from the brokers within 2000 ms"),
            "{body}"
        );
    }
}

/// Sends an export's headers declaring `length` bytes and no body; returns what the gateway
/// answers within 10 s.
async fn announce_without_body(
    config: &spindle::config::Config,
    key: &str,
    length: usize,
) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(config.gateway.http_listen)
        .await
        .expect("gateway accepts");
    stream
        .write_all(
            format!(
                "POST /v1/traces HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/x-protobuf\r\n\
                 x-api-key: {key}\r\ncontent-length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .expect("headers sent");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0_u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            let text = String::from_utf8_lossy(&answer);
            if text.contains("in-flight limit") || text.contains("over the limit") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s without the body");
    String::from_utf8_lossy(&answer).into_owned()
}
