//! Shared by the end-to-end tests: the local stack, started through `spindle up` itself.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use spindle::config::{Config, Sources};

/// The `spindle` binary cargo built for these tests.
pub fn spindle() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spindle"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Runs `spindle` with extra environment variables and returns its output.
pub fn run_spindle(args: &[&str], env: &[(String, String)]) -> Output {
    spindle()
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("spindle runs")
}

/// Starts the shared local stack (or reuses the running one) through `spindle up`, the same
/// code as `just up`, and returns the default settings that point at it.
pub fn stack() -> Config {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        let output = run_spindle(&["up", "--quiet"], &[]);
        assert!(
            output.status.success(),
            "spindle up failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    });
    config(&[])
}

/// Settings as the binary would load them, with the given environment on top of the process's.
pub fn config(env: &[(String, String)]) -> Config {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.extend(env.iter().cloned());
    let config = Config::load(&Sources {
        file: None,
        env: vars,
    })
    .expect("settings load");
    // Tests run from the package root, like `spindle` above.
    assert!(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("Cargo.toml")
            .exists()
    );
    config
}

/// A name no other test run uses: for databases, topics, buckets and key prefixes.
pub fn unique(prefix: &str) -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{prefix}_{}_{:x}", std::process::id(), nanos & 0xffff_ffff)
}

/// A ClickHouse client on a fresh database of its own.
pub async fn fresh_database(config: &Config) -> (clickhouse::Client, String) {
    let name = unique("t");
    let client = spindle::clients::clickhouse(&config.clickhouse);
    client
        .query(&format!("CREATE DATABASE {name}"))
        .execute()
        .await
        .expect("create database");
    (client.with_database(&name), name)
}

/// A consumer of `topic` from its current end: what a test causes, nothing older.
pub fn tail(config: &Config, topic: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = spindle::clients::kafka_config(&config.kafka)
        .set("group.id", unique("tail"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), std::time::Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..metadata.topics()[0].partitions().len() as i32 {
        let (_, high) = consumer
            .fetch_watermarks(topic, partition, std::time::Duration::from_secs(10))
            .expect("watermarks");
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Offset(high))
            .expect("offset");
    }
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Reads `spans.raw` from the offsets it had when created: what a test produced, nothing older.
pub struct RawTail {
    consumer: rdkafka::consumer::BaseConsumer,
}

impl RawTail {
    pub fn start(config: &Config) -> Self {
        Self {
            consumer: tail(config, spindle_schemas::topics::SPANS_RAW.name),
        }
    }

    /// Collects records of `project_id` until `spans` spans arrived or `wait` passed.
    pub fn collect(
        &self,
        project_id: &str,
        spans: usize,
        wait: std::time::Duration,
    ) -> Vec<(String, spindle_schemas::raw::RawSpanBatch)> {
        self.collect_placed(project_id, spans, wait)
            .into_iter()
            .map(|(_, key, batch)| (key, batch))
            .collect()
    }

    /// As `collect`, with the partition each record landed on.
    pub fn collect_placed(
        &self,
        project_id: &str,
        spans: usize,
        wait: std::time::Duration,
    ) -> Vec<(i32, String, spindle_schemas::raw::RawSpanBatch)> {
        use prost::Message as _;
        use rdkafka::Message as _;
        let deadline = std::time::Instant::now() + wait;
        let mut out = Vec::new();
        let mut seen = 0;
        while std::time::Instant::now() < deadline && (seen < spans || spans == 0) {
            if let Some(message) = self.consumer.poll(std::time::Duration::from_millis(200)) {
                let message = message.expect("kafka message");
                let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
                if key.starts_with(&format!("{project_id}/")) {
                    let batch = spindle_schemas::raw::RawSpanBatch::decode(
                        message.payload().unwrap_or_default(),
                    )
                    .expect("spans.raw payload decodes");
                    seen += batch.spans.len();
                    out.push((message.partition(), key, batch));
                }
            }
        }
        out
    }
}

/// Objects the archive holds for a project.
pub async fn archived_keys(config: &Config, project_id: &str) -> Vec<String> {
    let listing = spindle::clients::s3(&config.s3)
        .list_objects_v2()
        .bucket(&config.s3.bucket)
        .prefix(format!("raw/{project_id}/"))
        .send()
        .await
        .expect("list objects");
    listing
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// A project of its own and an ingest + read key for it, through the real platform path.
pub async fn project_with_key(config: &Config) -> (String, String) {
    let project = unique("p").replace('_', "-").to_lowercase();
    let done = spindle::platform_admin::create_key(
        config,
        "tests",
        &project,
        &[
            spindle_schemas::platform::ApiKeyScope::Ingest,
            spindle_schemas::platform::ApiKeyScope::Read,
        ],
        "test",
    )
    .await
    .expect("key issued");
    assert!(done.projected, "the projector applied the key");
    (project, done.value.reveal().to_owned())
}

/// A stack of its own: temporary data dir, free ports, stopped on drop.
pub struct PrivateStack {
    pub env: Vec<(String, String)>,
    pub config: Config,
    _dir: tempfile::TempDir,
}

impl PrivateStack {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports = free_ports(12);
        let env = vec![
            ("SPINDLE_HOME".to_owned(), dir.path().display().to_string()),
            (
                "SPINDLE__KAFKA__BROKERS".to_owned(),
                format!("127.0.0.1:{}", ports[0]),
            ),
            (
                "SPINDLE__CLICKHOUSE__URL".to_owned(),
                format!("http://127.0.0.1:{}", ports[1]),
            ),
            // A password on this stack proves the adapter and the crate agree on auth.
            (
                "SPINDLE__CLICKHOUSE__PASSWORD".to_owned(),
                "lifecycle-secret".to_owned(),
            ),
            (
                "SPINDLE__S3__ENDPOINT".to_owned(),
                format!("http://127.0.0.1:{}", ports[2]),
            ),
            (
                "SPINDLE__REDIS__URL".to_owned(),
                format!("redis://127.0.0.1:{}", ports[3]),
            ),
            (
                "SPINDLE__GATEWAY__HTTP_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[4]),
            ),
            (
                "SPINDLE__GATEWAY__GRPC_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[5]),
            ),
            (
                "SPINDLE__GATEWAY__HEALTH_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[6]),
            ),
            (
                "SPINDLE__PROJECTOR__HEALTH_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[7]),
            ),
            (
                "SPINDLE__PROCESSOR__HEALTH_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[8]),
            ),
            (
                "SPINDLE__SINK__HEALTH_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[9]),
            ),
            (
                "SPINDLE__GRAPHQL__LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[10]),
            ),
            (
                "SPINDLE__GRAPHQL__HEALTH_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports[11]),
            ),
        ];
        let config = config(&env);
        Self {
            env,
            config,
            _dir: dir,
        }
    }

    pub fn spindle(&self, args: &[&str]) -> std::process::Output {
        run_spindle(args, &self.env)
    }

    pub fn must(&self, args: &[&str]) -> String {
        let output = self.spindle(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "spindle {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    pub fn status(&self) -> (bool, Vec<serde_json::Value>) {
        let output = self.spindle(&["status", "--json"]);
        let services: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).expect("status --json is JSON");
        (output.status.success(), services)
    }

    pub fn state_of(&self, service: &str) -> (String, Option<i64>) {
        let (_, services) = self.status();
        let entry = services
            .iter()
            .find(|s| s["service"] == service)
            .expect("service listed");
        (
            entry["state"].as_str().expect("state").to_owned(),
            entry["pid"].as_i64(),
        )
    }
}

impl Drop for PrivateStack {
    fn drop(&mut self) {
        let _ = self.spindle(&["down"]);
    }
}

pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports: every listener is held until all are picked, so no two callers of
/// one stack get the same port.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound").port())
        .collect()
}

impl PrivateStack {
    /// A private stack with extra settings (applied at `up`).
    pub fn with(extra: &[(&str, &str)]) -> Self {
        let mut stack = Self::new();
        for (k, v) in extra {
            stack.env.push(((*k).to_owned(), (*v).to_owned()));
        }
        stack.config = config(&stack.env);
        stack
    }

    /// The ingest key `spindle up` issued for the default project.
    pub fn dev_key(&self) -> String {
        let home = &self.env[0].1;
        std::fs::read_to_string(std::path::Path::new(home).join("run/dev-ingest.key"))
            .expect("up wrote the dev key")
            .trim()
            .to_owned()
    }

    /// The last lines of each service's log, for a failing test's output.
    pub fn logs(&self) -> String {
        let home = std::path::Path::new(&self.env[0].1).join("logs");
        let mut out = String::new();
        for name in [
            "kafka",
            "processor",
            "sink",
            "gateway",
            "graphql",
            "clickhouse",
        ] {
            let text =
                std::fs::read_to_string(home.join(format!("{name}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains("TopicAlreadyExists"))
                .collect();
            out.push_str(&format!(
                "--- {name}.log ---\n{}\n",
                lines[lines.len().saturating_sub(25)..].join("\n")
            ));
        }
        out
    }

    /// SIGKILLs one service of this stack and returns once `status` sees it stopped.
    pub fn kill9(&self, service: &str) {
        let (state, pid) = self.state_of(service);
        assert_eq!(state, "healthy", "{service} runs before the kill");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid.expect("pid")).expect("fits"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.state_of(service).0 != "stopped" {
            assert!(
                std::time::Instant::now() < deadline,
                "{service} still alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
