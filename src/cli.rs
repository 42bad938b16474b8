//! The command line: parses flags, loads settings once, runs one subcommand.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command as Process, ExitCode};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use spindle_schemas::platform::ApiKeyScope;

use crate::config::{Config, Sources};
use crate::stack::{self, Output, State};

/// Spindle: observability for LLM applications and AI agents.
#[derive(Debug, Parser)]
#[command(name = "spindle", version, about)]
struct Cli {
    /// A TOML file with settings over the built-in defaults (see `spindle config defaults`).
    #[arg(long, global = true, env = "SPINDLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the local stack (installing what is missing), create topics and the bucket, and
    /// apply migrations. Safe to run again.
    Up {
        /// Print only errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Stop every process `spindle up` started.
    Down,
    /// Show each local service with its address, pid and health.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the OTLP gateway (OTLP/HTTP and OTLP/gRPC in; S3 archive and `spans.raw` out).
    Gateway,
    /// Run the processor (`spans.raw` → LLM-aware `spans.enriched`).
    Processor,
    /// Run the sink (`spans.enriched` → ClickHouse, exactly once in effect).
    Sink,
    /// Run the projector that applies `platform.events` to Redis.
    Projector,
    /// Run the GraphQL API (queries over ClickHouse, live subscriptions) and serve the web app.
    Graphql,
    /// Build the web app (`frontend/`) into the folder `spindle graphql` serves.
    Web,
    /// Issue and revoke API keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Set a project's ingest entitlements.
    Entitlements {
        #[command(subcommand)]
        action: EntitlementsAction,
    },
    /// Re-feed archived requests from S3 into `spans.raw`; the pipeline absorbs the copies, so
    /// totals never double. Whole UTC hours touching the range are replayed.
    Replay {
        /// Start, RFC 3339 (`2026-11-27T08:00:00Z`).
        #[arg(long, value_parser = parse_rfc3339)]
        since: time::OffsetDateTime,
        /// End, RFC 3339; default now.
        #[arg(long, value_parser = parse_rfc3339)]
        until: Option<time::OffsetDateTime>,
        /// One project; default every project in the archive.
        #[arg(long)]
        project: Option<String>,
    },
    /// A project's own model prices, consulted before the built-in table.
    Prices {
        #[command(subcommand)]
        action: PricesAction,
    },
    /// Measure a running stack (release build recommended: `just bench`).
    Bench {
        #[command(subcommand)]
        target: BenchTarget,
    },
    /// Apply pending ClickHouse migrations (`migrate status` lists them).
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Show settings.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Run every test (installs cargo-nextest when missing); extra arguments go to nextest.
    Test {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchTarget {
    /// OTLP gateway throughput, latency and CPU: HTTP and gRPC, 1 KB and 10 KB spans.
    Gateway {
        /// Seconds per measured run.
        #[arg(long, default_value_t = 15)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Spans per export request (an SDK batch).
        #[arg(long, default_value_t = 200)]
        spans_per_request: usize,
        /// Span sizes to measure, in bytes (comma-separated); requests of larger spans hold
        /// proportionally fewer of them.
        #[arg(long, value_delimiter = ',', default_values_t = [1024, 10 * 1024])]
        span_bytes: Vec<usize>,
    },
    /// End to end (gateway → processor → sink → ClickHouse) for 1 KB spans: sustained
    /// throughput, ack → queryable latency, CPU per component. Uses a fresh project and key.
    Pipeline {
        /// Seconds of load.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Spans per export request (an SDK batch).
        #[arg(long, default_value_t = 200)]
        spans_per_request: usize,
        /// Offered spans per second over all connections (0 = as fast as the gateway acks).
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Seconds to wait after the load for every acknowledged span to be queryable.
        #[arg(long, default_value_t = 120)]
        drain_timeout: u64,
    },
    /// GraphQL API latency on a bulk-loaded project (trace by id with 10k spans, filtered trace
    /// lists, 30-day metrics) and live latency (gateway ack → subscription event).
    Graphql {
        /// Spans the bench project must hold; loaded straight into ClickHouse when it holds
        /// fewer (or they are more than a day old).
        #[arg(long, default_value_t = 10_000_000)]
        spans: u64,
        /// Measured runs of each query, after one warm-up.
        #[arg(long, default_value_t = 30)]
        repeat: usize,
        /// Live probes sent through the gateway.
        #[arg(long, default_value_t = 100)]
        probes: usize,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Issue a key; it is printed once and only its hash is stored.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        project: String,
        /// `ingest` (send spans) or `read` (query); repeat for both. Default: ingest.
        #[arg(long = "scope", value_parser = parse_scope)]
        scopes: Vec<ApiKeyScope>,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a key by its prefix (`spk_<id>`, as `create` printed it).
    Revoke { prefix: String },
}

#[derive(Debug, Subcommand)]
enum PricesAction {
    /// Replace the project's overrides with a price table (the shape of
    /// `schemas/data/prices.json`); spans processed from then on use it, `spindle replay`
    /// reprices older ones.
    Set {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        project: String,
        /// The table, a JSON file.
        #[arg(long)]
        file: std::path::PathBuf,
    },
    /// Remove the project's overrides: the built-in table applies again.
    Clear {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        project: String,
    },
}

#[derive(Debug, Subcommand)]
enum EntitlementsAction {
    /// Set the rate and monthly quota a project may send.
    Set {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        project: String,
        /// Sustained spans per second per gateway instance (0 = no limit).
        #[arg(long)]
        spans_per_second: u64,
        /// Spans per calendar month, UTC (0 = unlimited).
        #[arg(long)]
        monthly_spans: u64,
    },
}

fn parse_rfc3339(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("expected an RFC 3339 time such as `2026-11-27T08:00:00Z`: {e}"))
}

fn parse_scope(s: &str) -> Result<ApiKeyScope, String> {
    ApiKeyScope::parse(s).ok_or_else(|| format!("unknown scope `{s}`: use `ingest` or `read`"))
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// List applied and pending migrations without changing anything.
    Status,
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Print the built-in defaults file, which documents every setting.
    Defaults,
    /// Print the effective settings (secrets masked).
    Show,
}

/// Runs the command line and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources {
        file: cli.config.clone(),
        env: std::env::vars().collect(),
    };
    let config = match Config::load(&sources) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::logging::init(&config.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Up { quiet } => {
            stack::up(&config, &mut Output::new(quiet)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Down => {
            stack::down(&config, &mut Output::new(false)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => status(&config, json).await,
        Command::Gateway => {
            crate::roles::gateway(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Processor => {
            crate::roles::processor(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sink => {
            crate::roles::sink(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Web => {
            let mut out = crate::stack::Output::new(false);
            crate::stack::web::build(&config, &mut out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Graphql => {
            crate::roles::graphql(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Projector => {
            crate::roles::projector(&config).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { action } => keys(&config, action).await,
        Command::Replay {
            since,
            until,
            project,
        } => {
            replay(
                &config,
                spindle_pipeline::replay::ReplayRange {
                    since,
                    until,
                    project,
                },
            )
            .await
        }
        Command::Bench {
            target:
                BenchTarget::Gateway {
                    seconds,
                    concurrency,
                    spans_per_request,
                    span_bytes: sizes,
                },
        } => {
            let key_file = stack::data_dir(&config)?.join("run/dev-ingest.key");
            let key = std::fs::read_to_string(&key_file)
                .with_context(|| format!("no `{}`: run `spindle up` first", key_file.display()))?;
            let mut reports = Vec::new();
            for grpc in [false, true] {
                for &span_bytes in &sizes {
                    let run = crate::loadgen::Run {
                        grpc,
                        span_bytes,
                        // Keep requests near the same size: fewer spans when they are larger.
                        spans_per_request: (spans_per_request * 1024 / span_bytes.max(1))
                            .clamp(1, spans_per_request),
                        concurrency,
                        duration: std::time::Duration::from_secs(seconds),
                    };
                    let report = crate::loadgen::run(&config, key.trim(), run).await?;
                    eprintln!(
                        "{} {} B: {:.0} spans/s, {:.0} spans/s per gateway core, {:.0} on the decode → auth → produce path",
                        if grpc { "grpc" } else { "http" },
                        span_bytes,
                        report.spans_per_sec(),
                        report.spans_per_gateway_cpu_sec(),
                        report.spans_per_produce_path_cpu_sec()
                    );
                    reports.push(report);
                }
            }
            write!(
                std::io::stdout().lock(),
                "{}",
                crate::loadgen::table(&reports)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            target:
                BenchTarget::Pipeline {
                    seconds,
                    concurrency,
                    spans_per_request,
                    rate,
                    drain_timeout,
                },
        } => {
            use crate::loadgen::pipeline;
            let options = pipeline::Options {
                duration: std::time::Duration::from_secs(seconds),
                concurrency,
                spans_per_request,
                rate,
                span_bytes: 1024,
                drain_timeout: std::time::Duration::from_secs(drain_timeout),
            };
            let report = pipeline::run(&config, options).await?;
            write!(
                std::io::stdout().lock(),
                "{}\n{}",
                pipeline::table(std::slice::from_ref(&report)),
                pipeline::summary(&report)
            )?;
            // Missed targets are figures; lost or duplicated spans are a failure.
            Ok(match report.count() {
                pipeline::Count::Exact | pipeline::Count::InDoubt(_) => ExitCode::SUCCESS,
                pipeline::Count::Missing(_) | pipeline::Count::Duplicated(_) => ExitCode::FAILURE,
            })
        }
        Command::Bench {
            target:
                BenchTarget::Graphql {
                    spans,
                    repeat,
                    probes,
                },
        } => {
            use crate::loadgen::graphql;
            let options = graphql::Options {
                spans,
                repeat,
                probes,
            };
            let report = graphql::run(&config, options).await?;
            write!(
                std::io::stdout().lock(),
                "{}\n{}",
                graphql::table(&report),
                graphql::summary(&report)
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Entitlements {
            action:
                EntitlementsAction::Set {
                    workspace,
                    project,
                    spans_per_second,
                    monthly_spans,
                },
        } => {
            let done = crate::platform_admin::set_entitlements(
                &config,
                &workspace,
                &project,
                spans_per_second,
                monthly_spans,
            )
            .await?;
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "project `{project}`: {spans_per_second} spans/s, {monthly_spans} spans/month (0 = unlimited)"
            )?;
            warn_unprojected(done.projected)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Prices { action } => prices(&config, action).await,
        Command::Migrate { action } => migrate(&config, action).await,
        Command::Config { action } => {
            let mut stdout = std::io::stdout().lock();
            match action {
                ConfigAction::Defaults => write!(stdout, "{}", crate::config::DEFAULTS)?,
                ConfigAction::Show => writeln!(stdout, "{config:#?}")?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { args } => test(&args),
    }
}

async fn prices(config: &Config, action: PricesAction) -> anyhow::Result<ExitCode> {
    let (workspace, project, json) = match action {
        PricesAction::Set {
            workspace,
            project,
            file,
        } => {
            let json = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read `{}`", file.display()))?;
            (workspace, project, Some(json))
        }
        PricesAction::Clear { workspace, project } => (workspace, project, None),
    };
    let done =
        crate::platform_admin::set_price_overrides(config, &workspace, &project, json.as_deref())
            .await?;
    let mut stdout = std::io::stdout().lock();
    match &done.value {
        Some(table) => writeln!(
            stdout,
            "project `{project}`: price overrides `{}` with {} model prices",
            table.version(),
            table.models().len()
        )?,
        None => writeln!(
            stdout,
            "project `{project}`: price overrides removed; the built-in table applies"
        )?,
    }
    warn_unprojected(done.projected)?;
    Ok(ExitCode::SUCCESS)
}

async fn keys(config: &Config, action: KeysAction) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match action {
        KeysAction::Create {
            workspace,
            project,
            mut scopes,
            name,
        } => {
            if scopes.is_empty() {
                scopes.push(ApiKeyScope::Ingest);
            }
            scopes.dedup();
            let done =
                crate::platform_admin::create_key(config, &workspace, &project, &scopes, &name)
                    .await?;
            let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            writeln!(
                stdout,
                "API key for project `{project}` (scopes: {}). It is shown only now:\n{}",
                scopes.join(", "),
                done.value.reveal()
            )?;
            warn_unprojected(done.projected)?;
        }
        KeysAction::Revoke { prefix } => {
            let done = crate::platform_admin::revoke_key(config, &prefix).await?;
            writeln!(stdout, "revoked `{}`", done.value)?;
            warn_unprojected(done.projected)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay(
    config: &Config,
    range: spindle_pipeline::replay::ReplayRange,
) -> anyhow::Result<ExitCode> {
    let mut producer = crate::clients::kafka_config(&config.kafka);
    for (key, value) in spindle_pipeline::gateway::producer_settings(&config.gateway) {
        producer.set(key, value);
    }
    let producer: rdkafka::producer::FutureProducer = producer
        .create()
        .context("cannot create the Kafka producer")?;
    let s3 = crate::clients::s3(&config.s3);
    let report = spindle_pipeline::replay::replay(&s3, &config.s3.bucket, &producer, range, |p| {
        eprintln!(
            "hour {}/{} `{}`: {} requests, {} spans so far",
            p.hours_done + 1,
            p.hours_total,
            p.key,
            p.replayed.requests,
            p.replayed.spans
        );
    })
    .await
    .context("replay stopped")?;
    writeln!(
        std::io::stdout().lock(),
        "replayed {} objects: {} requests, {} spans, {} records to `spans.raw`",
        report.objects,
        report.requests,
        report.spans,
        report.records
    )?;
    Ok(ExitCode::SUCCESS)
}

fn warn_unprojected(projected: bool) -> anyhow::Result<()> {
    if !projected {
        eprintln!(
            "warning: the event is recorded in `platform.events` but the projector has not applied \
             it yet; is `spindle projector` running (`spindle status`)?"
        );
    }
    Ok(())
}

async fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let services = stack::status(config).await?;
    let mut stdout = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut stdout, &services)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "data dir: {}", stack::data_dir(config)?.display())?;
        writeln!(
            stdout,
            "{:<12}{:<18}{:<9}{:<11}detail",
            "SERVICE", "ADDRESS", "PID", "STATE"
        )?;
        for s in &services {
            let state = match s.state {
                State::Healthy => "healthy",
                State::Unhealthy => "unhealthy",
                State::Stopped => "stopped",
            };
            let pid = s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
            writeln!(
                stdout,
                "{:<12}{:<18}{:<9}{:<11}{}",
                s.service,
                s.address,
                pid,
                state,
                s.detail.as_deref().unwrap_or("")
            )?;
        }
    }
    let all_healthy = services.iter().all(|s| s.state == State::Healthy);
    Ok(if all_healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn migrate(config: &Config, action: Option<MigrateAction>) -> anyhow::Result<ExitCode> {
    let client = crate::clients::clickhouse(&config.clickhouse);
    let database = &config.clickhouse.database;
    let migrations = spindle_migrations::embedded();
    let mut stdout = std::io::stdout().lock();
    match action {
        None => {
            let applied = spindle_migrations::apply(&client, database, &migrations).await?;
            if applied.is_empty() {
                writeln!(stdout, "schema of `{database}` is current")?;
            }
            for name in applied {
                writeln!(stdout, "applied {name}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(MigrateAction::Status) => {
            let lines = spindle_migrations::status(&client, database, &migrations).await?;
            writeln!(
                stdout,
                "{:<8}{:<28}{:<10}applied at",
                "VERSION", "NAME", "STATE"
            )?;
            let mut clean = true;
            for line in lines {
                let state = match line.state {
                    spindle_migrations::MigrationState::Applied => "applied",
                    spindle_migrations::MigrationState::Pending => "pending",
                    spindle_migrations::MigrationState::Edited => {
                        clean = false;
                        "EDITED"
                    }
                    spindle_migrations::MigrationState::Unknown => {
                        clean = false;
                        "UNKNOWN"
                    }
                };
                writeln!(
                    stdout,
                    "{:<8}{:<28}{:<10}{}",
                    line.version,
                    line.name,
                    state,
                    line.applied_at.as_deref().unwrap_or("-")
                )?;
            }
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `spindle test`: the one command that runs every test of the workspace.
fn test(args: &[String]) -> anyhow::Result<ExitCode> {
    let has_nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_nextest {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "installing cargo-nextest (once)")?;
        let status = cargo()
            .args(["install", "cargo-nextest", "--locked"])
            .status()
            .context("cannot run cargo install")?;
        if !status.success() {
            bail!("`cargo install cargo-nextest --locked` failed ({status})");
        }
    }
    // `schemas` is shared with the wasm web app: it must keep compiling for wasm32.
    let has_wasm = Process::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if !has_wasm {
        let status = Process::new("rustup")
            .args(["target", "add", "wasm32-unknown-unknown"])
            .status()
            .context("cannot run rustup")?;
        if !status.success() {
            bail!("`rustup target add wasm32-unknown-unknown` failed ({status})");
        }
    }
    let status = cargo()
        .args([
            "check",
            "--quiet",
            "-p",
            "spindle-schemas",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .status()
        .context("cannot run cargo check")?;
    if !status.success() {
        bail!("`spindle-schemas` does not compile for wasm32-unknown-unknown");
    }
    // The browser end-to-end test drives Debian's chromium through chromedriver.
    crate::stack::browser()
        .context("cannot install chromium and chromedriver for the browser end-to-end test")?;
    let status = cargo()
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .args(args)
        .status()
        .context("cannot run cargo nextest")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A `cargo` command without the variables `cargo run` sets for the running package.
///
/// Build scripts (ring's, for one) rerun when `CARGO_PKG_NAME` or `CARGO_MANIFEST_DIR` change,
/// so passing the outer package's values down would rebuild them on every `spindle test`.
fn cargo() -> Process {
    let mut command = Process::new("cargo");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_run = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| key.starts_with(prefix))
            || key == "CARGO_PRIMARY_PACKAGE";
        if set_by_cargo_run {
            command.env_remove(key.as_ref());
        }
    }
    command
}
