//! The sink's ClickHouse write side against the local ClickHouse: the sign protocol keeps
//! `spans FINAL`, `traces` and `usage_hourly` counting every span exactly once through first
//! writes, redeliveries, replays under new prices, in-batch duplicates and several tenants.

mod support;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use spindle_pipeline::sink::store::{self, StoreError, StoreSettings, WriteOutcome};
use spindle_pipeline::sink::{RowError, SpanRow};
use spindle_schemas::canonical::{
    CostStatus, ENRICHED_SPAN_VERSION, EnrichedSpan, SpanEvent, SpanKind, StatusCode,
};

/// A fresh database with the migrations applied; the client is not bound to it (the store
/// names its tables with `settings.database`).
async fn store(lookup_keys_per_query: usize) -> (clickhouse::Client, StoreSettings) {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("sink");
    spindle_migrations::apply(&client, &database, &spindle_migrations::embedded())
        .await
        .expect("migrations apply");
    let settings = StoreSettings {
        database,
        retention_days_default: 30,
        lookup_keys_per_query,
        request_timeout_ms: 30_000,
    };
    (client, settings)
}

/// The start of the hour before the current one, in Unix nanoseconds: inside any retention.
fn hour_ns() -> u64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    (secs / 3600 - 1) * 3600 * 1_000_000_000
}

/// Span `n` of trace `trace` in `project`: span 0 is the root agent, the others LLM calls
/// with `1000 × n` input tokens costing `cost_nanos` (None: an unknown model).
fn span(project: &str, trace: u32, n: u32, cost_nanos: Option<i64>) -> EnrichedSpan {
    let start = hour_ns() + u64::from(trace) * 60_000_000_000 + u64::from(n) * 1_000_000_000;
    let llm = n > 0;
    EnrichedSpan {
        version: ENRICHED_SPAN_VERSION,
        processor_version: 1,
        project_id: project.into(),
        trace_id: format!("{trace:032x}"),
        span_id: format!("{n:016x}"),
        parent_span_id: if llm {
            format!("{:016x}", 0)
        } else {
            String::new()
        },
        name: if llm {
            "chat".into()
        } else {
            "agent run".into()
        },
        kind: if llm { SpanKind::Llm } else { SpanKind::Agent } as i32,
        service: "svc".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 500_000_000,
        duration_ns: 500_000_000,
        status_code: StatusCode::Ok as i32,
        model: if llm { "gpt-4o".into() } else { String::new() },
        input_tokens: if llm { 1000 * u64::from(n) } else { 0 },
        output_tokens: if llm { 10 } else { 0 },
        total_cost_nanos: cost_nanos,
        cost_status: match (llm, cost_nanos) {
            (false, _) => CostStatus::NoUsage,
            (true, Some(_)) => CostStatus::Computed,
            (true, None) => CostStatus::UnknownModel,
        } as i32,
        attributes: BTreeMap::from([("n".to_owned(), n.to_string())]),
        events: vec![SpanEvent {
            time_unix_nano: start + 1,
            name: "first token".into(),
            attributes: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        }],
        span_bytes: 100 + n,
        ..Default::default()
    }
}

/// A trace of a root and `llm_calls` LLM spans, span `n` costing `n × unit` nano-dollars.
fn trace(project: &str, trace_no: u32, llm_calls: u32, unit: i64) -> Vec<EnrichedSpan> {
    (0..=llm_calls)
        .map(|n| {
            let cost = (n > 0).then_some(i64::from(n) * unit);
            span(project, trace_no, n, cost)
        })
        .collect()
}

/// What the three read paths say about one project.
#[derive(Debug, PartialEq, Eq)]
struct Totals {
    /// `spans FINAL`: live rows, their summed sign and cost (Decimal raw units, 1e-12 USD).
    live_rows: u64,
    live_sign: i64,
    live_cost: i128,
    /// `traces`: spans, input tokens, cost, spans of unknown cost.
    trace_spans: i64,
    trace_input_tokens: i64,
    trace_cost: i128,
    trace_unknown: i64,
    /// `usage_hourly`: spans, bytes, input tokens, cost.
    usage_spans: i64,
    usage_bytes: i64,
    usage_input_tokens: i64,
    usage_cost: i128,
}

/// The totals a set of spans must produce, counted once each.
fn expected(spans: &[EnrichedSpan]) -> Totals {
    let cost: i128 = spans
        .iter()
        .map(|s| i128::from(s.total_cost_nanos.unwrap_or(0)) * 1000)
        .sum();
    let tokens: i64 = spans.iter().map(|s| s.input_tokens as i64).sum();
    let count = spans.len() as i64;
    Totals {
        live_rows: spans.len() as u64,
        live_sign: count,
        live_cost: cost,
        trace_spans: count,
        trace_input_tokens: tokens,
        trace_cost: cost,
        trace_unknown: spans
            .iter()
            .filter(|s| s.cost_status == CostStatus::UnknownModel as i32)
            .count() as i64,
        usage_spans: count,
        usage_bytes: spans.iter().map(|s| i64::from(s.span_bytes)).sum(),
        usage_input_tokens: tokens,
        usage_cost: cost,
    }
}

async fn totals(client: &clickhouse::Client, settings: &StoreSettings, project: &str) -> Totals {
    let db = client.clone().with_database(&settings.database);
    let (live_rows, live_sign, live_cost): (u64, i64, i128) = db
        .query(
            "SELECT count(), sum(sign), sum(assumeNotNull(total_cost)) FROM spans FINAL \
             WHERE project_id = ?",
        )
        .bind(project)
        .fetch_one()
        .await
        .expect("spans final");
    let (trace_spans, trace_input_tokens, trace_cost, trace_unknown): (i64, i64, i128, i64) = db
        .query(
            "SELECT sum(span_count), sum(input_tokens), sum(total_cost), sum(unknown_cost_spans) \
             FROM traces WHERE project_id = ?",
        )
        .bind(project)
        .fetch_one()
        .await
        .expect("traces");
    let (usage_spans, usage_bytes, usage_input_tokens, usage_cost): (i64, i64, i64, i128) = db
        .query(
            "SELECT sum(spans), sum(bytes), sum(input_tokens), sum(total_cost) FROM usage_hourly \
             WHERE project_id = ?",
        )
        .bind(project)
        .fetch_one()
        .await
        .expect("usage_hourly");
    Totals {
        live_rows,
        live_sign,
        live_cost,
        trace_spans,
        trace_input_tokens,
        trace_cost,
        trace_unknown,
        usage_spans,
        usage_bytes,
        usage_input_tokens,
        usage_cost,
    }
}

/// Physical rows of a project in `spans` (before any collapsing).
async fn stored_rows(client: &clickhouse::Client, settings: &StoreSettings, project: &str) -> u64 {
    client
        .clone()
        .with_database(&settings.database)
        .query("SELECT count() FROM spans WHERE project_id = ?")
        .bind(project)
        .fetch_one()
        .await
        .expect("count spans")
}

fn outcome(new: usize, replaced: usize, unchanged: usize, duplicates: usize) -> WriteOutcome {
    WriteOutcome {
        new,
        replaced,
        unchanged,
        duplicates,
        expired: 0,
        rejected: vec![],
        rows_written: new + 2 * replaced,
    }
}

#[tokio::test]
async fn a_first_write_stores_each_span_once() {
    let (client, settings) = store(1000).await;
    let mut batch = trace("p1", 1, 3, 1_500_000);
    batch.push(span("p1", 1, 4, None));
    let done = store::write(&client, &batch, &settings, "t-0-0-4")
        .await
        .expect("write");
    assert_eq!(done, outcome(5, 0, 0, 0));
    let totals = totals(&client, &settings, "p1").await;
    assert_eq!(totals, expected(&batch));
    // 1.5 + 3.0 + 4.5 milli-dollars, 10k input tokens, one span of unknown cost.
    assert_eq!(totals.usage_cost, 9_000_000_000);
    assert_eq!(totals.trace_input_tokens, 10_000);
    assert_eq!(totals.trace_unknown, 1);

    // Every column reads back as written.
    let back: Vec<SpanRow> = client
        .clone()
        .with_database(&settings.database)
        .query("SELECT ?fields FROM spans FINAL WHERE project_id = ? ORDER BY span_id")
        .bind("p1")
        .fetch_all()
        .await
        .expect("rows");
    for (row, span) in back.iter().zip(&batch) {
        let want = SpanRow::from_enriched(span, 1, 1, 30, row.ingested_at).expect("valid");
        assert_eq!(row, &want);
    }
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let (client, settings) = store(1000).await;
    let batch = trace("p1", 1, 3, 2_000_000);
    let first = store::write(&client, &batch, &settings, "t-0-0-3")
        .await
        .expect("first write");
    assert_eq!(first, outcome(4, 0, 0, 0));

    // The same offsets again (a crash before the commit), then the same spans through other
    // offsets (a replay under the same prices): nothing is written either time.
    for token in ["t-0-0-3", "t-0-100-103"] {
        let again = store::write(&client, &batch, &settings, token)
            .await
            .expect("redelivery");
        assert_eq!(again, outcome(0, 0, 4, 0), "token {token}");
    }
    assert_eq!(totals(&client, &settings, "p1").await, expected(&batch));
    assert_eq!(stored_rows(&client, &settings, "p1").await, 4);
}

#[tokio::test]
async fn a_replay_with_new_prices_counts_the_new_costs_once() {
    // A small lookup chunk: 21 traces × 3 spans take several lookup queries.
    let (client, settings) = store(7).await;
    let priced = |unit: i64| -> Vec<EnrichedSpan> {
        (0..21)
            .flat_map(|t| trace("p1", t, 2, unit))
            .map(|mut s| {
                s.price_table_version = format!("v{unit}");
                s
            })
            .collect()
    };
    let old = priced(1_000_000);
    assert_eq!(
        store::write(&client, &old, &settings, "t-0-0-62")
            .await
            .expect("first write"),
        outcome(63, 0, 0, 0)
    );

    // New prices change the 42 LLM spans; the 21 roots carry no cost and stay as they are.
    let new = priced(1_250_000);
    let replay = store::write(&client, &new, &settings, "t-0-63-125")
        .await
        .expect("replay");
    assert_eq!(replay, outcome(0, 42, 21, 0));
    let totals_after = totals(&client, &settings, "p1").await;
    assert_eq!(totals_after, expected(&new));
    // 21 traces × (1 + 2) × $0.00125 = $0.07875.
    assert_eq!(totals_after.trace_cost, 78_750_000_000);
    assert_eq!(stored_rows(&client, &settings, "p1").await, 63 + 2 * 42);

    // Replaying the same prices again (twice) leaves identical totals.
    for token in ["t-0-126-188", "t-0-189-251"] {
        let again = store::write(&client, &new, &settings, token)
            .await
            .expect("replay again");
        assert_eq!(again, outcome(0, 0, 63, 0));
        assert_eq!(totals(&client, &settings, "p1").await, totals_after);
    }

    // A third price table raises the version once more; only its costs count.
    let newest = priced(900_000);
    let replay = store::write(&client, &newest, &settings, "t-0-252-314")
        .await
        .expect("third prices");
    assert_eq!(replay, outcome(0, 42, 21, 0));
    assert_eq!(totals(&client, &settings, "p1").await, expected(&newest));
    let versions: Vec<(u64, u64)> = client
        .clone()
        .with_database(&settings.database)
        .query(
            "SELECT version, count() FROM spans FINAL WHERE project_id = ? \
             GROUP BY version ORDER BY version",
        )
        .bind("p1")
        .fetch_all()
        .await
        .expect("versions");
    assert_eq!(versions, [(1, 21), (3, 42)]);
}

#[tokio::test]
async fn the_same_span_twice_in_a_batch_counts_once_and_the_last_wins() {
    let (client, settings) = store(1000).await;
    let first = span("p1", 1, 1, Some(1_000_000));
    let last = span("p1", 1, 1, Some(3_000_000));
    let other = span("p1", 1, 2, Some(5_000_000));
    let batch = [first, other.clone(), last.clone()];
    let done = store::write(&client, &batch, &settings, "t-0-0-2")
        .await
        .expect("write");
    assert_eq!(done, outcome(2, 0, 0, 1));
    assert_eq!(
        totals(&client, &settings, "p1").await,
        expected(&[last, other])
    );
    assert_eq!(stored_rows(&client, &settings, "p1").await, 2);
}

#[tokio::test]
async fn projects_in_one_batch_stay_apart() {
    let (client, settings) = store(1000).await;
    // Same trace and span ids in both projects: they are different spans.
    let p1 = trace("tenant-a", 7, 2, 1_000_000);
    let p2 = trace("tenant-b", 7, 2, 4_000_000);
    let batch: Vec<EnrichedSpan> = p1.iter().chain(&p2).cloned().collect();
    let done = store::write(&client, &batch, &settings, "t-0-0-5")
        .await
        .expect("write");
    assert_eq!(done, outcome(6, 0, 0, 0));
    assert_eq!(totals(&client, &settings, "tenant-a").await, expected(&p1));
    assert_eq!(totals(&client, &settings, "tenant-b").await, expected(&p2));

    // A replay of one tenant touches only that tenant.
    let p1_new = trace("tenant-a", 7, 2, 2_000_000);
    let replay = store::write(&client, &p1_new, &settings, "t-0-6-8")
        .await
        .expect("replay");
    assert_eq!(replay, outcome(0, 2, 1, 0));
    assert_eq!(
        totals(&client, &settings, "tenant-a").await,
        expected(&p1_new)
    );
    assert_eq!(totals(&client, &settings, "tenant-b").await, expected(&p2));
    assert_eq!(stored_rows(&client, &settings, "tenant-b").await, 3);
}

#[tokio::test]
async fn clickhouse_drops_a_retried_insert_with_the_same_token() {
    let (client, settings) = store(1000).await;
    let batch = trace("p1", 1, 2, 1_000_000);
    let rows: Vec<SpanRow> = batch
        .iter()
        .map(|s| SpanRow::from_enriched(s, 1, 1, 30, 1).expect("valid"))
        .collect();
    // Two sinks that both found nothing stored (a rebalance race): the token keeps one.
    for _ in 0..2 {
        store::insert(&client, &rows, &settings, "t-3-40-42")
            .await
            .expect("insert");
    }
    assert_eq!(totals(&client, &settings, "p1").await, expected(&batch));
    assert_eq!(stored_rows(&client, &settings, "p1").await, 3);

    // Control: under another token the same rows are stored (and counted) again.
    store::insert(&client, &rows, &settings, "t-3-43-45")
        .await
        .expect("insert");
    assert_eq!(stored_rows(&client, &settings, "p1").await, 6);
    assert_eq!(totals(&client, &settings, "p1").await.usage_spans, 6);
}

#[tokio::test]
async fn spans_that_can_never_be_stored_are_set_aside_and_the_rest_land() {
    let (client, settings) = store(1000).await;
    let good = trace("p1", 1, 2, 1_000_000);
    let mut too_dear = span("p1", 2, 1, Some(2_000_000_000_000_000)); // $2M
    too_dear.span_id = "00000000000000ff".into();
    let mut unknown_kind = span("p1", 2, 2, Some(1));
    unknown_kind.kind = 42;
    let batch: Vec<EnrichedSpan> = [too_dear, good[0].clone(), unknown_kind]
        .into_iter()
        .chain(good[1..].iter().cloned())
        .collect();
    let done = store::write(&client, &batch, &settings, "t-0-0-4")
        .await
        .expect("write");
    assert_eq!((done.new, done.rows_written), (3, 3));
    let rejected: Vec<(usize, &str, &RowError)> = done
        .rejected
        .iter()
        .map(|r| (r.index, r.key.span_id.as_str(), &r.error))
        .collect();
    assert_eq!(
        rejected,
        [
            (
                0,
                "00000000000000ff",
                &RowError::CostOutOfRange {
                    field: "total_cost",
                    nanos: 2_000_000_000_000_000
                }
            ),
            (
                2,
                "0000000000000002",
                &RowError::UnknownEnum {
                    field: "kind",
                    value: 42
                }
            ),
        ]
    );
    assert_eq!(totals(&client, &settings, "p1").await, expected(&good));
}

#[tokio::test]
async fn a_span_past_its_retention_is_never_counted() {
    let (client, settings) = store(1000).await;
    let fresh = trace("p1", 1, 1, 1_000_000);
    // Started 40 days ago under a 30-day retention: ClickHouse's TTL would drop the row on
    // insert while `usage_hourly` still counted it, again at every replay.
    let mut old = span("p1", 2, 1, Some(7_000_000));
    old.start_time_unix_nano -= 40 * 86_400 * 1_000_000_000;
    old.end_time_unix_nano -= 40 * 86_400 * 1_000_000_000;
    let batch: Vec<EnrichedSpan> = fresh.iter().cloned().chain([old]).collect();
    for token in ["t-0-0-2", "t-0-3-5"] {
        let done = store::write(&client, &batch, &settings, token)
            .await
            .expect("write");
        assert_eq!(done.expired, 1, "token {token}");
        assert_eq!(totals(&client, &settings, "p1").await, expected(&fresh));
    }
}

#[tokio::test]
async fn a_batch_across_many_months_lands_whole() {
    let (client, mut settings) = store(1000).await;
    settings.retention_days_default = 5000;
    // 120 spans 31 days apart: 120 monthly partitions in one insert.
    let batch: Vec<EnrichedSpan> = (0..120_u32)
        .map(|m| {
            let mut s = span("p1", m, 1, Some(1_000));
            let back = u64::from(m) * 31 * 86_400 * 1_000_000_000;
            s.start_time_unix_nano -= back;
            s.end_time_unix_nano -= back;
            s
        })
        .collect();
    let done = store::write(&client, &batch, &settings, "t-0-0-119")
        .await
        .expect("write");
    assert_eq!(done, outcome(120, 0, 0, 0));
    assert_eq!(totals(&client, &settings, "p1").await, expected(&batch));
}

/// A block the engine refuses is a permanent error (the HTTP adapter stages inserts for
/// `FROM INFILE`, which reports it; chDB's streaming inserter silently dropped it).
#[tokio::test]
async fn a_value_clickhouse_refuses_is_a_permanent_error() {
    let (client, settings) = store(1000).await;
    let mut row = SpanRow::from_enriched(&span("p1", 1, 1, Some(1)), 1, 1, 30, 1).expect("valid");
    // A Nested column whose arrays disagree in length: ClickHouse refuses the block.
    row.events_name.push("orphan".into());
    let err = store::insert(&client, &[row], &settings, "t-0-0-0")
        .await
        .expect_err("refused");
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        matches!(&err, StoreError::Rejected { code: 190, .. }),
        "{err}"
    );
    assert_eq!(stored_rows(&client, &settings, "p1").await, 0);
}

#[tokio::test]
async fn outages_and_a_wrong_deployment_are_retryable() {
    let (_, settings) = store(1000).await;
    let batch = trace("p1", 1, 1, 1);
    // Nothing listens on port 9 of the loopback interface.
    let down = clickhouse::Client::default().with_url("http://127.0.0.1:9");
    let err = store::write(&down, &batch, &settings, "t")
        .await
        .expect_err("unreachable");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());

    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let missing = StoreSettings {
        database: support::unique("no_such_db"),
        ..settings
    };
    let err = store::write(&client, &batch, &missing, "t")
        .await
        .expect_err("no database");
    assert!(matches!(err, StoreError::Setup { .. }), "{err:?}");
    assert!(
        err.is_retryable(),
        "a deployment problem is not the records' fault"
    );
}
