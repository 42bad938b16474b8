//! `spindle bench pipeline`: end-to-end throughput and ack → queryable latency of a running
//! stack (gateway → `spans.raw` → processor → `spans.enriched` → sink → ClickHouse).
//!
//! One run issues a fresh project and ingest key, so its counts are its own. The load phase
//! sends the gateway bench's GenAI spans over OTLP/HTTP protobuf, with trace ids unique to the
//! run, and counts what the gateway acknowledged. Throughout the load a probe (one small trace)
//! goes out every ~100 ms and `spans` is polled until its rows are visible. After the load, the
//! drain polls the project's row count until it reaches the acknowledged total. CPU seconds of
//! every local service and of the bench come from `/proc`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use spindle_schemas::platform::ApiKeyScope;
use tokio::sync::mpsc;

use super::{cpu_seconds, export_request, genai_span, now_nanos, peak_rss_mib, pid_of, set_ids};
use crate::config::Config;

/// One run's settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub duration: Duration,
    pub concurrency: usize,
    pub spans_per_request: usize,
    /// Offered spans per second over all connections; 0 sends as fast as the gateway acks.
    pub rate: u64,
    pub span_bytes: usize,
    /// How long the drain, and each probe, may take before the run stops waiting.
    pub drain_timeout: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub options: Options,
    pub project: String,
    /// Spans in the load requests sent.
    pub offered_spans: u64,
    /// Spans the gateway acknowledged, load and probes.
    pub acked_spans: u64,
    /// Spans refused inside acknowledged requests (partial success).
    pub rejected_spans: u64,
    /// Requests never acknowledged, after retries; their spans may or may not be stored.
    pub failed_requests: u64,
    pub in_doubt_spans: u64,
    pub retries: u64,
    /// The load phase, from the first request to the last answer.
    pub load: Duration,
    /// From the start of the load until every acknowledged span was queryable.
    pub queryable: Option<Duration>,
    /// Rows of the project with `sign = 1`, and distinct `(trace_id, span_id)`, at the end.
    pub stored: u64,
    pub distinct: u64,
    /// Ack → queryable of each probe that became visible, sorted.
    pub latencies: Vec<Duration>,
    pub probes_sent: u64,
    /// Probes acknowledged but not visible within `drain_timeout`.
    pub probes_lost: u64,
    /// Round trips of the probe polls, sorted: a probe is timed at the end of the poll that
    /// saw it, so this bounds how much of its latency the measurement adds.
    pub poll_round_trips: Vec<Duration>,
    /// CPU seconds by process over `window` (load and drain).
    pub cpu: Vec<(&'static str, f64)>,
    /// Busy CPU seconds of the whole machine over `window`, from `/proc/stat`: what is not in
    /// `cpu` was used by other work on the machine.
    pub machine_cpu: f64,
    pub window: Duration,
    pub cores: usize,
    /// Peak resident memory (VmHWM, since the process started) in MiB.
    pub peak_rss_mib: Vec<(&'static str, f64)>,
}

impl Report {
    pub fn offered_rate(&self) -> f64 {
        rate(self.offered_spans, self.load)
    }

    pub fn acked_rate(&self) -> f64 {
        rate(self.acked_spans, self.load)
    }

    /// Acknowledged spans over the time from load start until all were queryable.
    pub fn sustained_rate(&self) -> Option<f64> {
        self.queryable.map(|t| rate(self.acked_spans, t))
    }

    pub fn count(&self) -> Count {
        count_verdict(self.stored, self.acked_spans, self.in_doubt_spans)
    }

    fn cpu_of(&self, name: &str) -> f64 {
        self.cpu
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, c)| *c)
    }

    /// CPU seconds of the stack's services (every watched process but the bench).
    pub fn stack_cpu(&self) -> f64 {
        self.cpu
            .iter()
            .filter(|(n, _)| *n != "bench")
            .map(|(_, c)| c)
            .sum()
    }

    /// The rate the stack could reach if CPU were its only limit and every core were its own:
    /// acknowledged spans per stack CPU second, times the cores.
    pub fn cpu_bound_ceiling(&self) -> f64 {
        ceiling(self.acked_spans, self.stack_cpu(), self.cores)
    }

    /// Busy CPU seconds of the machine outside the watched processes.
    pub fn other_cpu(&self) -> f64 {
        (self.machine_cpu - self.cpu.iter().map(|(_, c)| c).sum::<f64>()).max(0.0)
    }

    fn rss_of(&self, name: &str) -> f64 {
        self.peak_rss_mib
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, m)| *m)
    }
}

/// How the stored rows compare with what was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Exact,
    /// Fewer rows than acknowledged spans: spans lost or not yet written.
    Missing(u64),
    /// More rows, but no more than the spans of unacknowledged requests, which may have landed.
    InDoubt(u64),
    /// More rows than acknowledged and in-doubt spans together: spans counted twice.
    Duplicated(u64),
}

/// Every local service the run watches, as named by its pid file (absent ones are skipped).
const WATCHED: [&str; 9] = [
    "gateway",
    "processor",
    "sink",
    "kafka",
    "clickhouse",
    "s3",
    "redis",
    "projector",
    "graphql",
];
/// The processes of the table's CPU column, in order.
const TABLE_CPU: [&str; 9] = [
    "gateway",
    "processor",
    "sink",
    "kafka",
    "clickhouse",
    "s3",
    "redis",
    "projector",
    "bench",
];
const PROBE_EVERY: Duration = Duration::from_millis(100);
const PROBE_SPANS: usize = 4;
const POLL_EVERY: Duration = Duration::from_millis(25);
const COUNT_EVERY: Duration = Duration::from_millis(250);
const TRIES: u32 = 5;
/// The workspace of the projects the bench creates.
const WORKSPACE: &str = "bench";

/// Runs the load, the probes and the drain against the stack's pipeline.
pub async fn run(config: &Config, options: Options) -> anyhow::Result<Report> {
    let data_dir = crate::stack::data_dir(config)?;
    let mut pids: Vec<(&'static str, i32)> = WATCHED
        .iter()
        .filter_map(|name| pid_of(&data_dir, name).map(|pid| (*name, pid)))
        .collect();
    for role in ["gateway", "processor", "sink"] {
        if !pids.iter().any(|(n, _)| *n == role) {
            bail!(
                "no {role} is running under {}: run `spindle up` first",
                data_dir.display()
            );
        }
    }
    pids.push((
        "bench",
        i32::try_from(std::process::id()).context("pid fits i32")?,
    ));

    let run_id = uuid::Uuid::now_v7();
    let salt = u32::from_be_bytes(run_id.as_bytes()[12..16].try_into().context("4 bytes")?);
    let project = format!("bench-{}", &run_id.simple().to_string()[..12]);
    let key = crate::platform_admin::create_key(
        config,
        WORKSPACE,
        &project,
        &[ApiKeyScope::Ingest],
        "spindle bench pipeline",
    )
    .await?;
    if !key.projected {
        bail!("the projector did not apply the bench key within 15 s; see its log");
    }
    let url = format!("http://{}/v1/traces", config.gateway.http_listen);
    let key = key.value.reveal().to_owned();
    wait_until_accepted(&url, &key).await?;
    let db =
        crate::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    eprintln!(
        "project `{project}`: {} s of load, then up to {} s of drain",
        options.duration.as_secs(),
        options.drain_timeout.as_secs()
    );

    let before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let machine_before = machine_busy_seconds();
    let started = Instant::now();
    let load = Arc::new(Load {
        url,
        key,
        salt,
        options,
        started,
        deadline: started + options.duration,
        next: AtomicU64::new(0),
    });
    let (found_tx, found_rx) = mpsc::unbounded_channel();
    let poller = tokio::spawn(poll_probes(
        db.clone(),
        project.clone(),
        found_rx,
        options.drain_timeout,
    ));
    let prober = tokio::spawn(send_probes(load.clone(), found_tx));
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| tokio::spawn(load_worker(load.clone())))
        .collect();
    let mut tally = Tally::default();
    for worker in workers {
        tally.add(&worker.await??);
    }
    tally.add(&prober.await?);
    let load_done = Instant::now();
    eprintln!(
        "load done: {} spans acknowledged in {:.1} s; draining",
        tally.acked,
        (load_done - started).as_secs_f64()
    );

    let mut queryable = None;
    let mut last_report = Instant::now();
    loop {
        match count_rows(&db, &project).await {
            Ok((stored, _)) if stored >= tally.acked => {
                queryable = Some(started.elapsed());
                break;
            }
            Ok((stored, _)) if last_report.elapsed() >= Duration::from_secs(5) => {
                last_report = Instant::now();
                eprintln!("  {stored} of {} spans queryable", tally.acked);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "count query failed"),
        }
        if load_done.elapsed() >= options.drain_timeout {
            break;
        }
        tokio::time::sleep(COUNT_EVERY).await;
    }
    let window = started.elapsed();
    let machine_cpu = machine_busy_seconds() - machine_before;
    let cpu = pids
        .iter()
        .zip(before)
        .map(|((name, pid), before)| (*name, cpu_seconds(*pid) - before))
        .collect();
    let peak_rss_mib = pids
        .iter()
        .filter(|(n, _)| matches!(*n, "gateway" | "processor" | "sink"))
        .map(|(n, pid)| (*n, peak_rss_mib(*pid)))
        .collect();
    let (mut latencies, mut poll_round_trips, probes_lost) = poller.await??;
    latencies.sort_unstable();
    poll_round_trips.sort_unstable();
    if queryable.is_some() {
        // Give a late duplicate the chance to show up before checking that none did.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (stored, distinct) = final_counts(&db, &project).await?;
    Ok(Report {
        options,
        project,
        offered_spans: tally.offered,
        acked_spans: tally.acked,
        rejected_spans: tally.rejected,
        failed_requests: tally.failed_requests,
        in_doubt_spans: tally.in_doubt,
        retries: tally.retries,
        load: load_done - started,
        queryable,
        stored,
        distinct,
        latencies,
        probes_sent: tally.probes,
        probes_lost,
        poll_round_trips,
        cpu,
        machine_cpu,
        window,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        peak_rss_mib,
    })
}

/// What the load workers and the prober share.
struct Load {
    url: String,
    key: String,
    salt: u32,
    options: Options,
    started: Instant,
    deadline: Instant,
    /// The next load request number, over all workers.
    next: AtomicU64,
}

#[derive(Debug, Default)]
struct Tally {
    offered: u64,
    acked: u64,
    rejected: u64,
    failed_requests: u64,
    in_doubt: u64,
    retries: u64,
    probes: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.offered += other.offered;
        self.acked += other.acked;
        self.rejected += other.rejected;
        self.failed_requests += other.failed_requests;
        self.in_doubt += other.in_doubt;
        self.retries += other.retries;
        self.probes += other.probes;
    }

    /// Books one request of `spans` spans by its outcome.
    fn book(&mut self, spans: u64, outcome: Export) {
        match outcome {
            Export::Acked { rejected } => {
                self.acked += spans.saturating_sub(rejected);
                self.rejected += rejected;
            }
            Export::Failed => {
                self.failed_requests += 1;
                self.in_doubt += spans;
            }
        }
    }
}

/// The outcome of one export request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Export {
    Acked { rejected: u64 },
    Failed,
}

async fn load_worker(load: Arc<Load>) -> anyhow::Result<Tally> {
    let options = load.options;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let now = now_nanos();
    let mut request = export_request(
        (0..options.spans_per_request)
            .map(|i| genai_span(now, 0, i as u64, options.span_bytes))
            .collect(),
    );
    let mut tally = Tally::default();
    loop {
        let n = load.next.fetch_add(1, Ordering::Relaxed);
        if let Some(at) = send_at(n, options.spans_per_request, options.rate) {
            let when = load.started + at;
            if when >= load.deadline {
                break;
            }
            tokio::time::sleep_until(when.into()).await;
        }
        if Instant::now() >= load.deadline {
            break;
        }
        let id = load_request_id(load.salt, n);
        for resource in &mut request.resource_spans {
            for scope in &mut resource.scope_spans {
                for (i, span) in scope.spans.iter_mut().enumerate() {
                    set_ids(span, id, i as u64);
                }
            }
        }
        let spans = options.spans_per_request as u64;
        tally.offered += spans;
        let body = Bytes::from(request.encode_to_vec());
        let outcome = export(&http, &load.url, &load.key, body, TRIES, &mut tally.retries).await;
        tally.book(spans, outcome);
    }
    Ok(tally)
}

/// Sends a probe every `PROBE_EVERY` until the load ends; each acknowledged probe goes to the
/// poller with its trace id and ack instant.
async fn send_probes(load: Arc<Load>, found: mpsc::UnboundedSender<Probe>) -> Tally {
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let http = reqwest::Client::new();
    let mut sends = Vec::new();
    let mut k = 0_u32;
    loop {
        ticker.tick().await;
        if Instant::now() >= load.deadline {
            break;
        }
        let id = probe_request_id(load.salt, k);
        k += 1;
        let now = now_nanos();
        let request = export_request(
            (0..PROBE_SPANS)
                .map(|i| genai_span(now, id, i as u64, load.options.span_bytes))
                .collect(),
        );
        let (http, load, found) = (http.clone(), load.clone(), found.clone());
        sends.push(tokio::spawn(async move {
            let body = Bytes::from(request.encode_to_vec());
            let mut retries = 0;
            let outcome = export(&http, &load.url, &load.key, body, 1, &mut retries).await;
            if outcome == (Export::Acked { rejected: 0 }) {
                let trace = super::span_ids(id, 0).0;
                // The poller outlives every probe; a closed channel only loses the latency.
                let _ = found.send(Probe {
                    trace_id: trace_hex(trace),
                    acked: Instant::now(),
                    spans: PROBE_SPANS as u64,
                });
            }
            outcome
        }));
    }
    let mut tally = Tally::default();
    for send in sends {
        let outcome = send.await.unwrap_or(Export::Failed);
        tally.probes += 1;
        tally.book(PROBE_SPANS as u64, outcome);
    }
    tally
}

/// An acknowledged probe waiting to become visible.
#[derive(Debug)]
struct Probe {
    trace_id: String,
    acked: Instant,
    spans: u64,
}

/// Polls `spans` for the pending probes until every one is visible or past `deadline` after
/// its ack. Returns the latencies, the polls' round trips and the number of probes never seen.
async fn poll_probes(
    db: clickhouse::Client,
    project: String,
    mut found: mpsc::UnboundedReceiver<Probe>,
    deadline: Duration,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, u64)> {
    let mut pending: HashMap<String, (Instant, u64)> = HashMap::new();
    let mut latencies = Vec::new();
    let mut round_trips = Vec::new();
    let mut lost = 0;
    let mut open = true;
    loop {
        if pending.is_empty() && open {
            match found.recv().await {
                Some(p) => {
                    pending.insert(p.trace_id, (p.acked, p.spans));
                }
                None => open = false,
            }
        }
        loop {
            match found.try_recv() {
                Ok(p) => {
                    pending.insert(p.trace_id, (p.acked, p.spans));
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if pending.is_empty() {
            if open {
                continue;
            }
            break;
        }
        let traces: Vec<&str> = pending.keys().map(String::as_str).collect();
        let asked = Instant::now();
        let visible = db
            .query(
                "SELECT trace_id, count() FROM spans \
                 WHERE project_id = ? AND trace_id IN ? AND sign = 1 GROUP BY trace_id",
            )
            .bind(&project)
            .bind(traces)
            .fetch_all::<(String, u64)>()
            .await;
        let seen = Instant::now();
        round_trips.push(seen - asked);
        match visible {
            Ok(rows) => {
                for (trace, rows) in rows {
                    if let Some((acked, spans)) = pending.get(&trace)
                        && rows >= *spans
                    {
                        latencies.push(seen - *acked);
                        pending.remove(&trace);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "probe query failed"),
        }
        pending.retain(|_, (acked, _)| {
            let waiting = acked.elapsed() < deadline;
            if !waiting {
                lost += 1;
            }
            waiting
        });
        tokio::time::sleep(POLL_EVERY).await;
    }
    Ok((latencies, round_trips, lost))
}

/// Sends one export request, retrying failures up to `tries` attempts in all (an SDK would; a
/// copy of a request that did land is absorbed by the sink).
async fn export(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    body: Bytes,
    tries: u32,
    retries: &mut u64,
) -> Export {
    for attempt in 0..tries {
        if attempt > 0 {
            *retries += 1;
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        let response = http
            .post(url)
            .header("content-type", "application/x-protobuf")
            .header("x-api-key", key)
            .body(body.clone())
            .send()
            .await;
        let Ok(response) = response else { continue };
        let status = response.status();
        if status.is_client_error() && status.as_u16() != 429 {
            tracing::warn!(%status, "export refused");
            return Export::Failed;
        }
        if !status.is_success() {
            continue;
        }
        let Ok(answer) = response.bytes().await else {
            continue;
        };
        let rejected = ExportTraceServiceResponse::decode(answer)
            .ok()
            .and_then(|r| r.partial_success)
            .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0));
        return Export::Acked { rejected };
    }
    Export::Failed
}

/// Waits until the gateway accepts a new key: the projector applies it to Redis, and the
/// gateway may still hold a cached "unknown".
async fn wait_until_accepted(url: &str, key: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // An empty request: authorized, then acknowledged with nothing to store.
        let status = http
            .post(url)
            .header("content-type", "application/x-protobuf")
            .header("x-api-key", key)
            .body(Vec::new())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 200 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the gateway at `{url}` still refuses the bench key (last status {status})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Busy CPU seconds of the whole machine since boot.
fn machine_busy_seconds() -> f64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| busy_ticks(&stat))
        .map_or(0.0, |ticks| ticks as f64 / super::clock_ticks_per_second())
}

/// Busy ticks from the `cpu` line of `/proc/stat`: user, nice, system, irq, softirq, steal
/// (idle and iowait are not busy; guest time is already inside user).
fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    Some(
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|i| fields.get(*i))
            .sum(),
    )
}

/// Rows of the project with `sign = 1`, and the sum of `sign`.
async fn count_rows(db: &clickhouse::Client, project: &str) -> anyhow::Result<(u64, i64)> {
    db.query("SELECT countIf(sign = 1), sum(sign) FROM spans WHERE project_id = ?")
        .bind(project)
        .fetch_one()
        .await
        .context("cannot count the project's spans")
}

/// Rows with `sign = 1` and distinct `(trace_id, span_id)` of the project.
async fn final_counts(db: &clickhouse::Client, project: &str) -> anyhow::Result<(u64, u64)> {
    db.query(
        "SELECT countIf(sign = 1), uniqExactIf(trace_id, span_id, sign = 1) \
         FROM spans WHERE project_id = ?",
    )
    .bind(project)
    .fetch_one()
    .await
    .context("cannot count the project's spans")
}

/// The request number of load request `n`: the run's salt in the high half.
fn load_request_id(salt: u32, n: u64) -> u64 {
    (u64::from(salt) << 32) | (n & 0x7fff_ffff)
}

/// The request number of probe `k`, never one of the load's.
fn probe_request_id(salt: u32, k: u32) -> u64 {
    (u64::from(salt) << 32) | (1 << 31) | u64::from(k & 0x7fff_ffff)
}

/// A trace id as stored in `spans`: 32 lowercase hex digits.
fn trace_hex(trace: u128) -> String {
    format!("{trace:032x}")
}

/// When request `n` is due after the start, for an offered `rate` of spans per second; `None`
/// when the rate is open (0).
fn send_at(n: u64, spans_per_request: usize, rate: u64) -> Option<Duration> {
    (rate > 0).then(|| Duration::from_secs_f64(n as f64 * spans_per_request as f64 / rate as f64))
}

fn rate(spans: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { spans as f64 / secs } else { 0.0 }
}

/// Spans per second that `cores` fully busy cores would carry at `cpu_seconds` per `spans`.
fn ceiling(spans: u64, cpu_seconds: f64, cores: usize) -> f64 {
    if cpu_seconds > 0.0 {
        spans as f64 / cpu_seconds * cores as f64
    } else {
        0.0
    }
}

/// CPU seconds as a share of the machine's capacity over `wall`, in percent.
fn cpu_percent(cpu_seconds: f64, wall: Duration, cores: usize) -> f64 {
    let capacity = wall.as_secs_f64() * cores as f64;
    if capacity > 0.0 {
        cpu_seconds / capacity * 100.0
    } else {
        0.0
    }
}

/// The nearest-rank percentile `q` (0–1] of sorted values; zero when there are none.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len().max(1)) - 1)
        .copied()
        .unwrap_or_default()
}

fn count_verdict(stored: u64, acked: u64, in_doubt: u64) -> Count {
    match stored.cmp(&acked) {
        std::cmp::Ordering::Equal => Count::Exact,
        std::cmp::Ordering::Less => Count::Missing(acked - stored),
        std::cmp::Ordering::Greater if stored - acked <= in_doubt => Count::InDoubt(stored - acked),
        std::cmp::Ordering::Greater => Count::Duplicated(stored - acked - in_doubt),
    }
}

/// The header of the results table.
pub const TABLE_HEADER: &str = "| load | offered spans/s | acked spans/s | sustained spans/s (ack → all queryable) | drain after load | ack → queryable p50 | p99 | max | probes lost / sent | failed req. / rejected spans | stored vs acked | CPU % of all cores: gateway / processor / sink / broker / clickhouse / s3 / redis / projector / bench / rest of machine | stack CPU-s per 1k spans (CPU-bound ceiling) | peak RSS MiB: gateway / processor / sink |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";

/// A markdown table of reports, one row each.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(TABLE_HEADER);
    for r in reports {
        let o = r.options;
        let load = format!(
            "{} s, {} × {} spans of {} B, {}",
            o.duration.as_secs(),
            o.concurrency,
            o.spans_per_request,
            o.span_bytes,
            if o.rate == 0 {
                "open".to_owned()
            } else {
                format!("{}/s", o.rate)
            }
        );
        let sustained = r
            .sustained_rate()
            .map_or_else(|| "not reached".to_owned(), |s| format!("{s:.0}"));
        let drain = r.queryable.map_or_else(
            || format!("> {:.0} s", o.drain_timeout.as_secs_f64()),
            |q| format!("{:.1} s", q.saturating_sub(r.load).as_secs_f64()),
        );
        let ms = |q: f64| format!("{:.0} ms", percentile(&r.latencies, q).as_secs_f64() * 1e3);
        let mut cpu: Vec<String> = TABLE_CPU
            .iter()
            .map(|n| format!("{:.0}", cpu_percent(r.cpu_of(n), r.window, r.cores)))
            .collect();
        cpu.push(format!(
            "{:.0}",
            cpu_percent(r.other_cpu(), r.window, r.cores)
        ));
        let _ = writeln!(
            out,
            "| {load} | {:.0} | {:.0} | {sustained} | {drain} | {} | {} | {} | {} / {} | {} / {} | {} | {} | {:.2} ({:.0} spans/s) | {:.0} / {:.0} / {:.0} |",
            r.offered_rate(),
            r.acked_rate(),
            ms(0.50),
            ms(0.99),
            ms(1.0),
            r.probes_lost,
            r.probes_sent,
            r.failed_requests,
            r.rejected_spans,
            match r.count() {
                Count::Exact => "exact".to_owned(),
                Count::Missing(n) => format!("{n} missing"),
                Count::InDoubt(n) => format!("+{n} (in doubt)"),
                Count::Duplicated(n) => format!("{n} DUPLICATED"),
            },
            cpu.join(" / "),
            r.stack_cpu() / r.acked_spans.max(1) as f64 * 1000.0,
            r.cpu_bound_ceiling(),
            r.rss_of("gateway"),
            r.rss_of("processor"),
            r.rss_of("sink"),
        );
    }
    out
}

/// The targets of issue 4.
const TARGET_SPANS_PER_SEC: f64 = 50_000.0;
const TARGET_P99: Duration = Duration::from_secs(2);

/// A few lines for people: the figures against the targets, and where the CPU went.
pub fn summary(r: &Report) -> String {
    let mut out = String::new();
    let o = r.options;
    let _ = writeln!(
        out,
        "project `{}`: {:.1} s of load, {} connections × {} spans of {} B per request, offered {}",
        r.project,
        r.load.as_secs_f64(),
        o.concurrency,
        o.spans_per_request,
        o.span_bytes,
        if o.rate == 0 {
            "as fast as acknowledged".to_owned()
        } else {
            format!("at {} spans/s", o.rate)
        }
    );
    let _ = writeln!(
        out,
        "acknowledged {} spans ({:.0}/s during the load; {} retries, {} requests failed, {} spans rejected)",
        r.acked_spans,
        r.acked_rate(),
        r.retries,
        r.failed_requests,
        r.rejected_spans
    );
    match (r.queryable, r.sustained_rate()) {
        (Some(q), Some(s)) => {
            let _ = writeln!(
                out,
                "all queryable {:.1} s after load start ({:.1} s after it stopped): sustained {s:.0} spans/s, target ≥ {TARGET_SPANS_PER_SEC:.0}: {}",
                q.as_secs_f64(),
                q.saturating_sub(r.load).as_secs_f64(),
                verdict_at_least(s, TARGET_SPANS_PER_SEC)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "NOT all queryable within {} s of the load's end: {} of {} rows ({:.0} spans/s over {:.1} s), target ≥ {TARGET_SPANS_PER_SEC:.0}: missed",
                o.drain_timeout.as_secs(),
                r.stored,
                r.acked_spans,
                rate(r.stored, r.window),
                r.window.as_secs_f64()
            );
        }
    }
    let p99 = percentile(&r.latencies, 0.99);
    let _ = writeln!(
        out,
        "ack → queryable over {} probes (polls every {} ms, round trip p50 {:.0} ms, max {:.0} ms): p50 {:.3} s, p99 {:.3} s, max {:.3} s, {} never visible; target p99 ≤ {} s: {}",
        r.latencies.len(),
        POLL_EVERY.as_millis(),
        percentile(&r.poll_round_trips, 0.5).as_secs_f64() * 1e3,
        percentile(&r.poll_round_trips, 1.0).as_secs_f64() * 1e3,
        percentile(&r.latencies, 0.50).as_secs_f64(),
        p99.as_secs_f64(),
        percentile(&r.latencies, 1.0).as_secs_f64(),
        r.probes_lost,
        TARGET_P99.as_secs(),
        if r.probes_lost > 0 || r.latencies.is_empty() {
            "missed (probes lost)".to_owned()
        } else if p99 <= TARGET_P99 {
            "met".to_owned()
        } else {
            format!("missed by {:.3} s", (p99 - TARGET_P99).as_secs_f64())
        }
    );
    let _ = writeln!(
        out,
        "stored: {} rows with sign = 1, {} distinct spans, for {} acknowledged: {}",
        r.stored,
        r.distinct,
        r.acked_spans,
        match r.count() {
            Count::Exact => "exact".to_owned(),
            Count::Missing(n) => format!("{n} MISSING"),
            Count::InDoubt(n) => format!("{n} more, from requests that failed and may have landed"),
            Count::Duplicated(n) => format!("{n} DUPLICATED"),
        }
    );
    let mut cpu = r.cpu.clone();
    cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = cpu
        .iter()
        .map(|(n, c)| format!("{n} {c:.1} s ({:.0} %)", cpu_percent(*c, r.window, r.cores)))
        .collect();
    let _ = writeln!(
        out,
        "the stack used {:.1} CPU s, {:.2} per 1000 spans: if CPU were the only limit, {} dedicated cores would carry {:.0} spans/s",
        r.stack_cpu(),
        r.stack_cpu() / r.acked_spans.max(1) as f64 * 1000.0,
        r.cores,
        r.cpu_bound_ceiling()
    );
    let _ = writeln!(
        out,
        "CPU over {:.1} s × {} cores: {}; machine busy {:.1} s ({:.0} %), of which outside the watched processes {:.1} s",
        r.window.as_secs_f64(),
        r.cores,
        parts.join(", "),
        r.machine_cpu,
        cpu_percent(r.machine_cpu, r.window, r.cores),
        r.other_cpu()
    );
    out
}

fn verdict_at_least(value: f64, target: f64) -> String {
    if value >= target {
        "met".to_owned()
    } else {
        format!(
            "missed by {:.0} ({:.1} % of the target)",
            target - value,
            value / target * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 0.50), ms(50));
        assert_eq!(percentile(&values, 0.99), ms(99));
        assert_eq!(percentile(&values, 1.0), ms(100));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[ms(1), ms(9)], 0.5), ms(1));
        assert_eq!(percentile(&[ms(1), ms(9)], 0.99), ms(9));
        assert_eq!(percentile(&[], 0.99), Duration::ZERO);
    }

    #[test]
    fn rates_and_shares() {
        assert_eq!(rate(50_000, Duration::from_secs(10)), 5_000.0);
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(cpu_percent(30.0, Duration::from_secs(30), 2), 50.0);
        assert_eq!(cpu_percent(1.0, Duration::ZERO, 2), 0.0);
        assert_eq!(ceiling(10_000, 20.0, 2), 1_000.0);
        assert_eq!(ceiling(10_000, 0.0, 2), 0.0);
    }

    #[test]
    fn busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 5 20 1000 50 3 2 1 7 0\ncpu0 50 2 10 500 25 1 1 0 0 0\n";
        assert_eq!(busy_ticks(stat), Some(100 + 5 + 20 + 3 + 2 + 1));
        assert_eq!(busy_ticks("intr 1 2 3\n"), None);
    }

    #[test]
    fn requests_are_spaced_for_the_offered_rate() {
        assert_eq!(send_at(0, 200, 10_000), Some(Duration::ZERO));
        assert_eq!(send_at(50, 200, 10_000), Some(Duration::from_secs(1)));
        assert_eq!(send_at(5, 200, 2_000), Some(Duration::from_millis(500)));
        assert_eq!(send_at(5, 200, 0), None);
    }

    #[test]
    fn probe_and_load_traces_never_collide_and_carry_the_run() {
        let salt = 0xdead_beef;
        let load = super::super::span_ids(load_request_id(salt, 3), 0).0;
        let probe = super::super::span_ids(probe_request_id(salt, 3), 0).0;
        assert_ne!(load, probe);
        assert_ne!(load_request_id(salt, 3), load_request_id(salt + 1, 3));
        assert_eq!(load_request_id(salt, 3) >> 32, u64::from(salt));
        let hex = trace_hex(probe);
        assert_eq!(hex.len(), 32);
        assert!(hex.starts_with("deadbeef8"), "{hex}");
        assert_eq!(trace_hex(1), format!("{}1", "0".repeat(31)));
    }

    #[test]
    fn counts_tell_lost_from_duplicated() {
        assert_eq!(count_verdict(100, 100, 0), Count::Exact);
        assert_eq!(count_verdict(90, 100, 0), Count::Missing(10));
        assert_eq!(count_verdict(110, 100, 200), Count::InDoubt(10));
        assert_eq!(count_verdict(110, 100, 0), Count::Duplicated(10));
        assert_eq!(count_verdict(310, 100, 200), Count::Duplicated(10));
    }

    #[test]
    fn acks_are_booked_by_outcome() {
        let mut tally = Tally::default();
        tally.book(200, Export::Acked { rejected: 0 });
        tally.book(200, Export::Acked { rejected: 3 });
        tally.book(200, Export::Failed);
        assert_eq!(
            (
                tally.acked,
                tally.rejected,
                tally.failed_requests,
                tally.in_doubt
            ),
            (397, 3, 1, 200)
        );
    }

    fn report() -> Report {
        Report {
            options: Options {
                duration: Duration::from_secs(10),
                concurrency: 8,
                spans_per_request: 200,
                rate: 0,
                span_bytes: 1024,
                drain_timeout: Duration::from_secs(120),
            },
            project: "bench-x".into(),
            offered_spans: 100_000,
            acked_spans: 100_000,
            rejected_spans: 0,
            failed_requests: 0,
            in_doubt_spans: 0,
            retries: 0,
            load: Duration::from_secs(10),
            queryable: Some(Duration::from_secs(40)),
            stored: 100_000,
            distinct: 100_000,
            latencies: (1..=100).map(|v| ms(v * 30)).collect(),
            probes_sent: 100,
            probes_lost: 0,
            poll_round_trips: vec![ms(10), ms(20)],
            cpu: vec![("gateway", 4.0), ("processor", 40.0), ("bench", 1.0)],
            machine_cpu: 55.0,
            window: Duration::from_secs(40),
            cores: 2,
            peak_rss_mib: vec![("gateway", 70.0)],
        }
    }

    #[test]
    fn the_table_row_lines_up_with_its_header() {
        let table = table(&[report()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let cells = |l: &str| l.matches('|').count();
        assert_eq!(cells(lines[0]), cells(lines[1]));
        assert_eq!(cells(lines[0]), cells(lines[2]), "{}", lines[2]);
        assert!(
            lines[2].contains("| 10000 | 10000 | 2500 | 30.0 s | 1500 ms | 2970 ms | 3000 ms |"),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].contains("| 5 / 50 / 0 / 0 / 0 / 0 / 0 / 0 / 1 / 12 |"),
            "{}",
            lines[2]
        );
        // 44 CPU s of the stack (the bench's own CPU left out) for 100,000 spans, on 2 cores.
        assert!(lines[2].contains("| 0.44 (4545 spans/s) |"), "{}", lines[2]);
    }

    #[test]
    fn the_summary_says_which_targets_were_missed() {
        let text = summary(&report());
        assert!(
            text.contains(
                "sustained 2500 spans/s, target ≥ 50000: missed by 47500 (5.0 % of the target)"
            ),
            "{text}"
        );
        assert!(text.contains("p99 2.970 s"), "{text}");
        assert!(text.contains("missed by 0.970 s"), "{text}");
        assert!(
            text.contains("processor 40.0 s (50 %), gateway 4.0 s (5 %)"),
            "{text}"
        );
        let mut fast = report();
        fast.latencies = vec![ms(300); 10];
        fast.queryable = Some(Duration::from_secs(1));
        let text = summary(&fast);
        assert!(text.contains("target ≥ 50000: met"), "{text}");
        assert!(text.contains("target p99 ≤ 2 s: met"), "{text}");
    }
}
