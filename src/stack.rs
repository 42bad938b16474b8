//! The local stack: real Kafka-protocol, ClickHouse, S3 and Redis servers on this machine.
//!
//! `up` installs what is missing, starts each service detached (pid file, one log file each),
//! waits for its health probe, then creates the Kafka topics and the S3 bucket and applies the
//! ClickHouse migrations. `down` stops exactly the processes `up` recorded. `status` reports
//! each service without changing anything. `up` and `down` hold an exclusive lock on the data
//! dir, so concurrent callers (parallel tests) take turns instead of racing.

mod install;
mod process;
mod services;
mod setup;
pub mod web;
mod welcome;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::clients::{Dependency, Probes};
use crate::config::Config;
use services::{Kind, Role, Service};

/// Where the stack keeps things, all under the data dir.
#[derive(Debug, Clone)]
pub struct Layout {
    pub data_dir: PathBuf,
}

impl Layout {
    /// The data dir resolved against the working directory.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("no working directory")?;
        Ok(Self {
            data_dir: crate::config::resolve(&cwd, &config.stack.data_dir),
        })
    }

    fn run_dir(&self) -> PathBuf {
        self.data_dir.join("run")
    }

    fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    fn pid_file(&self, name: &str) -> PathBuf {
        self.run_dir().join(format!("{name}.pid"))
    }

    /// The log file of one service.
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs_dir().join(format!("{name}.log"))
    }

    fn lock(&self) -> anyhow::Result<File> {
        for dir in [self.run_dir(), self.logs_dir()] {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create `{}`", dir.display()))?;
        }
        let path = self.data_dir.join("stack.lock");
        let file =
            File::create(&path).with_context(|| format!("cannot create `{}`", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock `{}`", path.display()))?;
        Ok(file)
    }
}

/// Progress lines for people, on stdout.
pub struct Output {
    quiet: bool,
}

impl Output {
    pub fn new(quiet: bool) -> Self {
        Self { quiet }
    }

    pub(crate) fn step(&mut self, subject: &str, message: &str) {
        if !self.quiet {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "  {subject:<12}{message}");
        }
    }

    pub(crate) fn line(&mut self, message: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stdout().lock(), "{message}");
        }
    }
}

/// Debian's `chromium` and `chromedriver`, installed when missing.
pub fn browser() -> anyhow::Result<(PathBuf, PathBuf)> {
    install::browser()
}

/// Brings the stack up; safe to call when it is partly or fully running.
pub async fn up(config: &Config, out: &mut Output) -> anyhow::Result<()> {
    let started = Instant::now();
    let layout = Layout::new(config)?;
    let _lock = layout.lock()?;
    out.line(&format!(
        "spindle up: data in {}",
        layout.data_dir.display()
    ));
    let services = services::services(config)?;
    let (backing, roles): (Vec<Service>, Vec<Service>) = services
        .iter()
        .cloned()
        .partition(|s| matches!(s.kind, Kind::Backing(_)));

    start_and_wait(config, &layout, &backing, out).await?;
    setup::topics(config, out).await?;
    setup::bucket(config, out).await?;
    setup::migrations(config, out).await?;
    start_and_wait(config, &layout, &roles, out).await?;
    // After the roles, so a crashed role is back before any build runs; a web app that does
    // not build must not keep the API and the pipeline down: say so.
    if let Err(e) = web::build(config, out) {
        out.step("web app", &format!("NOT BUILT: {e:#}"));
    }
    let key = welcome::dev_key(config, &layout, out).await?;
    welcome::smoke_test(config, &key, out).await?;

    out.line(&format!(
        "Spindle is up in {:.1}s.",
        started.elapsed().as_secs_f64()
    ));
    for service in &services {
        out.step(service.name(), &endpoint(config, service));
    }
    out.step(
        "ingest key",
        &format!(
            "{key}  (workspace `{}`, project `{}`)",
            welcome::DEV_WORKSPACE,
            welcome::DEV_PROJECT
        ),
    );
    out.step("logs", &layout.logs_dir().display().to_string());
    out.line(&format!(
        "Send traces with any OpenTelemetry SDK:\n  OTEL_EXPORTER_OTLP_ENDPOINT=http://{} \\\n  OTEL_EXPORTER_OTLP_HEADERS=\"x-api-key={key}\"",
        config.gateway.http_listen
    ));
    Ok(())
}

/// Starts what is not running among `services`, then waits for all of them together.
async fn start_and_wait(
    config: &Config,
    layout: &Layout,
    services: &[Service],
    out: &mut Output,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(config.stack.startup_timeout_secs);
    let mut waiting = Vec::new();
    for service in services {
        let name = service.name();
        let pid_file = layout.pid_file(name);
        if let Some(record) = process::read_pid_file(&pid_file)? {
            let expected = services::expected_fingerprint(service.kind);
            let stale = expected.is_some()
                && process::is_alive(record)
                && process::recorded_binary(&pid_file)? != expected;
            if stale {
                let grace = Duration::from_secs(config.stack.stop_timeout_secs);
                tokio::task::spawn_blocking(move || process::stop(record, grace)).await??;
                out.step(
                    name,
                    &format!("restarting: it runs an older build (pid {})", record.pid),
                );
            } else if process::is_alive(record) {
                out.step(
                    name,
                    &format!("running on {} (pid {})", service.addr, record.pid),
                );
                waiting.push((service, record.pid, false));
                continue;
            }
            std::fs::remove_file(&pid_file).ok();
        }
        process::ensure_port_free(service.addr, name, service.setting)?;
        for (addr, setting) in &service.extra {
            process::ensure_port_free(*addr, name, setting)?;
        }
        let launch = services::launch(service, config, &layout.data_dir, out)?;
        let record = process::spawn(&launch, &layout.log_file(name), &pid_file)?;
        out.step(
            name,
            &format!("started on {} (pid {})", service.addr, record.pid),
        );
        waiting.push((service, record.pid, true));
    }
    let probes = probes(config);
    let checks = waiting.iter().map(|(service, pid, fresh)| {
        let probes = &probes;
        async move {
            let waited = wait_healthy(probes, service, timeout).await;
            (
                *service,
                *pid,
                *fresh,
                waited,
                layout.log_file(service.name()),
            )
        }
    });
    let mut failures = Vec::new();
    for (service, pid, fresh, waited, log) in futures::future::join_all(checks).await {
        let name = service.name();
        match waited {
            Ok(took) if fresh => {
                out.step(name, &format!("healthy after {:.1}s", took.as_secs_f64()))
            }
            Ok(_) => out.step(name, "healthy"),
            Err(e) => failures.push(format!(
                "{name} (pid {pid}, {}) did not become healthy: {e}\n--- last lines of {} ---\n{}",
                service.addr,
                log.display(),
                process::log_tail(&log, 15)
            )),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// Probes one service: a backing server's own protocol, or a role's `/readyz`.
async fn probe(probes: &Probes, service: &Service, timeout: Duration) -> Result<(), String> {
    match service.kind {
        Kind::Backing(dependency) => probes.check(dependency, timeout).await,
        Kind::Role(_) => {
            let url = format!("http://{}/readyz", service.addr);
            let response = reqwest::Client::new()
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!(
                    "{url} answered {}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ))
            }
        }
    }
}

async fn wait_healthy(
    probes: &Probes,
    service: &Service,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut last = String::from("not probed yet");
    while started.elapsed() < timeout {
        match probe(probes, service, Duration::from_secs(2)).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "no healthy answer within {}s (last: {last})",
        timeout.as_secs()
    )
}

fn endpoint(config: &Config, service: &Service) -> String {
    match service.kind {
        Kind::Backing(Dependency::Kafka) => {
            format!("{} (Kafka protocol, tansu)", config.kafka.brokers)
        }
        Kind::Backing(Dependency::ClickHouse) => format!(
            "{} (ClickHouse HTTP, database `{}`)",
            config.clickhouse.url, config.clickhouse.database
        ),
        Kind::Backing(Dependency::S3) => {
            format!("{} (S3, bucket `{}`)", config.s3.endpoint, config.s3.bucket)
        }
        Kind::Backing(Dependency::Redis) => format!("redis://{}", service.addr),
        Kind::Role(Role::Projector | Role::Processor | Role::Sink) => {
            format!("health on http://{}", service.addr)
        }
        Kind::Role(Role::Graphql) => format!(
            "GraphQL http://{0}/graphql  GraphiQL http://{0}/graphiql  health http://{1}",
            config.graphql.listen, service.addr
        ),
        Kind::Role(Role::Gateway) => format!(
            "OTLP/HTTP http://{}  OTLP/gRPC http://{}  health http://{}",
            config.gateway.http_listen, config.gateway.grpc_listen, service.addr
        ),
    }
}

fn probes(config: &Config) -> Probes {
    Probes {
        kafka: config.kafka.clone(),
        clickhouse: config.clickhouse.clone(),
        s3: config.s3.clone(),
        redis: config.redis.clone(),
    }
}

/// Stops every service `up` started, in reverse order.
pub async fn down(config: &Config, out: &mut Output) -> anyhow::Result<()> {
    let layout = Layout::new(config)?;
    let _lock = layout.lock()?;
    let grace = Duration::from_secs(config.stack.stop_timeout_secs);
    for name in services::NAMES.iter().rev() {
        let pid_file = layout.pid_file(name);
        match process::read_pid_file(&pid_file)? {
            Some(record) if process::is_alive(record) => {
                let killed =
                    tokio::task::spawn_blocking(move || process::stop(record, grace)).await??;
                let how = if killed {
                    "killed after the grace period"
                } else {
                    "stopped"
                };
                out.step(name, &format!("{how} (pid {})", record.pid));
            }
            Some(_) => out.step(name, "was not running"),
            None => out.step(name, "not started by spindle up"),
        }
        std::fs::remove_file(&pid_file).ok();
    }
    Ok(())
}

/// One service as `spindle status` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service: &'static str,
    pub address: String,
    pub pid: Option<i32>,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Running and answering its probe.
    Healthy,
    /// The process runs but does not answer.
    Unhealthy,
    /// Not running (never started, stopped, or crashed).
    Stopped,
}

/// Reports every service; changes nothing.
pub async fn status(config: &Config) -> anyhow::Result<Vec<ServiceStatus>> {
    let layout = Layout::new(config)?;
    let probes = probes(config);
    let timeout = Duration::from_millis(config.health.check_timeout_ms);
    let services = services::services(config)?;
    let reports = services.iter().map(|service| {
        let probes = &probes;
        let layout = &layout;
        async move {
            let name = service.name();
            let record = process::read_pid_file(&layout.pid_file(name))?;
            let (state, detail, pid) = match record {
                Some(record) if process::is_alive(record) => {
                    match probe(probes, service, timeout).await {
                        Ok(()) => (State::Healthy, None, Some(record.pid)),
                        Err(e) => (State::Unhealthy, Some(e), Some(record.pid)),
                    }
                }
                Some(record) => (
                    State::Stopped,
                    Some(format!(
                        "pid {} is gone; `spindle up` restarts it",
                        record.pid
                    )),
                    None,
                ),
                None => (State::Stopped, None, None),
            };
            anyhow::Ok(ServiceStatus {
                service: name,
                address: service.addr.to_string(),
                pid,
                state,
                detail,
                log: layout.log_file(name),
            })
        }
    });
    futures::future::join_all(reports)
        .await
        .into_iter()
        .collect()
}

/// The data dir a config resolves to, for messages.
pub fn data_dir(config: &Config) -> anyhow::Result<PathBuf> {
    Ok(Layout::new(config)?.data_dir)
}
