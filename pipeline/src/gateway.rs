//! The OTLP gateway: OTLP/HTTP and OTLP/gRPC in; S3 archive and Kafka `spans.raw` out.
//!
//! A request is acknowledged only after its accepted spans are durable in both places: the
//! raw request in an S3 group-commit object, then its `spans.raw` records (one per resource,
//! scope and partition; see `batch`) produced with `acks=all` and idempotence. If either
//! write fails the client gets 503 with Retry-After and nothing is acknowledged (a retried
//! request may leave an unacknowledged copy in the archive; downstream deduplication makes
//! replays of it harmless). Invalid spans are dropped and reported through OTLP partial
//! success.
//!
//! A request answered 503 because Kafka was slow may still reach `spans.raw` later (its records
//! stay queued, bounded by `queue.buffering.max.kbytes`); the client's retry then duplicates
//! them, which the sink's deduplication absorbs. The gateway never reads ClickHouse.

mod archive;
pub(crate) mod batch;
mod error;
mod grpc;
mod http;
mod json;
pub(crate) mod validate;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use spindle_platform::api_keys::{Principal, Resolver};
use spindle_platform::entitlements::Limits;
use spindle_schemas::platform::ApiKeyScope;
use spindle_schemas::topics::SPANS_RAW;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::produce::{Acks, Producer, Record};
pub use archive::THREAD_NAME as ARCHIVER_THREAD;
use archive::{ArchiveSettings, Archiver};
pub use batch::partition_of;
pub use error::GatewayError;

/// Settings of `spindle gateway` (section `[gateway]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// OTLP/HTTP (`POST /v1/traces`).
    pub http_listen: SocketAddr,
    /// OTLP/gRPC (`TraceService/Export`).
    pub grpc_listen: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub health_listen: SocketAddr,
    /// Largest request body, after decompression.
    pub max_request_bytes: usize,
    /// Bytes of all requests in flight (as received, and again once decompressed); beyond it
    /// requests are shed with 503, before their bodies are read when their length is known
    /// (`Content-Length`, the gRPC message prefix).
    pub max_inflight_bytes: usize,
    /// How long the S3 group commit collects requests before writing one object.
    pub group_commit_window_ms: u64,
    /// A group commit is written early once it holds this many bytes.
    pub group_commit_max_bytes: usize,
    /// Longest an S3 write may take before the request is answered 503.
    pub s3_timeout_ms: u64,
    /// Longest a Kafka produce may take before the request is answered 503.
    pub produce_timeout_ms: u64,
    /// How long the producer waits to fill a batch (`linger.ms`): fewer, larger produce
    /// requests and far fewer broker-thread wakeups, for this much added latency.
    pub produce_linger_ms: u64,
    /// Rate for projects without entitlements (spans per second per gateway; 0 = no limit).
    pub default_spans_per_second: u64,
    /// Monthly quota for projects without entitlements (0 = unlimited).
    pub default_monthly_span_quota: u64,
    /// How long resolved API keys and entitlements are cached (revocations show after this).
    pub auth_cache_ttl_ms: u64,
    /// How often accepted spans are added to the projects' monthly usage counters in Redis.
    pub usage_flush_ms: u64,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
}

/// How a request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    HttpProtobuf,
    HttpJson,
    Grpc,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::HttpProtobuf => "http/protobuf",
            Transport::HttpJson => "http/json",
            Transport::Grpc => "grpc",
        }
    }
}

/// The connections the gateway writes through.
pub struct Deps {
    /// Must be configured with `acks=all` and idempotence (see `producer_settings`), and
    /// created with the [`Deliveries`](crate::produce::Deliveries) context.
    pub producer: Producer,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub keys: Resolver,
    pub limits: Limits,
}

/// librdkafka settings the gateway's producer needs on top of the brokers.
pub fn producer_settings(config: &GatewayConfig) -> Vec<(&'static str, String)> {
    vec![
        ("acks", "all".into()),
        ("enable.idempotence", "true".into()),
        // One request in flight per broker connection. An idempotent producer already sends
        // one request at a time per partition: librdkafka 2.12 compares the partition's
        // in-flight *messages* with its limit of five requests (`rd_kafka_toppar_producer_serve`),
        // after it has set its wakeup to the due batch's deadline. A partition whose batch is
        // due while its request is in flight makes the broker thread poll with a zero timeout,
        // in a loop, until the answer comes. With one request per connection, a due batch of
        // another partition waits in the send queue and the thread sleeps; a due batch of the
        // partition in flight still spins it. That happens only when the broker is saturated
        // (see BENCHMARKS.md, "under a saturated broker").
        ("max.in.flight.requests.per.connection", "1".into()),
        ("compression.type", "lz4".into()),
        ("linger.ms", config.produce_linger_ms.to_string()),
        ("batch.size", "1000000".into()),
        ("message.max.bytes", "16000000".into()),
        // Never expire queued messages: an expiry makes an idempotent producer bump its epoch,
        // which some brokers (tansu 0.6) cannot handle. The gateway stops waiting after
        // `produce_timeout_ms` and answers 503 instead; the queue is bounded below.
        ("message.timeout.ms", "0".into()),
        ("queue.buffering.max.kbytes", "262144".into()),
    ]
}

/// What an accepted export reports back (OTLP partial success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub accepted_spans: u64,
    pub rejected_spans: u64,
    pub message: String,
}

/// The transport-independent core, shared by the HTTP and gRPC front ends.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    producer: Arc<Producer>,
    archiver: Archiver,
    keys: Resolver,
    limits: Limits,
    inflight: Arc<Semaphore>,
    /// The partition count of `spans.raw` (0 until the brokers' metadata said).
    partitions: Arc<AtomicU32>,
}

const KIB: usize = 1024;

/// HTTP/2 flow-control windows for OTLP/gRPC (see `Bound::serve`).
const GRPC_STREAM_WINDOW: u32 = 1 << 20;
const GRPC_CONNECTION_WINDOW: u32 = 2 << 20;

impl Gateway {
    /// Resolves the presented key; it must carry the `ingest` scope.
    pub async fn authorize(&self, key: Option<&str>) -> Result<Principal, GatewayError> {
        self.inner
            .keys
            .authorize(key.unwrap_or_default(), ApiKeyScope::Ingest)
            .await
            .map_err(GatewayError::Auth)
    }

    /// Reserves room for a request of `bytes`; shed with 503 when the gateway is full.
    pub fn reserve(&self, bytes: usize) -> Result<OwnedSemaphorePermit, GatewayError> {
        let kib = u32::try_from(bytes.div_ceil(KIB).max(1)).unwrap_or(u32::MAX);
        self.inner
            .inflight
            .clone()
            .try_acquire_many_owned(kib)
            .map_err(|_| GatewayError::Overloaded {
                limit_bytes: self.inner.config.max_inflight_bytes,
                retry_after_secs: 1,
            })
    }

    /// Validates, admits, archives and produces one request, given as its protobuf encoding
    /// (JSON and gRPC requests are encoded first). Malformed protobuf is a 400.
    pub async fn ingest(
        &self,
        principal: &Principal,
        transport: Transport,
        body: Bytes,
    ) -> Result<Accepted, GatewayError> {
        let received_at = now_nanos();
        let resources = wire::parse(&body)
            .map_err(|e| GatewayError::BadRequest(format!("invalid OTLP protobuf: {e}")))?;
        let verdict = validate::validate(&resources, received_at);
        for (reason, count) in &verdict.reasons {
            metrics::counter!("spindle_gateway_spans_total", "outcome" => "rejected", "reason" => *reason)
                .increment(*count);
        }
        let accepted = Accepted {
            accepted_spans: verdict.accepted_spans,
            rejected_spans: verdict.rejected_spans,
            message: verdict.message,
        };
        if verdict.accepted_spans == 0 {
            return Ok(accepted);
        }
        let project = &principal.project_id;
        let partitions = match self.inner.partitions.load(Ordering::Relaxed) {
            0 => {
                return Err(GatewayError::Unavailable {
                    what: "kafka",
                    reason: format!(
                        "the partitions of `{}` are not known yet (no metadata from the brokers)",
                        SPANS_RAW.name
                    ),
                });
            }
            n => n,
        };
        self.inner
            .limits
            .admit(project, verdict.accepted_spans)
            .await
            .map_err(GatewayError::Limit)?;
        // Spans are checked again only when some were rejected.
        let all_valid = verdict.rejected_spans == 0;
        // Archive, then produce: `Ok` once both are durable.
        let committed: Result<(), GatewayError> = async {
            let keep =
                |span: &wire::SpanView<'_>| all_valid || validate::is_valid(span, received_at);
            let archived = if all_valid {
                body.clone()
            } else {
                Bytes::from(wire::filtered_request(&resources, keep))
            };
            let started = Instant::now();
            let pointer = self
                .inner
                .archiver
                .archive(
                    &principal.workspace_id,
                    project,
                    transport.as_str(),
                    received_at,
                    archived,
                )
                .await
                .map_err(|reason| GatewayError::Unavailable { what: "s3", reason })?;
            metrics::histogram!("spindle_gateway_archive_seconds")
                .record(started.elapsed().as_secs_f64());

            let started = Instant::now();
            let deadline = tokio::time::Instant::now()
                + Duration::from_millis(self.inner.config.produce_timeout_ms);
            let mut records = batch::Records::new(
                &resources,
                keep,
                &principal.workspace_id,
                project,
                received_at,
                &pointer,
                partitions,
            );
            // One buffer for every record: librdkafka copies each payload when it is enqueued.
            let mut payload = Vec::new();
            let acks = Acks::new();
            while let Some(key) = records.next_into(&mut payload) {
                self.enqueue(&key, &payload, &acks, deadline).await?;
            }
            let acknowledged = tokio::time::timeout_at(deadline, acks.settled())
                .await
                .map_err(|_| GatewayError::Unavailable {
                    what: "kafka",
                    reason: format!(
                        "no acknowledgement from the brokers within {} ms",
                        self.inner.config.produce_timeout_ms
                    ),
                })?;
            metrics::histogram!("spindle_gateway_produce_seconds")
                .record(started.elapsed().as_secs_f64());
            acknowledged.map_err(|reason| GatewayError::Unavailable {
                what: "kafka",
                reason,
            })
        }
        .await;
        match committed {
            Ok(()) => {
                self.inner.limits.record(project, verdict.accepted_spans);
                metrics::counter!("spindle_gateway_spans_total", "outcome" => "accepted", "reason" => "")
                    .increment(verdict.accepted_spans);
                Ok(accepted)
            }
            Err(e) => {
                // Nothing was accepted: the client will send these spans again, and is charged
                // for them then.
                self.inner.limits.refund(project, verdict.accepted_spans);
                Err(e)
            }
        }
    }

    /// Hands one record to the producer, which copies it; while its queue is full, retries
    /// until `deadline`.
    async fn enqueue(
        &self,
        key: &str,
        payload: &[u8],
        acks: &Arc<Acks>,
        deadline: tokio::time::Instant,
    ) -> Result<(), GatewayError> {
        let record = Record {
            topic: SPANS_RAW.name,
            key: key.as_bytes(),
            payload,
            headers: None,
        };
        self.inner
            .producer
            .enqueue(&record, acks, deadline)
            .await
            .map_err(|e| GatewayError::Unavailable {
                what: "kafka",
                reason: e.to_string(),
            })
    }

    fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }
}

/// A gateway bound to its ports, ready to serve.
pub struct Bound {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    gateway: Gateway,
    http: tokio::net::TcpListener,
    grpc: tokio::net::TcpListener,
    /// Completes once the archiver wrote its last window.
    archiver_done: tokio::sync::oneshot::Receiver<()>,
}

/// Binds the OTLP ports and starts the archiver.
pub async fn bind(config: GatewayConfig, deps: Deps) -> std::io::Result<Bound> {
    let http = tokio::net::TcpListener::bind(config.http_listen).await?;
    let grpc = tokio::net::TcpListener::bind(config.grpc_listen).await?;
    let (archiver, archiver_done) = Archiver::start(
        deps.s3,
        ArchiveSettings {
            bucket: deps.bucket,
            window: Duration::from_millis(config.group_commit_window_ms),
            max_bytes: config.group_commit_max_bytes,
            timeout: Duration::from_millis(config.s3_timeout_ms),
        },
    )?;
    let permits = (config.max_inflight_bytes / KIB).clamp(1, Semaphore::MAX_PERMITS);
    let producer = Arc::new(deps.producer);
    let partitions = Arc::new(AtomicU32::new(0));
    if let Err(e) = refresh_partitions(&producer, &partitions).await {
        tracing::warn!(error = %e, "requests are answered 503 until the brokers answer");
    }
    let gateway = Gateway {
        inner: Arc::new(Inner {
            producer,
            partitions,
            archiver,
            keys: deps.keys,
            limits: deps.limits,
            inflight: Arc::new(Semaphore::new(permits)),
            config,
        }),
    };
    Ok(Bound {
        http_addr: http.local_addr()?,
        grpc_addr: grpc.local_addr()?,
        gateway,
        http,
        grpc,
        archiver_done,
    })
}

impl Bound {
    /// Serves until `shutdown` is cancelled, then drains: in-flight requests finish (up to
    /// `shutdown_grace_secs`), the archiver writes its last window, the producer flushes.
    pub async fn serve(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let Bound {
            http_addr,
            grpc_addr,
            gateway,
            http,
            grpc,
            archiver_done,
        } = self;
        tracing::info!(%http_addr, %grpc_addr, "gateway listening");
        let grace = Duration::from_secs(gateway.config().shutdown_grace_secs);
        let producer = gateway.inner.producer.clone();
        let limits = gateway.inner.limits.clone();
        let partitions = tokio::spawn(watch_partitions(
            producer.clone(),
            gateway.inner.partitions.clone(),
            shutdown.clone(),
        ));
        let usage = tokio::spawn(flush_usage(
            limits.clone(),
            Duration::from_millis(gateway.config().usage_flush_ms.max(1)),
            shutdown.clone(),
        ));
        let http_server = axum::serve(http, http::router(gateway.clone()))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grpc_server = tonic::transport::Server::builder()
            // HTTP/2's default window of 64 KiB made a client stop three times in a 200 KiB
            // export to wait for a WINDOW_UPDATE; a window that fits a typical export takes it
            // in one go. Memory stays bounded by `max_request_bytes` and `max_inflight_bytes`.
            // Frames of up to 1 MiB let a typical export arrive in one DATA frame, which
            // `grpc` takes as the message without copying it.
            .max_frame_size(grpc::MAX_FRAME)
            .initial_stream_window_size(GRPC_STREAM_WINDOW)
            .initial_connection_window_size(GRPC_CONNECTION_WINDOW)
            .add_service(grpc::service(gateway.clone()))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc),
                shutdown.clone().cancelled_owned(),
            );
        {
            let served = async {
                let (h, g) = tokio::join!(http_server, grpc_server);
                h?;
                g.map_err(std::io::Error::other)
            };
            tokio::pin!(served);
            tokio::select! {
                result = &mut served => result?,
                () = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(grace).await;
                } => tracing::warn!("shutdown grace period over; dropping remaining requests"),
            }
        }
        drop(gateway);
        let _ = archiver_done.await;
        let _ = usage.await;
        let _ = partitions.await;
        if let Err(e) = limits.flush().await {
            tracing::warn!(error = %e, "monthly usage counters not updated at shutdown");
        }
        tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// How often the partition count of `spans.raw` is read again, and how soon while unknown.
const PARTITIONS_REFRESH: Duration = Duration::from_secs(30);
const PARTITIONS_RETRY: Duration = Duration::from_secs(1);
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the partition count of `spans.raw` into `partitions`; on an error the last count
/// stays (a broker outage is answered by the produce path, not by forgetting the topic).
async fn refresh_partitions(
    producer: &Arc<Producer>,
    partitions: &AtomicU32,
) -> Result<(), String> {
    let client = producer.clone();
    let count = tokio::task::spawn_blocking(move || {
        batch::partition_count(client.client(), METADATA_TIMEOUT)
    })
    .await
    .map_err(|e| e.to_string())??;
    let before = partitions.swap(count, Ordering::Relaxed);
    if before != count {
        tracing::info!(
            topic = SPANS_RAW.name,
            partitions = count,
            "partition count"
        );
    }
    Ok(())
}

/// Keeps the partition count of `spans.raw` current until `shutdown`.
async fn watch_partitions(
    producer: Arc<Producer>,
    partitions: Arc<AtomicU32>,
    shutdown: CancellationToken,
) {
    loop {
        let wait = if partitions.load(Ordering::Relaxed) == 0 {
            PARTITIONS_RETRY
        } else {
            PARTITIONS_REFRESH
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = refresh_partitions(&producer, &partitions).await {
            tracing::warn!(error = %e, "cannot read the partition count");
        }
    }
}

/// Adds accepted spans to the monthly usage counters every `every` until `shutdown`; the
/// final flush comes after the last request drained.
async fn flush_usage(limits: Limits, every: Duration, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = limits.flush().await {
            // The spans are durable and acknowledged; only metering lags until the next flush.
            tracing::warn!(error = %e, "monthly usage counters not updated");
        }
    }
}

fn now_nanos() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(0)
}
