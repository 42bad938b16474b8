//! Clients for the four backing services, built from settings, and their readiness probes.
//!
//! Every role and the local stack build their connections here, so a setting means the same
//! thing everywhere (for example `clickhouse.compression`).

use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::{ClickHouseCompression, ClickHouseConfig, KafkaConfig, RedisConfig, S3Config};

/// A backing service Spindle depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dependency {
    Kafka,
    ClickHouse,
    S3,
    Redis,
}

impl Dependency {
    pub const ALL: [Dependency; 4] = [
        Dependency::Redis,
        Dependency::S3,
        Dependency::Kafka,
        Dependency::ClickHouse,
    ];

    /// The lowercase name used in logs, metrics and `spindle status`.
    pub fn name(self) -> &'static str {
        match self {
            Dependency::Kafka => "kafka",
            Dependency::ClickHouse => "clickhouse",
            Dependency::S3 => "s3",
            Dependency::Redis => "redis",
        }
    }
}

/// Base librdkafka settings every Spindle producer, consumer and admin client starts from.
pub fn kafka_config(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "spindle")
        .set("broker.address.family", "v4");
    client
}

/// A ClickHouse client with no database selected (use `with_database` for one).
pub fn clickhouse(config: &ClickHouseConfig) -> clickhouse::Client {
    let compression = match config.compression {
        ClickHouseCompression::None => clickhouse::Compression::None,
        ClickHouseCompression::Lz4 => clickhouse::Compression::Lz4,
    };
    clickhouse::Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        .with_password(config.password.expose())
        .with_compression(compression)
}

/// An S3 client for the configured endpoint, with static credentials.
pub fn s3(config: &S3Config) -> aws_sdk_s3::Client {
    let credentials = Credentials::new(
        &config.access_key_id,
        config.secret_access_key.expose(),
        None,
        None,
        "spindle-config",
    );
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(Region::new(config.region.clone()))
        .credentials_provider(credentials)
        .force_path_style(config.force_path_style);
    if !config.endpoint.is_empty() {
        builder = builder.endpoint_url(&config.endpoint);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// A Redis client (connections are opened on use).
pub fn redis(config: &RedisConfig) -> Result<redis::Client, String> {
    redis::Client::open(config.url.expose()).map_err(|e| format!("bad `redis.url`: {e}"))
}

/// Settings a readiness probe needs, cloned once per probe.
#[derive(Debug, Clone)]
pub struct Probes {
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
    pub s3: S3Config,
    pub redis: RedisConfig,
}

impl Probes {
    /// Checks that one dependency answers, within `timeout`. The error says what failed.
    pub async fn check(&self, dependency: Dependency, timeout: Duration) -> Result<(), String> {
        let probe = async {
            match dependency {
                Dependency::Kafka => check_kafka(&self.kafka, timeout).await,
                Dependency::ClickHouse => check_clickhouse(&self.clickhouse).await,
                Dependency::S3 => check_s3(&self.s3).await,
                Dependency::Redis => check_redis(&self.redis).await,
            }
        };
        match tokio::time::timeout(timeout, probe).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }
}

async fn check_kafka(config: &KafkaConfig, timeout: Duration) -> Result<(), String> {
    let mut client = kafka_config(config);
    client.set("socket.connection.setup.timeout.ms", "1000");
    let consumer: BaseConsumer = client
        .create()
        .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
    tokio::task::spawn_blocking(move || {
        consumer
            .fetch_metadata(None, timeout)
            .map(|_| ())
            .map_err(|e| format!("broker metadata request failed: {e}"))
    })
    .await
    .map_err(|e| format!("probe task failed: {e}"))?
}

async fn check_clickhouse(config: &ClickHouseConfig) -> Result<(), String> {
    clickhouse(config)
        .query("SELECT 1")
        .execute()
        .await
        .map_err(|e| e.to_string())
}

async fn check_s3(config: &S3Config) -> Result<(), String> {
    s3(config)
        .list_buckets()
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

async fn check_redis(config: &RedisConfig) -> Result<(), String> {
    let client = redis(config)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!("unexpected PING reply `{pong}`"))
    }
}
