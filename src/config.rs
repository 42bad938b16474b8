//! Settings: read once by the binary, passed down by value.
//!
//! Layers, later wins: `config/defaults.toml` (compiled in; it documents every key) → an
//! optional file (`--config` or `SPINDLE_CONFIG`) → `SPINDLE__SECTION__KEY` environment
//! variables. The structs have no serde defaults, so the defaults file must name every key (a
//! test holds it to that) and `deny_unknown_fields` turns a typo into an error naming the key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

/// The compiled-in defaults file.
pub const DEFAULTS: &str = include_str!("config/defaults.toml");

/// Every setting of every role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub log: LogConfig,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub s3: S3Config,
    pub redis: RedisConfig,
    pub health: HealthConfig,
    pub gateway: spindle_pipeline::gateway::GatewayConfig,
    pub processor: spindle_pipeline::processor::stream::ProcessorConfig,
    pub sink: spindle_pipeline::sink::stream::SinkConfig,
    pub projector: ProjectorConfig,
    pub graphql: spindle_graphql::GraphqlConfig,
    pub stack: StackConfig,
    /// The settings file these were loaded from, if any (roles started by `spindle up` get it).
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub brokers: String,
    pub partitions: u16,
    pub replication_factor: u16,
    /// `fetch.wait.max.ms` of the processor's and the sink's span consumers.
    pub fetch_wait_ms: u32,
    /// `fetch.wait.max.ms` of the consumers of `traces.events` and `platform.events`.
    pub events_fetch_wait_ms: u32,
    /// How long a static group member may be stranded before its guard makes the group form
    /// again (`spindle_pipeline::group`); 0: no guard.
    pub strand_guard_after_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: Secret,
    pub compression: ClickHouseCompression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickHouseCompression {
    None,
    Lz4,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub force_path_style: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub check_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectorConfig {
    pub health_listen: SocketAddr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackConfig {
    pub data_dir: PathBuf,
    pub tools_dir: PathBuf,
    pub prebuilt_dirs: Vec<PathBuf>,
    pub startup_timeout_secs: u64,
    pub stop_timeout_secs: u64,
}

/// A value that must not reach logs: `Debug` and `Display` print `***`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A settings error; its message names the key and the layer it came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// Where settings come from, besides the defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// A TOML file with overrides.
    pub file: Option<PathBuf>,
    /// Environment variables, normally `std::env::vars()`.
    pub env: Vec<(String, String)>,
}

impl Config {
    /// Loads the layered settings.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = &sources.file {
            if !file.is_file() {
                return Err(ConfigError(format!(
                    "config file `{}` does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Variables come from the given list, not the process, so tests load without touching it.
        let figment = figment.merge(EnvLayer {
            vars: sources.env.clone(),
        });
        let mut config: Config = figment.extract().map_err(describe)?;
        config.source_file = sources.file.clone();
        config.validate()?;
        if let Some((_, home)) = sources.env.iter().find(|(k, _)| k == "SPINDLE_HOME")
            && !home.is_empty()
        {
            config.stack.data_dir = PathBuf::from(home);
        }
        if config.stack.tools_dir.as_os_str().is_empty() {
            let home = sources
                .env
                .iter()
                .find(|(k, _)| k == "HOME")
                .map(|(_, v)| PathBuf::from(v))
                .unwrap_or_else(|| PathBuf::from("/tmp"));
            config.stack.tools_dir = home.join(".cache/spindle/tools");
        }
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, why: &str| Err(ConfigError(format!("`{key}` {why}")));
        if self.kafka.brokers.trim().is_empty() {
            return bad("kafka.brokers", "must name at least one broker");
        }
        if self.kafka.partitions == 0 {
            return bad("kafka.partitions", "must be at least 1");
        }
        if self.kafka.replication_factor == 0 {
            return bad("kafka.replication_factor", "must be at least 1");
        }
        if !self.clickhouse.url.starts_with("http://")
            && !self.clickhouse.url.starts_with("https://")
        {
            return bad("clickhouse.url", "must be an http:// or https:// URL");
        }
        if !is_identifier(&self.clickhouse.database) {
            return bad(
                "clickhouse.database",
                "must be a plain identifier (letters, digits, `_`)",
            );
        }
        if self.s3.bucket.is_empty() {
            return bad("s3.bucket", "must not be empty");
        }
        if !self.redis.url.expose().starts_with("redis://") {
            return bad("redis.url", "must be a redis:// URL");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return bad("log.level", "is not a valid level or filter directive");
        }
        if self.gateway.max_request_bytes == 0 {
            return bad("gateway.max_request_bytes", "must be at least 1");
        }
        if self.gateway.max_inflight_bytes < self.gateway.max_request_bytes {
            return bad(
                "gateway.max_inflight_bytes",
                "must be at least `gateway.max_request_bytes`, or no request could ever pass",
            );
        }
        if self.sink.store.database != self.clickhouse.database {
            return bad(
                "sink.store.database",
                "must equal `clickhouse.database`, where the migrations create the tables",
            );
        }
        if self.graphql.database != self.clickhouse.database {
            return bad(
                "graphql.database",
                "must equal `clickhouse.database`, where the migrations create the tables",
            );
        }
        if self.graphql.max_page_size == 0
            || self.graphql.default_page_size == 0
            || self.graphql.default_page_size > self.graphql.max_page_size
        {
            return bad(
                "graphql.default_page_size",
                "must be between 1 and `graphql.max_page_size`",
            );
        }
        if self.graphql.live.subscriber_buffer == 0 {
            return bad("graphql.live.subscriber_buffer", "must be at least 1");
        }
        if self.stack.startup_timeout_secs == 0 {
            return bad("stack.startup_timeout_secs", "must be at least 1");
        }
        Ok(())
    }
}

/// The `SPINDLE__SECTION__KEY` layer; values parse as TOML scalars or arrays, else strings.
struct EnvLayer {
    vars: Vec<(String, String)>,
}

impl figment::Provider for EnvLayer {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable")
            .interpolater(|_profile, keys| format!("SPINDLE__{}", keys.join("__").to_uppercase()))
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (key, value) in &self.vars {
            let Some(rest) = key.strip_prefix("SPINDLE__") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(figment::Error::from(format!(
                    "environment variable `{key}` has an empty section or key"
                )));
            }
            let parsed: figment::value::Value = value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value.clone()));
            insert_path(&mut dict, &path, parsed);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn insert_path(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| figment::value::Value::from(figment::value::Dict::new()));
            if let figment::value::Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            } else {
                let mut inner = figment::value::Dict::new();
                insert_path(&mut inner, rest, value);
                *entry = figment::value::Value::from(inner);
            }
        }
    }
}

fn describe(error: figment::Error) -> ConfigError {
    let messages: Vec<String> = error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("`{}`: ", e.path.join("."))
            };
            let source = match (&e.metadata, e.path.is_empty()) {
                (Some(meta), false) => match &meta.source {
                    Some(figment::Source::File(path)) => format!(" (from `{}`)", path.display()),
                    _ if meta.name == "environment variable" => format!(
                        " (from environment variable `{}`)",
                        meta.interpolate(&e.profile.clone().unwrap_or_default(), &e.path)
                    ),
                    _ => format!(" (from {})", meta.name),
                },
                _ => String::new(),
            };
            format!("{key}{}{source}", e.kind)
        })
        .collect();
    ConfigError(messages.join("; "))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Resolves a possibly relative path against a base directory.
pub fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Sources {
        Sources {
            file: None,
            env: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn defaults_alone_name_every_key() {
        let config = Config::load(&env(&[("HOME", "/home/u")])).expect("defaults load");
        assert_eq!(config.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(config.clickhouse.database, "spindle");
        assert_eq!(config.stack.data_dir, PathBuf::from(".spindle"));
        assert_eq!(
            config.stack.tools_dir,
            PathBuf::from("/home/u/.cache/spindle/tools")
        );
    }

    #[test]
    fn env_overrides_with_types() {
        let config = Config::load(&env(&[
            ("SPINDLE__KAFKA__PARTITIONS", "12"),
            ("SPINDLE__CLICKHOUSE__PASSWORD", "hunter2"),
            ("SPINDLE__STACK__PREBUILT_DIRS", "[\"/a\", \"/b\"]"),
            ("SPINDLE__LOG__FORMAT", "json"),
        ]))
        .expect("valid overrides");
        assert_eq!(config.kafka.partitions, 12);
        assert_eq!(config.clickhouse.password.expose(), "hunter2");
        assert_eq!(config.stack.prebuilt_dirs.len(), 2);
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn spindle_home_sets_the_data_dir() {
        let config = Config::load(&env(&[("SPINDLE_HOME", "/srv/spindle")])).expect("loads");
        assert_eq!(config.stack.data_dir, PathBuf::from("/srv/spindle"));
    }

    #[test]
    fn unknown_env_key_is_named() {
        let err = Config::load(&env(&[("SPINDLE__KAFKA__BROKER", "x:1")]))
            .expect_err("unknown key must fail")
            .to_string();
        assert!(err.contains("broker"), "{err}");
        assert!(err.contains("SPINDLE__KAFKA__BROKER"), "{err}");
    }

    #[test]
    fn unknown_section_is_named() {
        let err = Config::load(&env(&[("SPINDLE__KAFKAA__BROKERS", "x:1")]))
            .expect_err("unknown section must fail")
            .to_string();
        assert!(err.contains("kafkaa"), "{err}");
    }

    #[test]
    fn bad_value_names_key_and_source() {
        let err = Config::load(&env(&[("SPINDLE__KAFKA__PARTITIONS", "many")]))
            .expect_err("bad value must fail")
            .to_string();
        assert!(err.contains("kafka.partitions"), "{err}");
        assert!(err.contains("SPINDLE__KAFKA__PARTITIONS"), "{err}");

        let err = Config::load(&env(&[("SPINDLE__GATEWAY__HTTP_LISTEN", "localhost")]))
            .expect_err("bad address must fail")
            .to_string();
        assert!(err.contains("gateway.http_listen"), "{err}");

        let err = Config::load(&env(&[("SPINDLE__LOG__FORMAT", "xml")]))
            .expect_err("bad enum must fail")
            .to_string();
        assert!(err.contains("log.format"), "{err}");
    }

    #[test]
    fn semantic_checks_name_the_key() {
        let err = Config::load(&env(&[("SPINDLE__KAFKA__PARTITIONS", "0")]))
            .expect_err("zero partitions must fail")
            .to_string();
        assert!(err.contains("`kafka.partitions`"), "{err}");
        let err = Config::load(&env(&[("SPINDLE__CLICKHOUSE__DATABASE", "a;drop")]))
            .expect_err("bad database must fail")
            .to_string();
        assert!(err.contains("`clickhouse.database`"), "{err}");
    }

    #[test]
    fn file_layer_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("spindle.toml");
        std::fs::write(&path, "[s3]\nbuckett = \"x\"\n").expect("write");
        let err = Config::load(&Sources {
            file: Some(path.clone()),
            env: vec![],
        })
        .expect_err("unknown file key must fail")
        .to_string();
        assert!(err.contains("buckett"), "{err}");
        assert!(err.contains("spindle.toml"), "{err}");

        std::fs::write(&path, "[s3]\nbucket = \"archive\"\n").expect("write");
        let config = Config::load(&Sources {
            file: Some(path),
            env: vec![("SPINDLE__S3__REGION".into(), "eu-west-1".into())],
        })
        .expect("file + env load");
        assert_eq!(config.s3.bucket, "archive");
        assert_eq!(config.s3.region, "eu-west-1");
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let err = Config::load(&Sources {
            file: Some("/nonexistent/spindle.toml".into()),
            env: vec![],
        })
        .expect_err("missing file must fail")
        .to_string();
        assert!(err.contains("/nonexistent/spindle.toml"), "{err}");
    }

    #[test]
    fn secrets_are_masked_in_debug() {
        let config = Config::load(&env(&[
            ("SPINDLE__CLICKHOUSE__PASSWORD", "hunter2"),
            ("SPINDLE__REDIS__URL", "redis://:topsecret@127.0.0.1:6379"),
        ]))
        .expect("loads");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("topsecret"), "{debug}");
        assert!(!debug.contains("spindle-local-secret"), "{debug}");
        assert!(debug.contains("***"));
    }

    /// The Kubernetes ConfigMap sets settings by environment variable: they must all load.
    #[test]
    fn k8s_config_map_loads() {
        let manifest = include_str!("../k8s/base/config.yaml");
        let mut vars: Vec<(String, String)> = manifest
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("SPINDLE__"))
            .map(|l| {
                let (key, value) = l.split_once(':').expect("key: value");
                (key.to_owned(), value.trim().trim_matches('"').to_owned())
            })
            .collect();
        assert!(vars.len() > 5, "the ConfigMap sets settings");
        vars.push(("SPINDLE__CLICKHOUSE__PASSWORD".into(), "from-secret".into()));
        let config = Config::load(&Sources {
            file: None,
            env: vars,
        })
        .expect("ConfigMap loads");
        assert_eq!(
            config.kafka.brokers,
            "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092"
        );
        assert_eq!(config.s3.endpoint, "");
        assert!(!config.s3.force_path_style);
        assert_eq!(config.clickhouse.compression, ClickHouseCompression::Lz4);
        assert_eq!(config.gateway.http_listen.port(), 4318);
        assert_eq!(config.graphql.listen.port(), 8080);
    }
}
