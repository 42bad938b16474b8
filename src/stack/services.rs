//! The local stack's services: where each listens and how it is started.

use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::Output;
use super::install;
use super::process::Launch;
use crate::clients::Dependency;
use crate::config::Config;

/// The ClickHouse HTTP adapter over chDB, written into the data dir at start.
const CLICKHOUSE_ADAPTER: &str = include_str!("clickhouse_http.py");

/// What a local service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A backing server standing in for a production dependency.
    Backing(Dependency),
    /// A Spindle role, run as `spindle <role>`.
    Role(Role),
}

/// The Spindle roles the local stack runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Projector,
    Processor,
    Sink,
    Gateway,
    Graphql,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Projector => "projector",
            Role::Processor => "processor",
            Role::Sink => "sink",
            Role::Gateway => "gateway",
            Role::Graphql => "graphql",
        }
    }
}

/// Every service name, in start order; `down` stops them in reverse.
pub(crate) const NAMES: [&str; 9] = [
    "redis",
    "s3",
    "kafka",
    "clickhouse",
    "projector",
    "processor",
    "sink",
    "gateway",
    "graphql",
];

/// One local service and where it listens.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    pub(crate) kind: Kind,
    /// Where its health is probed: the server itself, or a role's health port.
    pub(crate) addr: SocketAddr,
    /// The setting that decides the address, for error messages.
    pub(crate) setting: &'static str,
    /// Other ports it listens on, with their settings.
    pub(crate) extra: Vec<(SocketAddr, &'static str)>,
}

impl Service {
    pub(crate) fn name(&self) -> &'static str {
        match self.kind {
            Kind::Backing(dependency) => dependency.name(),
            Kind::Role(role) => role.name(),
        }
    }
}

/// The services of the stack in start order. Backing servers listen where the client settings
/// point: one setting decides both where the stack listens and where Spindle connects.
pub(crate) fn services(config: &Config) -> anyhow::Result<Vec<Service>> {
    let mut services = Vec::new();
    for dependency in Dependency::ALL {
        let (setting, endpoint) = match dependency {
            Dependency::Kafka => (
                "SPINDLE__KAFKA__BROKERS",
                config
                    .kafka
                    .brokers
                    .split(',')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            ),
            Dependency::ClickHouse => (
                "SPINDLE__CLICKHOUSE__URL",
                host_port(&config.clickhouse.url)?,
            ),
            Dependency::S3 => ("SPINDLE__S3__ENDPOINT", host_port(&config.s3.endpoint)?),
            Dependency::Redis => ("SPINDLE__REDIS__URL", host_port(config.redis.url.expose())?),
        };
        services.push(Service {
            kind: Kind::Backing(dependency),
            addr: local(&endpoint, setting)?,
            setting,
            extra: vec![],
        });
    }
    let gateway = &config.gateway;
    let projector = &config.projector;
    for (role, health, setting, extra) in [
        (
            Role::Projector,
            projector.health_listen,
            "SPINDLE__PROJECTOR__HEALTH_LISTEN",
            vec![],
        ),
        (
            Role::Processor,
            config.processor.health_listen,
            "SPINDLE__PROCESSOR__HEALTH_LISTEN",
            vec![],
        ),
        (
            Role::Sink,
            config.sink.health_listen,
            "SPINDLE__SINK__HEALTH_LISTEN",
            vec![],
        ),
        (
            Role::Gateway,
            gateway.health_listen,
            "SPINDLE__GATEWAY__HEALTH_LISTEN",
            vec![
                (gateway.http_listen, "SPINDLE__GATEWAY__HTTP_LISTEN"),
                (gateway.grpc_listen, "SPINDLE__GATEWAY__GRPC_LISTEN"),
            ],
        ),
        (
            Role::Graphql,
            config.graphql.health_listen,
            "SPINDLE__GRAPHQL__HEALTH_LISTEN",
            vec![(config.graphql.listen, "SPINDLE__GRAPHQL__LISTEN")],
        ),
    ] {
        let health = local(&health.to_string(), setting)?;
        for (addr, setting) in &extra {
            local(&addr.to_string(), setting)?;
        }
        services.push(Service {
            kind: Kind::Role(role),
            addr: health,
            setting,
            extra,
        });
    }
    Ok(services)
}

fn local(endpoint: &str, setting: &str) -> anyhow::Result<SocketAddr> {
    local_addr(endpoint).with_context(|| {
        format!(
            "`{setting}` points at `{endpoint}`: `spindle up` runs the local stack on this \
             machine only, so it needs 127.0.0.1 or localhost"
        )
    })
}

fn host_port(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let host = parsed.host_str().context("URL without a host")?;
    let port = parsed
        .port_or_known_default()
        .or(match parsed.scheme() {
            "redis" => Some(6379),
            _ => None,
        })
        .context("URL without a port")?;
    Ok(format!("{host}:{port}"))
}

fn local_addr(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let addr = endpoint
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{endpoint}`"))?
        .find(SocketAddr::is_ipv4)
        .context("no IPv4 address")?;
    if !addr.ip().is_loopback() {
        bail!("`{endpoint}` is not a loopback address");
    }
    Ok(addr)
}

/// Installs what a service needs and says how to start it.
pub(crate) fn launch(
    service: &Service,
    config: &Config,
    data_dir: &Path,
    out: &mut Output,
) -> anyhow::Result<Launch> {
    let dependency = match service.kind {
        Kind::Backing(dependency) => dependency,
        Kind::Role(role) => return role_launch(role, config, data_dir),
    };
    let host = service.addr.ip().to_string();
    let port = service.addr.port().to_string();
    let dir = data_dir.join(dependency.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    let tools = &config.stack.tools_dir;
    let prebuilt: Vec<PathBuf> = config.stack.prebuilt_dirs.clone();
    let launch = match dependency {
        Dependency::Redis => {
            let mut args: Vec<OsString> = [
                "--bind",
                &host,
                "--port",
                &port,
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--dir",
            ]
            .iter()
            .map(OsString::from)
            .collect();
            args.push(dir.clone().into_os_string());
            let url = reqwest::Url::parse(config.redis.url.expose())?;
            if let Some(password) = url.password() {
                args.push("--requirepass".into());
                args.push(password.into());
            }
            Launch {
                program: install::redis_server(out)?,
                args,
                cwd: dir,
                env: vec![],
                fingerprint: None,
            }
        }
        Dependency::S3 => Launch {
            program: install::cargo_tool(&install::S3S_FS, tools, &prebuilt, out)?,
            args: vec![
                "--host".into(),
                host.into(),
                "--port".into(),
                port.into(),
                "--access-key".into(),
                config.s3.access_key_id.clone().into(),
                "--secret-key".into(),
                config.s3.secret_access_key.expose().into(),
                dir.clone().into_os_string(),
            ],
            cwd: dir,
            env: vec![],
            fingerprint: None,
        },
        Dependency::Kafka => {
            let listener = format!("tcp://{}", service.addr);
            Launch {
                program: install::cargo_tool(&install::TANSU, tools, &prebuilt, out)?,
                args: vec![
                    "broker".into(),
                    "--listener-url".into(),
                    listener.clone().into(),
                    "--advertised-listener-url".into(),
                    listener.into(),
                    // tansu resolves the sqlite path against its working directory.
                    "--storage-engine".into(),
                    "sqlite://tansu.db".into(),
                ],
                cwd: dir,
                env: vec![("RUST_LOG".into(), "warn".into())],
                fingerprint: None,
            }
        }
        Dependency::ClickHouse => {
            let python = install::chdb_python(tools, out)?;
            let run_dir = data_dir.join("run");
            let script = run_dir.join("clickhouse_http.py");
            std::fs::write(&script, CLICKHOUSE_ADAPTER)?;
            let password_file = run_dir.join("clickhouse.password");
            write_private(&password_file, config.clickhouse.password.expose())?;
            Launch {
                fingerprint: expected_fingerprint(service.kind),
                program: python,
                args: vec![
                    "-u".into(),
                    script.into_os_string(),
                    "--host".into(),
                    host.into(),
                    "--port".into(),
                    port.into(),
                    "--data-dir".into(),
                    dir.join("data").into_os_string(),
                    "--user".into(),
                    config.clickhouse.user.clone().into(),
                    "--password-file".into(),
                    password_file.into_os_string(),
                ],
                cwd: dir,
                env: vec![],
            }
        }
    };
    Ok(launch)
}

/// What a running service must have been started from, when that can change under it: a
/// role's binary, or the ClickHouse adapter script embedded in this binary. `up` restarts a
/// service whose recorded fingerprint differs.
pub(crate) fn expected_fingerprint(kind: Kind) -> Option<String> {
    match kind {
        Kind::Role(_) => std::env::current_exe()
            .ok()
            .and_then(|exe| super::process::fingerprint(&exe)),
        Kind::Backing(Dependency::ClickHouse) => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            CLICKHOUSE_ADAPTER.hash(&mut hasher);
            Some(format!("adapter:{:016x}", hasher.finish()))
        }
        Kind::Backing(_) => None,
    }
}

/// A role runs as this same binary with the same settings file; the environment (and so every
/// `SPINDLE__*` override) is inherited.
fn role_launch(role: Role, config: &Config, data_dir: &Path) -> anyhow::Result<Launch> {
    let program = std::env::current_exe().context("cannot find the running `spindle` binary")?;
    let mut args: Vec<OsString> = Vec::new();
    if let Some(file) = &config.source_file {
        let file = std::fs::canonicalize(file)
            .with_context(|| format!("cannot resolve `{}`", file.display()))?;
        args.push("--config".into());
        args.push(file.into_os_string());
    }
    args.push(role.name().into());
    Ok(Launch {
        fingerprint: expected_fingerprint(Kind::Role(role)),
        program,
        args,
        cwd: data_dir.to_path_buf(),
        // Roles run inside the data dir: a relative `stack.data_dir` would resolve again there.
        env: vec![("SPINDLE_HOME".into(), data_dir.display().to_string())],
    })
}

pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
