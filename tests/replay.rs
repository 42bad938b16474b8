//! Replay from the S3 archive against the real stack: archived requests go back into
//! `spans.raw` exactly as the gateway produced them, the pipeline absorbs them, and the totals
//! of `spans`, `traces` and `usage_hourly` do not move — however many times it runs.

mod support;

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use rdkafka::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use spindle::config::Config;
use spindle_pipeline::replay::{ReplayError, ReplayProgress, ReplayRange, ReplayReport, replay};
use spindle_schemas::raw::{ARCHIVE_VERSION, ArchiveObject, RawSpanBatch};
use time::OffsetDateTime;
use time::macros::datetime;

/// The consumer group of `spindle sink` (`src/roles.rs`).
const SINK_GROUP: &str = "spindle-sink";

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

/// One gpt-4o span: 100 input and 10 output tokens ($0.00035).
fn llm_span(trace: u8, id: u8, now: u64) -> Span {
    Span {
        trace_id: [[trace; 8], [0xa5; 8]].concat(),
        span_id: vec![id; 8],
        name: "chat gpt-4o".into(),
        kind: 3,
        start_time_unix_nano: now - 3_000_000_000,
        end_time_unix_nano: now - 2_000_000_000,
        attributes: vec![
            attribute(
                "gen_ai.operation.name",
                any_value::Value::StringValue("chat".into()),
            ),
            attribute(
                "gen_ai.provider.name",
                any_value::Value::StringValue("openai".into()),
            ),
            attribute(
                "gen_ai.request.model",
                any_value::Value::StringValue("gpt-4o".into()),
            ),
            attribute("gen_ai.usage.input_tokens", any_value::Value::IntValue(100)),
            attribute("gen_ai.usage.output_tokens", any_value::Value::IntValue(10)),
        ],
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn now_nanos() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos()).expect("time")
}

/// Replay's producer, as `spindle replay` builds it.
fn producer(config: &Config) -> FutureProducer {
    spindle::clients::kafka_config(&config.kafka)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
        .create()
        .expect("producer")
}

/// Replays `range`, collecting the progress reports; a hang fails the test.
async fn run_replay(
    config: &Config,
    range: ReplayRange,
) -> (Result<ReplayReport, ReplayError>, Vec<ReplayProgress>) {
    let s3 = spindle::clients::s3(&config.s3);
    let producer = producer(config);
    let mut seen = Vec::new();
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        replay(&s3, &config.s3.bucket, &producer, range, |p| {
            seen.push(p.clone())
        }),
    )
    .await
    .expect("replay finishes");
    (result, seen)
}

/// The totals a replay must not change, for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Totals {
    rows: u64,
    signs: i64,
    trace_spans: i64,
    trace_input_tokens: i64,
    trace_cost: String,
    usage_spans: i64,
    usage_cost: String,
}

async fn totals(db: &clickhouse::Client, project: &str) -> Totals {
    let (rows, signs): (u64, i64) = db
        .query("SELECT count(), sum(sign) FROM spans FINAL WHERE project_id = ?")
        .bind(project)
        .fetch_one()
        .await
        .expect("spans totals");
    let (trace_spans, trace_input_tokens, trace_cost): (i64, i64, String) = db
        .query(
            "SELECT sum(span_count), sum(input_tokens), toString(sum(total_cost)) \
             FROM traces WHERE project_id = ?",
        )
        .bind(project)
        .fetch_one()
        .await
        .expect("traces totals");
    let (usage_spans, usage_cost): (i64, String) = db
        .query(
            "SELECT sum(spans), toString(sum(total_cost)) FROM usage_hourly WHERE project_id = ?",
        )
        .bind(project)
        .fetch_one()
        .await
        .expect("usage totals");
    Totals {
        rows,
        signs,
        trace_spans,
        trace_input_tokens,
        trace_cost,
        usage_spans,
        usage_cost,
    }
}

/// Waits for `count` records of `project` on `consumer`, then until the sink has committed past
/// every one of them: the pipeline is done with what the replay produced.
fn wait_for_sink(config: &Config, enriched: &BaseConsumer, project: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last: std::collections::BTreeMap<i32, i64> = Default::default();
    let mut seen = 0;
    while seen < count {
        assert!(
            Instant::now() < deadline,
            "only {seen} of {count} spans.enriched records of `{project}` arrived"
        );
        if let Some(Ok(message)) = enriched.poll(Duration::from_millis(200))
            && message
                .key()
                .unwrap_or_default()
                .starts_with(format!("{project}/").as_bytes())
        {
            seen += 1;
            last.insert(message.partition(), message.offset());
        }
    }
    let sink: BaseConsumer = spindle::clients::kafka_config(&config.kafka)
        .set("group.id", SINK_GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let topic = spindle_schemas::topics::SPANS_ENRICHED.name;
    let mut wanted = rdkafka::TopicPartitionList::new();
    for partition in last.keys() {
        wanted.add_partition(topic, *partition);
    }
    loop {
        let committed = sink
            .committed_offsets(wanted.clone(), Duration::from_secs(10))
            .expect("committed offsets");
        let behind: Vec<(i32, i64)> = last
            .iter()
            .filter(|(partition, offset)| {
                !matches!(
                    committed.find_partition(topic, **partition).map(|p| p.offset()),
                    Some(rdkafka::Offset::Offset(at)) if at > **offset
                )
            })
            .map(|(p, o)| (*p, *o))
            .collect();
        if behind.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the sink has not committed past {behind:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Replays `range` and waits until the sink is done with it; returns the report and what was
/// produced to `spans.raw` for `project`, in canonical order.
async fn replay_and_settle(
    config: &Config,
    range: ReplayRange,
    spans: usize,
) -> (ReplayReport, Vec<ReplayProgress>, Vec<(String, Vec<u8>)>) {
    let project = range.project.clone().expect("a project");
    let raw = support::RawTail::start(config);
    let enriched = support::tail(config, spindle_schemas::topics::SPANS_ENRICHED.name);
    let (result, progress) = run_replay(config, range).await;
    let report = result.expect("replay succeeds");
    let config = config.clone();
    let produced = tokio::task::spawn_blocking(move || {
        let produced = raw.collect(&project, spans, Duration::from_secs(30));
        wait_for_sink(&config, &enriched, &project, spans);
        produced
    })
    .await
    .expect("collector");
    (report, progress, canonical(produced))
}

/// Records sorted by key and bytes, comparable across runs.
fn canonical(records: Vec<(String, RawSpanBatch)>) -> Vec<(String, Vec<u8>)> {
    let mut records: Vec<(String, Vec<u8>)> = records
        .into_iter()
        .map(|(key, batch)| (key, batch.encode_to_vec()))
        .collect();
    records.sort();
    records
}

/// One line per record: key, archive index, receive time, span ids, size.
fn summary(records: &[(String, Vec<u8>)]) -> String {
    records
        .iter()
        .map(|(key, bytes)| {
            let batch = RawSpanBatch::decode(bytes.as_slice()).expect("decodes");
            let spans: Vec<u8> = batch.spans.iter().map(|s| s.span_id[0]).collect();
            format!(
                "{key} #{:?} at {} spans {spans:?} ({} bytes)",
                batch.archive.map(|a| a.index),
                batch.received_at_unix_nano,
                bytes.len()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The "replay twice → identical totals", through the whole pipeline.
#[tokio::test(flavor = "multi_thread")]
async fn replaying_twice_leaves_every_total_unchanged() {
    let config = support::stack();
    let (project, key) = support::project_with_key(&config).await;
    let since = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let now = now_nanos();
    // Two requests, three traces: trace 1 spans both requests, so it is in two records.
    let requests = [
        request(vec![
            llm_span(1, 1, now),
            llm_span(1, 2, now),
            llm_span(2, 3, now),
            llm_span(1, 4, now),
            llm_span(2, 5, now),
        ]),
        request(vec![
            llm_span(3, 6, now),
            llm_span(1, 7, now),
            llm_span(3, 8, now),
        ]),
    ];
    const SPANS: usize = 8;
    // A request's traces that share a partition share a record.
    let partition = |trace: u8| {
        spindle_pipeline::gateway::partition_of(
            &spindle_schemas::raw::trace_key(&project, &[[trace; 8], [0xa5; 8]].concat()),
            u32::from(config.kafka.partitions),
        )
    };
    let records_of = |a: u8, b: u8| if partition(a) == partition(b) { 1 } else { 2 };
    let records = records_of(1, 2) + records_of(3, 1);

    let raw = support::RawTail::start(&config);
    let http = reqwest::Client::new();
    for body in requests {
        let response = http
            .post(format!("http://{}/v1/traces", config.gateway.http_listen))
            .header("content-type", "application/x-protobuf")
            .header("x-api-key", &key)
            .body(body)
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(response.status(), 200);
    }
    let project_for_tail = project.clone();
    let original = tokio::task::spawn_blocking(move || {
        raw.collect(&project_for_tail, SPANS, Duration::from_secs(30))
    })
    .await
    .expect("collector");
    let original = canonical(original);
    assert_eq!(original.len() as u64, records, "the gateway's records");

    let db =
        spindle::clients::clickhouse(&config.clickhouse).with_database(&config.clickhouse.database);
    let started = Instant::now();
    while totals(&db, &project).await.rows < SPANS as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the spans reached ClickHouse"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = totals(&db, &project).await;
    // gpt-4o: 100 × $2.50/M + 10 × $10/M = $0.00035 per span.
    assert_eq!(
        before,
        Totals {
            rows: 8,
            signs: 8,
            trace_spans: 8,
            trace_input_tokens: 800,
            trace_cost: "0.0028".into(),
            usage_spans: 8,
            usage_cost: "0.0028".into(),
        }
    );

    let range = ReplayRange {
        since,
        until: Some(OffsetDateTime::now_utc()),
        project: Some(project.clone()),
    };
    let mut reports = Vec::new();
    for round in 1..=2 {
        let (report, progress, replayed) = replay_and_settle(&config, range.clone(), SPANS).await;
        assert!(report.objects >= 1, "round {round}: {report:?}");
        assert_eq!(
            (report.requests, report.spans, report.records),
            (2, SPANS as u64, records),
            "round {round}"
        );
        assert_eq!(progress.len() as u64, report.objects, "round {round}");
        assert_eq!(progress.last().map(|p| p.replayed), Some(report));
        assert!(
            progress
                .iter()
                .all(|p| p.key.starts_with(&format!("raw/{project}/"))),
            "{progress:?}"
        );
        assert!(
            replayed == original,
            "round {round}: replay must produce the gateway's records, byte for byte; \
             replayed:\n{}\ngateway:\n{}",
            summary(&replayed),
            summary(&original)
        );
        // Give a late duplicate the chance to show up before checking it did not.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(totals(&db, &project).await, before, "round {round}");
        reports.push(report);
    }
    assert_eq!(
        reports[0], reports[1],
        "both rounds replayed the same archive"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_without_objects_replays_nothing() {
    let config = support::stack();
    let project = support::unique("p-empty").replace('_', "-").to_lowercase();
    let (result, progress) = run_replay(
        &config,
        ReplayRange {
            since: OffsetDateTime::now_utc() - time::Duration::hours(2),
            until: None,
            project: Some(project),
        },
    )
    .await;
    assert_eq!(result.expect("replays"), ReplayReport::default());
    assert!(progress.is_empty());

    // Every project, in hours before any archive existed.
    let (result, progress) = run_replay(
        &config,
        ReplayRange {
            since: datetime!(2000-06-01 00:00 UTC),
            until: Some(datetime!(2000-06-01 02:30 UTC)),
            project: None,
        },
    )
    .await;
    assert_eq!(result.expect("replays"), ReplayReport::default());
    assert!(progress.is_empty());

    let err = run_replay(
        &config,
        ReplayRange {
            since: datetime!(2026-01-02 00:00 UTC),
            until: Some(datetime!(2026-01-01 00:00 UTC)),
            project: None,
        },
    )
    .await
    .0
    .expect_err("backwards range");
    assert!(matches!(err, ReplayError::InvalidRange { .. }), "{err}");
}

async fn put(config: &Config, key: &str, object: &ArchiveObject) {
    spindle::clients::s3(&config.s3)
        .put_object()
        .bucket(&config.s3.bucket)
        .key(key)
        .body(object.encode_to_vec().into())
        .send()
        .await
        .expect("put object");
}

/// Without a project, replay finds every project's folder (an object put in an hour of 2001,
/// so no other archive is in the range).
#[tokio::test(flavor = "multi_thread")]
async fn without_a_project_every_project_is_replayed() {
    let config = support::stack();
    let project = support::unique("p-all").replace('_', "-").to_lowercase();
    let key = format!("raw/{project}/2001/01/01/03/{}.pb", uuid::Uuid::now_v7());
    let object = ArchiveObject {
        version: ARCHIVE_VERSION,
        workspace_id: "w".into(),
        project_id: project.clone(),
        requests: Vec::new(),
    };
    put(&config, &key, &object).await;
    let (result, progress) = run_replay(
        &config,
        ReplayRange {
            since: datetime!(2001-01-01 02:30 UTC),
            until: Some(datetime!(2001-01-01 03:10 UTC)),
            project: None,
        },
    )
    .await;
    let report = result.expect("replays");
    assert!(report.objects >= 1, "{report:?}");
    assert!(progress.iter().any(|p| p.key == key), "{progress:?}");
    assert_eq!(
        progress.iter().map(|p| p.hour).collect::<Vec<_>>(),
        vec![datetime!(2001-01-01 03:00 UTC); progress.len()],
        "only hour 03 holds objects"
    );
    assert_eq!(progress[0].hours_total, 2, "hours 02 and 03");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_archive_version_is_an_error_naming_the_object() {
    let config = support::stack();
    let project = support::unique("p-future").replace('_', "-").to_lowercase();
    let key = format!("raw/{project}/2001/02/03/04/{}.pb", uuid::Uuid::now_v7());
    let object = ArchiveObject {
        version: ARCHIVE_VERSION + 98,
        workspace_id: "w".into(),
        project_id: project.clone(),
        requests: Vec::new(),
    };
    put(&config, &key, &object).await;
    let (result, progress) = run_replay(
        &config,
        ReplayRange {
            since: datetime!(2001-02-03 04:00 UTC),
            until: Some(datetime!(2001-02-03 04:59 UTC)),
            project: Some(project),
        },
    )
    .await;
    let err = result.expect_err("an unknown version");
    assert!(
        matches!(&err, ReplayError::UnknownVersion { key: k, version: 99 } if *k == key),
        "{err:?}"
    );
    assert!(err.to_string().contains(&format!("`{key}`")), "{err}");
    assert!(progress.is_empty());
}
