//! Long-running roles: each wires its library to settings, serves the health routes on its
//! own port, and stops gracefully on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use spindle_pipeline::produce::{Deliveries, Producer};
use tokio_util::sync::CancellationToken;

use crate::clients::{self, Dependency, Probes};
use crate::config::Config;
use crate::health::{self, Readiness};

/// Group membership of the processor's and the sink's consumers, fetching with `fetch_wait_ms`.
///
/// Static membership (`group.instance.id`): a role restarted after a crash rejoins as the
/// member it was and gets its partitions back at once. Without it, tansu kept a killed
/// processor as the group's leader and gave its restarted successor an empty assignment, so
/// the partitions stalled (`tests/exactly_once.rs` failed that way under CPU load). The id is
/// the host and the role's health port: a restart on the same host and port is the same
/// member, while two processes on one host cannot share a port.
///
/// Shorter sessions than librdkafka's 45 s: a member that is gone for good (a pod that moved)
/// gives its partitions up within 10 s. Heartbeats come from librdkafka's own thread, so a busy
/// member keeps its session; the roles poll far more often than `max.poll.interval.ms`.
fn member_group(
    config: &Config,
    health: std::net::SocketAddr,
    fetch_wait_ms: u32,
) -> rdkafka::ClientConfig {
    let mut base = clients::kafka_config(&config.kafka);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    base.set("group.instance.id", format!("{host}:{}", health.port()))
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "2000")
        .set("max.poll.interval.ms", "60000")
        // tansu holds an empty fetch for the whole wait even when data arrives meanwhile, so
        // on the span path librdkafka's 500 ms would add up to half a second per hop to the
        // time from acknowledgement to a live event (processor) and to queryable (sink).
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string());
    base
}

/// A consumer of `group` subscribed to `topic`: offsets committed by the role itself, after
/// its work is durable; a new group starts from the earliest record.
fn group_consumer(
    mut base: rdkafka::ClientConfig,
    group: &str,
    topic: &str,
) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = base
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("cannot create the Kafka consumer")?;
    consumer
        .subscribe(&[topic])
        .with_context(|| format!("cannot subscribe to `{topic}`"))?;
    Ok(consumer)
}

/// How often a group member's guard looks at it.
const GUARD_EVERY: Duration = Duration::from_secs(5);

/// A static member of `group` on `topic` (see [`member_group`]), with the guard that rescues it
/// when the broker strands it (`spindle_pipeline::group`) running until `shutdown`, unless
/// `kafka.strand_guard_after_ms` is 0.
fn guarded_member(
    config: &Config,
    health: SocketAddr,
    fetch_wait_ms: u32,
    group: &str,
    topic: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<StreamConsumer>> {
    let consumer = Arc::new(group_consumer(
        member_group(config, health, fetch_wait_ms),
        group,
        topic,
    )?);
    if config.kafka.strand_guard_after_ms > 0 {
        let guard = spindle_pipeline::group::Guard::new(
            consumer.clone(),
            clients::kafka_config(&config.kafka),
            group,
            topic,
            Duration::from_millis(config.kafka.strand_guard_after_ms),
        );
        tokio::spawn(guard.run(GUARD_EVERY, shutdown.clone()));
    }
    Ok(consumer)
}

/// Projects whose price overrides one processor keeps cached.
const PRICE_OVERRIDES_CACHED: usize = 10_000;

/// `spindle gateway`: OTLP in, S3 + `spans.raw` out.
pub async fn gateway(config: &Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let settings = &config.gateway;
    let deps = gateway_deps(config).await?;
    let bound = spindle_pipeline::gateway::bind(settings.clone(), deps)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (OTLP/HTTP) and {} (OTLP/gRPC)",
                settings.http_listen, settings.grpc_listen
            )
        })?;
    let health = serve_health(
        config,
        settings.health_listen,
        vec![Dependency::Kafka, Dependency::S3, Dependency::Redis],
        shutdown.clone(),
    )
    .await?;
    bound.serve(shutdown).await?;
    health.await??;
    Ok(())
}

/// `spindle processor`: `spans.raw` → `spans.enriched`.
pub async fn processor(config: &Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let consumer = guarded_member(
        config,
        config.processor.health_listen,
        config.kafka.fetch_wait_ms,
        "spindle-processor",
        spindle_schemas::topics::SPANS_RAW.name,
        &shutdown,
    )?;
    let producer = durable_producer(config)?;
    let redis = redis_manager(config).await?;
    let health = serve_health(
        config,
        config.processor.health_listen,
        vec![Dependency::Kafka, Dependency::Redis],
        shutdown.clone(),
    )
    .await?;
    tracing::info!("processor consuming `spans.raw`");
    spindle_pipeline::processor::stream::run(
        config.processor.clone(),
        consumer,
        producer,
        redis.clone(),
        spindle_pipeline::processor::stream::Prices {
            embedded: spindle_schemas::prices::PriceTable::embedded(),
            overrides: spindle_platform::price_overrides::PriceOverrides::new(
                redis,
                Duration::from_millis(config.processor.price_overrides_ttl_ms),
                PRICE_OVERRIDES_CACHED,
            ),
        },
        shutdown,
    )
    .await?;
    health.await??;
    tracing::info!("processor stopped");
    Ok(())
}

/// `spindle sink`: `spans.enriched` → ClickHouse.
pub async fn sink(config: &Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let consumer = guarded_member(
        config,
        config.sink.health_listen,
        config.kafka.fetch_wait_ms,
        "spindle-sink",
        spindle_schemas::topics::SPANS_ENRICHED.name,
        &shutdown,
    )?;
    let dlq = Arc::new(durable_producer(config)?);
    let clickhouse =
        clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    let health = serve_health(
        config,
        config.sink.health_listen,
        vec![Dependency::Kafka, Dependency::ClickHouse],
        shutdown.clone(),
    )
    .await?;
    let events = guarded_member(
        config,
        config.sink.health_listen,
        config.kafka.events_fetch_wait_ms,
        "spindle-sink-persisted",
        spindle_schemas::topics::TRACES_EVENTS.name,
        &shutdown,
    )?;
    tracing::info!("sink consuming `spans.enriched` and `traces.events`");
    let persisted = tokio::spawn(spindle_pipeline::sink::persisted::run(
        events,
        dlq.clone(),
        clickhouse.clone(),
        spindle_pipeline::sink::persisted::Timing {
            check_every: Duration::from_millis(config.sink.persisted_check_ms),
            give_up_after: Duration::from_millis(config.sink.persisted_give_up_ms),
        },
        config.sink.store.retention_days_default,
        shutdown.clone(),
    ));
    spindle_pipeline::sink::stream::run(config.sink.clone(), consumer, dlq, clickhouse, shutdown)
        .await?;
    persisted.await??;
    health.await??;
    tracing::info!("sink stopped");
    Ok(())
}

/// A producer for records that must not be lost: acks=all, idempotent, never expiring queued
/// messages (see the gateway's `producer_settings` for why). Its callers enqueue a whole batch
/// at once and then wait for it, so a short linger already sends each batch in one request;
/// a longer one would only add to the time from acknowledgement to a live event.
fn durable_producer(config: &Config) -> anyhow::Result<Producer> {
    clients::kafka_config(&config.kafka)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "0")
        .create_with_context(Deliveries)
        .context("cannot create the Kafka producer")
}

/// The connections the gateway writes through, built from settings.
pub async fn gateway_deps(config: &Config) -> anyhow::Result<spindle_pipeline::gateway::Deps> {
    let settings = &config.gateway;
    let mut producer = clients::kafka_config(&config.kafka);
    for (key, value) in spindle_pipeline::gateway::producer_settings(settings) {
        producer.set(key, value);
    }
    let producer: Producer = producer
        .create_with_context(Deliveries)
        .context("cannot create the Kafka producer")?;
    let redis = redis_manager(config).await?;
    let ttl = Duration::from_millis(settings.auth_cache_ttl_ms);
    Ok(spindle_pipeline::gateway::Deps {
        producer,
        s3: clients::s3(&config.s3),
        bucket: config.s3.bucket.clone(),
        keys: spindle_platform::api_keys::Resolver::new(redis.clone(), ttl, 100_000),
        limits: spindle_platform::entitlements::Limits::new(
            redis,
            spindle_platform::entitlements::Entitlements {
                spans_per_second: settings.default_spans_per_second,
                monthly_span_quota: settings.default_monthly_span_quota,
            },
            ttl,
        ),
    })
}

/// `spindle projector`: applies `platform.events` to Redis.
pub async fn projector(config: &Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    let mut group = clients::kafka_config(&config.kafka);
    group.set(
        "fetch.wait.max.ms",
        config.kafka.events_fetch_wait_ms.to_string(),
    );
    let consumer = group_consumer(
        group,
        "spindle-projector",
        spindle_schemas::topics::PLATFORM_EVENTS.name,
    )?;
    let redis = redis_manager(config).await?;
    let health = serve_health(
        config,
        config.projector.health_listen,
        vec![Dependency::Kafka, Dependency::Redis],
        shutdown.clone(),
    )
    .await?;
    tracing::info!("projector consuming `platform.events`");
    spindle_platform::projection::run(consumer, redis, shutdown.cancelled_owned()).await?;
    health.await??;
    tracing::info!("projector stopped");
    Ok(())
}

/// `spindle graphql`: the GraphQL API over ClickHouse, with live traces from Kafka.
pub async fn graphql(config: &Config) -> anyhow::Result<()> {
    let settings = &config.graphql;
    let shutdown = shutdown_signal();
    let hub = spindle_graphql::live::Hub::start(
        &clients::kafka_config(&config.kafka),
        &settings.live,
        shutdown.clone(),
    )
    .context("cannot start the live feed")?;
    let store = spindle_graphql::store::Store::new(
        clients::clickhouse(&config.clickhouse).with_database(&settings.database),
        Duration::from_millis(settings.request_timeout_ms),
    );
    let state = spindle_graphql::schema::State::new(
        store,
        hub,
        spindle_graphql::schema::Limits::from_config(settings),
    );
    let redis = redis_manager(config).await?;
    let server = spindle_graphql::server::Server {
        schema: spindle_graphql::schema::build(Some(state.clone()), settings),
        state,
        keys: spindle_platform::api_keys::Resolver::new(
            redis,
            Duration::from_millis(settings.auth_cache_ttl_ms),
            settings.auth_cache_capacity,
        ),
        request_timeout: Duration::from_millis(settings.request_timeout_ms),
        web_dir: crate::stack::web::dir(config)?,
    };
    let health = serve_health(
        config,
        settings.health_listen,
        vec![Dependency::Kafka, Dependency::ClickHouse, Dependency::Redis],
        shutdown.clone(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (`graphql.listen`)", settings.listen))?;
    tracing::info!(addr = %settings.listen, "graphql serving /graphql, /graphql/ws, /graphiql");
    axum::serve(listener, spindle_graphql::server::router(server))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("graphql server failed")?;
    health.await??;
    tracing::info!("graphql stopped");
    Ok(())
}

/// A Redis connection that reconnects by itself.
pub async fn redis_manager(config: &Config) -> anyhow::Result<redis::aio::ConnectionManager> {
    let client = clients::redis(&config.redis).map_err(anyhow::Error::msg)?;
    redis::aio::ConnectionManager::new(client)
        .await
        .context("cannot connect to Redis")
}

async fn serve_health(
    config: &Config,
    listen: SocketAddr,
    dependencies: Vec<Dependency>,
    shutdown: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let readiness = Readiness {
        probes: Probes {
            kafka: config.kafka.clone(),
            clickhouse: config.clickhouse.clone(),
            s3: config.s3.clone(),
            redis: config.redis.clone(),
        },
        dependencies,
        timeout: Duration::from_millis(config.health.check_timeout_ms),
    };
    let router = health::router(readiness, health::metrics_recorder());
    let (_, task) = health::serve(listen, router, shutdown.cancelled_owned())
        .await
        .with_context(|| format!("cannot serve health on {listen}"))?;
    Ok(task)
}

/// Cancelled on SIGTERM or SIGINT.
fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = terminate => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
        }
        trigger.cancel();
    });
    token
}
