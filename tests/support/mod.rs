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
