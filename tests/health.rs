//! The shared health server, in process, with real dependencies behind `/readyz`.

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use spindle::clients::{Dependency, Probes};
use spindle::config::Config;
use spindle::health::{self, Readiness};
use tower::ServiceExt;

fn readiness(config: &Config) -> Readiness {
    Readiness {
        probes: Probes {
            kafka: config.kafka.clone(),
            clickhouse: config.clickhouse.clone(),
            s3: config.s3.clone(),
            redis: config.redis.clone(),
        },
        dependencies: Dependency::ALL.to_vec(),
        timeout: Duration::from_secs(3),
    }
}

async fn get(router: axum::Router, path: &str) -> (StatusCode, String) {
    let response = router
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn ready_when_every_dependency_answers() {
    let config = support::stack();
    let router = health::router(readiness(&config), health::metrics_recorder());

    let (status, body) = get(router.clone(), "/healthz").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));

    let (status, body) = get(router.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["ready"], true);
    assert_eq!(report["dependencies"].as_array().map(Vec::len), Some(4));

    let (status, metrics) = get(router, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("spindle_dependency_up{dependency=\"clickhouse\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("spindle_build_info"), "{metrics}");
}

#[tokio::test]
async fn not_ready_names_the_dependency_that_does_not_answer() {
    let config = support::stack();
    let mut broken = config.clone();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    broken.redis.url = spindle::config::Secret::new(format!("redis://{closed}"));
    let router = health::router(readiness(&broken), health::metrics_recorder());

    let (status, body) = get(router.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(report["ready"], false);
    let failing: Vec<&str> = report["dependencies"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["ok"] == false)
        .map(|d| d["name"].as_str().expect("name"))
        .collect();
    assert_eq!(failing, ["redis"]);
    let redis = report["dependencies"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["name"] == "redis")
        .expect("redis entry");
    assert!(
        redis["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{redis}"
    );

    // Liveness does not depend on dependencies.
    let (status, _) = get(router, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn serves_on_a_real_port_and_shuts_down() {
    let config = support::stack();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let router = health::router(readiness(&config), health::metrics_recorder());
    let (addr, task) = health::serve("127.0.0.1:0".parse().expect("addr"), router, async {
        let _ = rx.await;
    })
    .await
    .expect("bind");
    let body = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "ok\n");
    tx.send(()).expect("signal shutdown");
    task.await.expect("join").expect("clean shutdown");
}
