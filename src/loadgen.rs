//! `spindle bench gateway`: a load generator for the OTLP gateway of a running stack.
//!
//! It sends realistic GenAI spans (chat calls with prompts and completions, tool calls, token
//! usage) over OTLP/HTTP protobuf or OTLP/gRPC from several concurrent connections, and reads
//! the CPU time and peak RSS of the gateway and of the local broker and S3 server from `/proc`,
//! so throughput is reported per core of the gateway's own CPU as well as in absolute terms.
//! `pipeline` (`spindle bench pipeline`) drives the whole path into ClickHouse with the same
//! spans.

pub mod graphql;
pub mod pipeline;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use crate::config::Config;

/// One load run.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub grpc: bool,
    /// Target encoded size of one span.
    pub span_bytes: usize,
    pub spans_per_request: usize,
    pub concurrency: usize,
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub run: Run,
    pub requests: u64,
    pub spans: u64,
    pub errors: u64,
    pub wall: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU seconds used during the run, by process.
    pub cpu: Vec<(&'static str, f64)>,
    /// Peak resident memory of the gateway (VmHWM), in MiB.
    pub gateway_peak_rss_mib: f64,
}

impl Report {
    pub fn spans_per_sec(&self) -> f64 {
        self.spans as f64 / self.wall.as_secs_f64()
    }

    /// CPU seconds `name` used during the run (0 when it was not watched).
    pub fn cpu_of(&self, name: &str) -> f64 {
        self.cpu
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, c)| *c)
    }

    /// Spans per second of the gateway's own CPU time.
    pub fn spans_per_gateway_cpu_sec(&self) -> f64 {
        self.spans_per(self.cpu_of("gateway"))
    }

    /// Spans per second of the gateway's CPU time on the decode → auth → produce path: all of
    /// it but its S3 archiver thread's.
    pub fn spans_per_produce_path_cpu_sec(&self) -> f64 {
        self.spans_per(self.cpu_of("gateway") - self.cpu_of("archiver"))
    }

    fn spans_per(&self, cpu: f64) -> f64 {
        if cpu > 0.0 {
            self.spans as f64 / cpu
        } else {
            0.0
        }
    }
}

/// Runs the load against the stack's gateway.
pub async fn run(config: &Config, key: &str, run: Run) -> anyhow::Result<Report> {
    let data_dir = crate::stack::data_dir(config)?;
    let watched = ["gateway", "kafka", "s3", "redis"];
    let pids: Vec<(&'static str, i32)> = watched
        .iter()
        .filter_map(|name| pid_of(&data_dir, name).map(|pid| (*name, pid)))
        .collect();
    if !pids.iter().any(|(n, _)| *n == "gateway") {
        bail!(
            "no gateway is running under {}: run `spindle up` first",
            data_dir.display()
        );
    }
    let requests = build_requests(run.span_bytes, run.spans_per_request, 64);
    let gateway_pid = pids
        .iter()
        .find(|(n, _)| *n == "gateway")
        .map(|(_, p)| *p)
        .unwrap_or(0);
    let before: Vec<f64> = pids.iter().map(|(_, pid)| cpu_seconds(*pid)).collect();
    let archiver_before = archiver_cpu_seconds(gateway_pid);
    let started = Instant::now();
    let deadline = started + run.duration;
    let mut workers = Vec::new();
    for worker in 0..run.concurrency {
        let requests = requests.clone();
        let key = key.to_owned();
        let http_url = format!("http://{}/v1/traces", config.gateway.http_listen);
        let grpc_url = format!("http://{}", config.gateway.grpc_listen);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0_u64;
            let http = reqwest::Client::new();
            let mut grpc = if run.grpc {
                Some(TraceServiceClient::connect(grpc_url).await?)
            } else {
                None
            };
            let mut i = worker;
            while Instant::now() < deadline {
                let (bytes, request) = &requests[i % requests.len()];
                i += run.concurrency;
                let sent = Instant::now();
                let ok = match &mut grpc {
                    Some(client) => {
                        let mut message = tonic::Request::new(request.clone());
                        message
                            .metadata_mut()
                            .insert("x-api-key", key.parse().context("ascii key")?);
                        client.export(message).await.is_ok()
                    }
                    None => http
                        .post(&http_url)
                        .header("content-type", "application/x-protobuf")
                        .header("x-api-key", &key)
                        .body(bytes.clone())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success()),
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (l, e) = worker.await??;
        latencies.extend(l);
        errors += e;
    }
    let wall = started.elapsed();
    let mut cpu: Vec<(&'static str, f64)> = pids
        .iter()
        .zip(before)
        .map(|((name, pid), before)| (*name, cpu_seconds(*pid) - before))
        .collect();
    cpu.push((
        "archiver",
        archiver_cpu_seconds(gateway_pid) - archiver_before,
    ));
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Report {
        run,
        requests: latencies.len() as u64,
        spans: latencies.len() as u64 * run.spans_per_request as u64,
        errors,
        wall,
        p50: at(0.50),
        p99: at(0.99),
        cpu,
        gateway_peak_rss_mib: peak_rss_mib(gateway_pid),
    })
}

/// A markdown table of reports.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::from(
        "| transport | span size | spans/request | spans/s (absolute) | spans/s per gateway CPU core | … on the decode → auth → produce path | p50 | p99 | errors | CPU s: gateway (its S3 archiver) / broker / s3 / redis | gateway peak RSS |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        let _ = writeln!(
            out,
            "| {} | {} B | {} | {:.0} | {:.0} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.1} ({:.1}) / {:.1} / {:.1} / {:.1} | {:.0} MiB |",
            if r.run.grpc { "gRPC" } else { "HTTP protobuf" },
            r.run.span_bytes,
            r.run.spans_per_request,
            r.spans_per_sec(),
            r.spans_per_gateway_cpu_sec(),
            r.spans_per_produce_path_cpu_sec(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
            r.errors,
            r.cpu_of("gateway"),
            r.cpu_of("archiver"),
            r.cpu_of("kafka"),
            r.cpu_of("s3"),
            r.cpu_of("redis"),
            r.gateway_peak_rss_mib,
        );
    }
    out
}

/// `count` requests of `spans` spans of about `span_bytes` each, with their protobuf bytes.
fn build_requests(
    span_bytes: usize,
    spans: usize,
    count: usize,
) -> Vec<(bytes::Bytes, ExportTraceServiceRequest)> {
    let now = now_nanos();
    (0..count)
        .map(|r| {
            let spans = (0..spans)
                .map(|i| genai_span(now, r as u64, i as u64, span_bytes))
                .collect();
            let request = export_request(spans);
            (bytes::Bytes::from(request.encode_to_vec()), request)
        })
        .collect()
}

/// An export request of one resource (a support agent) and one instrumentation scope.
fn export_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    text("service.name", "support-agent"),
                    text("deployment.environment", "bench"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "openinference.instrumentation.openai".into(),
                    version: "0.1.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn now_nanos() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0)
}

/// The trace id, span id and parent span id of span `i` of request `request`: 8 spans per
/// trace, the first of each trace its root. Distinct requests never share a trace.
fn span_ids(request: u64, i: u64) -> (u128, u64, Option<u64>) {
    let trace = (u128::from(request) << 64) | u128::from(i / 8) | (1 << 127);
    let span = (request << 20) | (i + 1);
    let parent = (!i.is_multiple_of(8)).then(|| (request << 20) | (i - i % 8 + 1));
    (trace, span, parent)
}

/// Gives `span` the ids of span `i` of request `request`, reusing its buffers.
fn set_ids(span: &mut Span, request: u64, i: u64) {
    let (trace, id, parent) = span_ids(request, i);
    span.trace_id.clear();
    span.trace_id.extend_from_slice(&trace.to_be_bytes());
    span.span_id.clear();
    span.span_id.extend_from_slice(&id.to_be_bytes());
    span.parent_span_id.clear();
    if let Some(parent) = parent {
        span.parent_span_id.extend_from_slice(&parent.to_be_bytes());
    }
}

/// An LLM chat span (or a tool call every fourth span) padded to about `size` bytes with
/// prompt and completion text.
fn genai_span(now: u64, request: u64, i: u64, size: usize) -> Span {
    let tool = i % 4 == 3;
    let mut attributes = vec![
        text(
            "gen_ai.operation.name",
            if tool { "execute_tool" } else { "chat" },
        ),
        text("gen_ai.provider.name", "openai"),
        text("gen_ai.request.model", "gpt-4o-mini"),
        int("gen_ai.usage.input_tokens", 812 + (i as i64 % 97)),
        int("gen_ai.usage.output_tokens", 143 + (i as i64 % 31)),
        text("session.id", &format!("session-{}", request % 50)),
        text("user.id", &format!("user-{}", request % 20)),
    ];
    if tool {
        attributes.push(text("gen_ai.tool.name", "search_orders"));
        attributes.push(text(
            "gen_ai.tool.call.arguments",
            r#"{"customer_id":"c-1042","status":"open"}"#,
        ));
    }
    let mut base = Span {
        name: if tool {
            "execute_tool search_orders".into()
        } else {
            "chat gpt-4o-mini".into()
        },
        kind: 3,
        start_time_unix_nano: now - 5_000_000_000 + i * 1_000,
        end_time_unix_nano: now - 4_000_000_000 + i * 1_000,
        attributes,
        status: Some(Status::default()),
        ..Default::default()
    };
    set_ids(&mut base, request, i);
    let room = size.saturating_sub(base.encoded_len() + 200);
    let prompt =
        "You are a helpful support agent. The customer asks about order status and refunds. ";
    let filler: String = prompt.chars().cycle().take(room / 2).collect();
    let mut span = base;
    span.attributes.push(text(
        "gen_ai.input.messages",
        &format!(r#"[{{"role":"user","parts":[{{"type":"text","content":"{filler}"}}]}}]"#),
    ));
    let answer: String = filler.chars().rev().collect();
    span.attributes.push(text(
        "gen_ai.output.messages",
        &format!(r#"[{{"role":"assistant","parts":[{{"type":"text","content":"{answer}"}}]}}]"#),
    ));
    span
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
    }
}

fn pid_of(data_dir: &Path, name: &str) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join(format!("run/{name}.pid"))).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()?
        .get("pid")?
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
}

/// User + system CPU seconds of a process (and its reaped children), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: i32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

/// CPU seconds of the gateway's S3 archiver thread (found by its name).
fn archiver_cpu_seconds(gateway_pid: i32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{gateway_pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == spindle_pipeline::gateway::ARCHIVER_THREAD)
        })
        .map(|task| stat_cpu_seconds(&task.path().join("stat").to_string_lossy()))
        .sum()
}

/// utime + stime of a `/proc/…/stat` file, in seconds.
fn stat_cpu_seconds(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at indexes 11 and 12 after the command name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

fn peak_rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_hold_eight_spans_and_never_span_requests() {
        let (first, root, no_parent) = span_ids(7, 8);
        let (same, child, parent) = span_ids(7, 15);
        assert_eq!(first, same);
        assert_eq!(no_parent, None);
        assert_eq!(parent, Some(root));
        assert_ne!(child, root);
        assert_ne!(
            span_ids(7, 16).0,
            first,
            "the ninth span starts a new trace"
        );
        assert_ne!(span_ids(8, 8).0, first, "another request, another trace");
        let mut span = genai_span(now_nanos(), 7, 15, 1024);
        assert_eq!(span.parent_span_id, root.to_be_bytes());
        set_ids(&mut span, 9, 0);
        assert_eq!(span.trace_id, span_ids(9, 0).0.to_be_bytes());
        assert!(span.parent_span_id.is_empty());
    }

    #[test]
    fn the_archiver_thread_is_counted_apart_by_its_name() {
        let pid = i32::try_from(std::process::id()).expect("pid fits");
        let before = archiver_cpu_seconds(pid);
        let busy = std::thread::Builder::new()
            .name(spindle_pipeline::gateway::ARCHIVER_THREAD.into())
            .spawn(|| {
                // Burn 300 ms of CPU (30 clock ticks) in this thread.
                let started = std::time::Instant::now();
                let mut x = 0_u64;
                while started.elapsed() < Duration::from_millis(300) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                // Measured while the thread still exists: /proc drops a thread once joined.
                archiver_cpu_seconds(i32::try_from(std::process::id()).expect("pid fits"))
            })
            .expect("spawns");
        let during = busy.join().expect("joins");
        assert!(
            during - before >= 0.1,
            "the named thread's CPU is seen: {before} s before, {during} s during"
        );
        assert!(
            during <= cpu_seconds(pid),
            "a thread uses no more than its process"
        );
    }

    #[test]
    fn spans_come_out_near_the_requested_size() {
        for size in [1024, 10 * 1024] {
            let requests = build_requests(size, 10, 2);
            let per_span = requests[0].0.len() / 10;
            assert!(
                per_span > size * 9 / 10 && per_span < size * 11 / 10,
                "{size}: {per_span}"
            );
        }
    }
}
