//! The migration engine and the initial schema, against the local ClickHouse.

mod support;

use spindle_migrations::{MigrateError, Migration, MigrationState, apply, embedded, status};

#[tokio::test]
async fn apply_then_reapply_is_a_no_op() {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("mig");
    let migrations = embedded();

    let before = status(&client, &database, &migrations)
        .await
        .expect("status");
    assert!(before.iter().all(|s| s.state == MigrationState::Pending));

    let applied = apply(&client, &database, &migrations).await.expect("apply");
    let names: Vec<&str> = migrations.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(applied, names);
    let again = apply(&client, &database, &migrations)
        .await
        .expect("re-apply");
    assert!(again.is_empty(), "second run applied {again:?}");

    let after = status(&client, &database, &migrations)
        .await
        .expect("status");
    assert_eq!(after.len(), migrations.len());
    assert!(
        after
            .iter()
            .all(|s| s.state == MigrationState::Applied && s.applied_at.is_some())
    );

    let db = client.with_database(&database);
    let ledger: u64 = db
        .query("SELECT count() FROM schema_migrations")
        .fetch_one()
        .await
        .expect("ledger");
    assert_eq!(ledger, migrations.len() as u64, "each file recorded once");
    for table in [
        "spans",
        "traces",
        "usage_hourly",
        "audit_log",
        "trace_hours",
    ] {
        let exists: u64 = db
            .query(
                "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?",
            )
            .bind(table)
            .fetch_one()
            .await
            .expect("system.tables");
        assert_eq!(exists, 1, "table `{table}` exists");
    }
}

#[tokio::test]
async fn an_edited_applied_file_is_refused() {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("mig");
    let original = vec![
        Migration::new(
            "0001_a.sql",
            "CREATE TABLE IF NOT EXISTS a (x UInt8) ENGINE = Log",
        )
        .expect("valid"),
    ];
    apply(&client, &database, &original).await.expect("apply");

    let edited = vec![
        Migration::new(
            "0001_a.sql",
            "CREATE TABLE IF NOT EXISTS a (x UInt16) ENGINE = Log",
        )
        .expect("valid"),
        Migration::new(
            "0002_b.sql",
            "CREATE TABLE IF NOT EXISTS b (x UInt8) ENGINE = Log",
        )
        .expect("valid"),
    ];
    let err = apply(&client, &database, &edited)
        .await
        .expect_err("edited file refused");
    assert!(
        matches!(&err, MigrateError::Edited { name, .. } if name == "0001_a.sql"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("`0001_a.sql` was edited after it was applied"),
        "{err}"
    );

    let lines = status(&client, &database, &edited).await.expect("status");
    assert_eq!(lines[0].state, MigrationState::Edited);
    assert_eq!(lines[1].state, MigrationState::Pending);
    let b_exists: u64 = client
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'b'")
        .bind(&database)
        .fetch_one()
        .await
        .expect("system.tables");
    assert_eq!(b_exists, 0, "nothing after the refusal ran");
}

#[tokio::test]
async fn a_failing_migration_names_the_file_and_clickhouse_message() {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("mig");
    let migrations = vec![
        Migration::new("0001_ok.sql", "CREATE TABLE IF NOT EXISTS ok (x UInt8) ENGINE = Log")
            .expect("valid"),
        Migration::new(
            "0002_broken.sql",
            "CREATE TABLE IF NOT EXISTS fine (x UInt8) ENGINE = Log;\nCREAT TABLE broken (x UInt8) ENGINE = Log;",
        )
        .expect("valid"),
        Migration::new("0003_after.sql", "CREATE TABLE IF NOT EXISTS after (x UInt8) ENGINE = Log")
            .expect("valid"),
    ];
    let err = apply(&client, &database, &migrations)
        .await
        .expect_err("bad SQL fails");
    let text = err.to_string();
    assert!(
        matches!(&err, MigrateError::Failed { name, statement: 2, total: 2, .. } if name == "0002_broken.sql"),
        "{text}"
    );
    assert!(
        text.contains("Code: 62"),
        "ClickHouse's message is kept: {text}"
    );
    assert!(text.contains("SYNTAX_ERROR"), "{text}");

    let lines = status(&client, &database, &migrations)
        .await
        .expect("status");
    let states: Vec<MigrationState> = lines.iter().map(|l| l.state).collect();
    assert_eq!(
        states,
        [
            MigrationState::Applied,
            MigrationState::Pending,
            MigrationState::Pending
        ]
    );

    // Fixing the file lets the next run finish (its first statement is re-runnable).
    let mut fixed = migrations.clone();
    fixed[1] = Migration::new(
        "0002_broken.sql",
        "CREATE TABLE IF NOT EXISTS fine (x UInt8) ENGINE = Log;\nCREATE TABLE IF NOT EXISTS broken (x UInt8) ENGINE = Log;",
    )
    .expect("valid");
    let applied = apply(&client, &database, &fixed).await.expect("fixed run");
    assert_eq!(applied, ["0002_broken.sql", "0003_after.sql"]);
}

#[tokio::test]
async fn a_database_ahead_of_the_binary_is_refused() {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("mig");
    let newer = vec![
        Migration::new("0001_a.sql", "SELECT 1").expect("valid"),
        Migration::new("0002_b.sql", "SELECT 2").expect("valid"),
    ];
    apply(&client, &database, &newer).await.expect("apply");
    let err = apply(&client, &database, &newer[..1])
        .await
        .expect_err("older binary refused");
    assert!(
        matches!(&err, MigrateError::UnknownApplied { version: 2, .. }),
        "{err}"
    );
    let lines = status(&client, &database, &newer[..1])
        .await
        .expect("status");
    assert_eq!(lines[1].state, MigrationState::Unknown);
}

/// The summaries count a span once, whatever is re-inserted under the sign protocol.
#[tokio::test]
async fn summaries_net_out_replaced_spans() {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("schema");
    apply(&client, &database, &embedded()).await.expect("apply");
    let db = client.with_database(&database);

    let insert = |rows: &'static str| {
        let db = db.clone();
        async move {
            db.query(&format!(
                "INSERT INTO spans (project_id, trace_id, span_id, parent_span_id, name, kind, \
                 start_time, end_time, status_code, model, input_tokens, output_tokens, total_cost, \
                 cost_status, tags, span_bytes, retention_days, version, sign) VALUES {rows}"
            ))
            .execute()
            .await
            .expect("insert spans");
        }
    };
    // A trace: a root agent span, one LLM call, one LLM call with an unknown model.
    insert(
        "('p1', 't1', 'a', '', 'agent run', 'agent', '2026-11-27 10:00:00', '2026-11-27 10:00:05', 'ok', '', 0, 0, NULL, 'none', ['prod'], 100, 30, 1, 1),
         ('p1', 't1', 'b', 'a', 'chat', 'llm', '2026-11-27 10:00:01', '2026-11-27 10:00:02', 'ok', 'gpt-4o', 1000, 200, 0.0045, 'computed', [], 300, 30, 1, 1),
         ('p1', 't1', 'c', 'a', 'chat', 'llm', '2026-11-27 10:00:03', '2026-11-27 10:00:04', 'error', 'mystery-1', 500, 50, NULL, 'unknown_model', [], 200, 30, 1, 1),
         ('p2', 't9', 'z', '', 'other tenant', 'llm', '2026-11-27 10:30:00', '2026-11-27 10:30:01', 'ok', 'gpt-4o', 7, 7, 0.1, 'computed', [], 10, 30, 1, 1)",
    )
    .await;
    // A replay re-prices span b: cancel the stored row, add the new version.
    insert(
        "('p1', 't1', 'b', 'a', 'chat', 'llm', '2026-11-27 10:00:01', '2026-11-27 10:00:02', 'ok', 'gpt-4o', 1000, 200, 0.0045, 'computed', [], 300, 30, 1, -1),
         ('p1', 't1', 'b', 'a', 'chat', 'llm', '2026-11-27 10:00:01', '2026-11-27 10:00:02', 'ok', 'gpt-4o', 1000, 200, 0.0050, 'computed', [], 300, 30, 2, 1)",
    )
    .await;

    #[derive(Debug, serde::Deserialize, clickhouse::Row)]
    struct TraceSummary {
        root_name: String,
        span_count: i64,
        error_count: i64,
        input_tokens: i64,
        output_tokens: i64,
        total_cost: String,
        unknown_cost_spans: i64,
        models: Vec<String>,
    }
    let trace: TraceSummary = db
        .query(
            "SELECT max(root_name) AS root_name, sum(span_count) AS span_count, \
             sum(error_count) AS error_count, sum(input_tokens) AS input_tokens, \
             sum(output_tokens) AS output_tokens, toString(sum(total_cost)) AS total_cost, \
             sum(unknown_cost_spans) AS unknown_cost_spans, \
             arraySort(groupUniqArrayArray(models)) AS models \
             FROM traces WHERE project_id = 'p1' AND trace_id = 't1'",
        )
        .fetch_one()
        .await
        .expect("trace summary");
    assert_eq!(trace.root_name, "agent run");
    assert_eq!(trace.span_count, 3);
    assert_eq!(trace.error_count, 1);
    assert_eq!(trace.input_tokens, 1500);
    assert_eq!(trace.output_tokens, 250);
    assert_eq!(trace.total_cost, "0.005");
    assert_eq!(trace.unknown_cost_spans, 1);
    assert_eq!(trace.models, ["gpt-4o", "mystery-1"]);

    let (spans, tokens, cost): (i64, i64, String) = db
        .query(
            "SELECT sum(spans), sum(input_tokens), toString(sum(total_cost)) FROM usage_hourly \
             WHERE project_id = 'p1' AND hour = toDateTime('2026-11-27 10:00:00', 'UTC')",
        )
        .fetch_one()
        .await
        .expect("usage");
    assert_eq!((spans, tokens, cost.as_str()), (3, 1500, "0.005"));

    // FINAL shows one current row per span.
    let current: Vec<(String, u64)> = db
        .query("SELECT span_id, version FROM spans FINAL WHERE project_id = 'p1' ORDER BY span_id")
        .fetch_all()
        .await
        .expect("spans final");
    assert_eq!(
        current,
        [
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
            ("c".to_owned(), 1)
        ]
    );
}

/// `trace_hours` lists the hours of spans stored before 0007 (its backfill) and after it (its
/// view), one row per project, trace and hour however often a span is written.
#[tokio::test]
async fn trace_hours_cover_spans_stored_before_and_after_0007() {
    let config = support::stack();
    let client = spindle::clients::clickhouse(&config.clickhouse);
    let database = support::unique("schema");
    let migrations = embedded();
    let before = migrations
        .iter()
        .position(|m| m.name == "0007_trace_hours.sql")
        .expect("0007 is embedded");
    apply(&client, &database, &migrations[..before])
        .await
        .expect("apply up to 0006");
    let db = client.clone().with_database(&database);
    let insert = |rows: &'static str| {
        let db = db.clone();
        async move {
            db.query(&format!(
                "INSERT INTO spans (project_id, trace_id, span_id, name, start_time, end_time, \
                 retention_days, version, sign) VALUES {rows}"
            ))
            .execute()
            .await
            .expect("insert spans");
        }
    };
    insert(
        "('p', 't1', 's1', 'root', now64(9) - INTERVAL 3 HOUR, now64(9), 30, 1, 1), \
         ('p', 't1', 's2', 'child', now64(9) - INTERVAL 1 HOUR, now64(9), 30, 1, 1), \
         ('q', 't1', 's1', 'other project', now64(9) - INTERVAL 2 HOUR, now64(9), 30, 1, 1)",
    )
    .await;
    apply(&client, &database, &migrations)
        .await
        .expect("apply 0007");
    // The same span again under the sign protocol, and a new trace.
    insert(
        "('p', 't1', 's2', 'child', now64(9) - INTERVAL 1 HOUR, now64(9), 30, 1, -1), \
         ('p', 't1', 's2', 'child', now64(9) - INTERVAL 1 HOUR, now64(9), 30, 2, 1), \
         ('p', 't2', 's1', 'new', now64(9) - INTERVAL 5 HOUR, now64(9), 7, 1, 1)",
    )
    .await;
    let rows: Vec<(String, String, i64, u16)> = db
        .query(
            "SELECT project_id, trace_id, \
             intDiv(toInt64(toUnixTimestamp(now())) - toInt64(toUnixTimestamp(hour)), 3600), \
             retention_days FROM trace_hours FINAL ORDER BY project_id, trace_id, hour",
        )
        .fetch_all()
        .await
        .expect("trace_hours");
    // Hours ago, counted from the start of each hour: an hour boundary may pass between the
    // inserts and the read, so each span's hour is h or h + 1 hours back.
    let shape: Vec<(&str, &str, u16)> = rows
        .iter()
        .map(|(p, t, _, days)| (p.as_str(), t.as_str(), *days))
        .collect();
    assert_eq!(
        shape,
        [
            ("p", "t1", 30),
            ("p", "t1", 30),
            ("p", "t2", 7),
            ("q", "t1", 30)
        ]
    );
    let ago: Vec<i64> = rows.iter().map(|r| r.2).collect();
    for (got, want) in ago.iter().zip([3, 1, 5, 2]) {
        assert!(*got == want || *got == want + 1, "{ago:?}");
    }
}
