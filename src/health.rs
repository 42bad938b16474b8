//! The health server every long-running role serves beside its own port.
//!
//! `/healthz`: the process is alive (no dependency is touched). `/readyz`: every dependency the
//! role needs answered its probe; a 503 names the ones that did not. `/metrics`: Prometheus
//! text exposition of everything recorded through the `metrics` facade.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Serialize;

use crate::clients::{Dependency, Probes};

/// What `/readyz` checks.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub probes: Probes,
    pub dependencies: Vec<Dependency>,
    pub timeout: Duration,
}

#[derive(Clone)]
struct AppState {
    readiness: Arc<Readiness>,
    metrics: PrometheusHandle,
}

/// Installs the process-wide Prometheus recorder, or returns the one already installed.
pub fn metrics_recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            metrics::gauge!("spindle_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// The health routes, to serve on their own port or to merge into a role's router.
pub fn router(readiness: Readiness, metrics: PrometheusHandle) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState {
            readiness: Arc::new(readiness),
            metrics,
        })
}

/// Serves the health routes on `listen` until `shutdown` resolves; returns the bound address
/// once listening (port 0 picks a free port).
pub async fn serve(
    listen: SocketAddr,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "health server listening");
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((addr, task))
}

async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Debug, Serialize)]
struct ReadyReport {
    ready: bool,
    dependencies: Vec<DependencyReport>,
}

#[derive(Debug, Serialize)]
struct DependencyReport {
    name: &'static str,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = &state.readiness;
    let checks = readiness.dependencies.iter().map(|&dependency| async move {
        let result = readiness.probes.check(dependency, readiness.timeout).await;
        metrics::gauge!("spindle_dependency_up", "dependency" => dependency.name())
            .set(if result.is_ok() { 1.0 } else { 0.0 });
        DependencyReport {
            name: dependency.name(),
            ok: result.is_ok(),
            error: result.err(),
        }
    });
    let dependencies = futures::future::join_all(checks).await;
    let ready = dependencies.iter().all(|d| d.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        let failing: Vec<String> = dependencies
            .iter()
            .filter(|d| !d.ok)
            .map(|d| format!("{}: {}", d.name, d.error.as_deref().unwrap_or("")))
            .collect();
        tracing::warn!(failing = %failing.join("; "), "not ready");
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(ReadyReport {
            ready,
            dependencies,
        }),
    )
        .into_response()
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
