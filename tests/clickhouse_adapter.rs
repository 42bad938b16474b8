//! Conformance of the local ClickHouse (chDB behind the HTTP adapter) with the ClickHouse HTTP
//! interface, through the official `clickhouse` crate and through plain HTTP.

mod support;

use std::collections::HashMap;
use std::io::Write;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// One column of every type Spindle's schema uses.
#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Everything {
    id: u64,
    name: String,
    kind: String,
    #[serde(with = "clickhouse::serde::time::datetime64::nanos")]
    start: OffsetDateTime,
    #[serde(with = "clickhouse::serde::time::datetime64::millis")]
    ingested: OffsetDateTime,
    day: u16,
    cost: Option<i64>,
    total: i128,
    flag: bool,
    sign: i8,
    tags: Vec<String>,
    attributes: HashMap<String, String>,
    #[serde(rename = "events.name")]
    event_names: Vec<String>,
    #[serde(rename = "events.time")]
    event_times: Vec<i64>,
}

const EVERYTHING_DDL: &str = "CREATE TABLE everything (
    id UInt64,
    name String,
    kind LowCardinality(String),
    start DateTime64(9, 'UTC'),
    ingested DateTime64(3, 'UTC'),
    day Date,
    cost Nullable(Decimal(18, 12)),
    total Decimal(38, 12),
    flag Bool,
    sign Int8,
    tags Array(LowCardinality(String)),
    attributes Map(LowCardinality(String), String),
    events Nested(name String, time DateTime64(9, 'UTC'))
) ENGINE = MergeTree ORDER BY id";

fn sample(id: u64) -> Everything {
    Everything {
        id,
        name: format!("span \"{id}\" with 'quotes', tabs\tand unicode ✓"),
        kind: if id.is_multiple_of(2) {
            "llm".into()
        } else {
            "tool".into()
        },
        start: OffsetDateTime::from_unix_timestamp_nanos(
            1_764_230_400_123_456_789 + i128::from(id),
        )
        .expect("valid time"),
        ingested: OffsetDateTime::from_unix_timestamp_nanos(1_764_230_401_123_000_000)
            .expect("valid time"),
        day: 20_419,
        cost: if id.is_multiple_of(3) {
            None
        } else {
            Some(1_234_567_890_123 + id as i64)
        },
        total: -98_765_432_109_876_543_210_i128,
        flag: id % 2 == 1,
        sign: if id.is_multiple_of(2) { 1 } else { -1 },
        tags: vec!["prod".into(), format!("t{id}")],
        attributes: HashMap::from([
            ("gen_ai.request.model".into(), "gpt-4o".into()),
            ("id".into(), id.to_string()),
        ]),
        event_names: vec!["gen_ai.content.prompt".into()],
        event_times: vec![1_764_230_400_000_000_000],
    }
}

#[tokio::test]
async fn clickhouse_crate_round_trips_every_schema_type() {
    let config = support::stack();
    let (db, _) = support::fresh_database(&config).await;
    db.query(EVERYTHING_DDL)
        .execute()
        .await
        .expect("create table");

    let rows: Vec<Everything> = (0..500).map(sample).collect();
    let mut insert = db
        .insert::<Everything>("everything")
        .await
        .expect("insert starts");
    for row in &rows {
        insert.write(row).await.expect("row written");
    }
    insert.end().await.expect("insert committed");

    let back: Vec<Everything> = db
        .query("SELECT ?fields FROM everything ORDER BY id")
        .fetch_all()
        .await
        .expect("select");
    assert_eq!(back, rows);

    // Bound parameters, server-side parameters and aggregates over the same data.
    let count: u64 = db
        .query("SELECT count() FROM everything WHERE kind = ? AND has(tags, ?)")
        .bind("llm")
        .bind("prod")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(count, 250);
    let by_param: u64 = db
        .query("SELECT count() FROM everything WHERE id < {limit:UInt64}")
        .param("limit", 10_u64)
        .fetch_one()
        .await
        .expect("server-side parameter");
    assert_eq!(by_param, 10);
}

#[tokio::test]
async fn clickhouse_crate_reports_server_errors() {
    let config = support::stack();
    let (db, _) = support::fresh_database(&config).await;
    let err = db
        .query("SELECT nope FROM system.one")
        .execute()
        .await
        .expect_err("unknown column fails");
    let text = err.to_string();
    assert!(text.contains("Code: 47"), "{text}");
    assert!(text.contains("UNKNOWN_IDENTIFIER"), "{text}");

    let err = db
        .insert::<Everything>("missing_table")
        .await
        .err()
        .map(|e| e.to_string());
    let text = match err {
        Some(text) => text,
        None => "insert into a missing table was accepted".into(),
    };
    assert!(
        text.contains("Code: 60") || text.contains("UNKNOWN_TABLE"),
        "{text}"
    );
}

#[tokio::test]
async fn concurrent_inserts_and_selects_are_safe() {
    let config = support::stack();
    let (db, _) = support::fresh_database(&config).await;
    db.query(EVERYTHING_DDL)
        .execute()
        .await
        .expect("create table");
    let mut tasks = Vec::new();
    for worker in 0..8_u64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for batch in 0..10_u64 {
                let mut insert = db.insert::<Everything>("everything").await.expect("insert");
                for i in 0..20 {
                    insert
                        .write(&sample(worker * 10_000 + batch * 100 + i))
                        .await
                        .expect("row");
                }
                insert.end().await.expect("commit");
                let seen: u64 = db
                    .query("SELECT count() FROM everything WHERE intDiv(id, 10000) = ?")
                    .bind(worker)
                    .fetch_one()
                    .await
                    .expect("select");
                assert_eq!(
                    seen,
                    (batch + 1) * 20,
                    "worker {worker} reads its own writes"
                );
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker finished");
    }
    let total: u64 = db
        .query("SELECT count() FROM everything")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(total, 8 * 10 * 20);
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn url(config: &spindle::config::Config) -> String {
    config.clickhouse.url.clone()
}

/// Pooled connections keep the database and settings they were left with, and each request
/// still runs with exactly its own: none of them carries over to the next request on the same
/// connection, not even from a `USE` or `SET` statement sent as the query.
#[tokio::test]
async fn each_request_runs_with_only_its_own_database_and_settings() {
    let config = support::stack();
    let base = url(&config);
    // Requests one after the other, so the pool hands back the connection just used.
    let ask = |query: &'static str, params: &'static [(&'static str, &'static str)]| {
        let base = base.clone();
        async move {
            let response = http()
                .post(&base)
                .query(params)
                .body(query)
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200, "{query}");
            response.text().await.expect("body")
        }
    };
    const STATE: &str = "SELECT currentDatabase(), getSetting('max_block_size')";
    let default = ask(STATE, &[]).await;
    assert!(default.starts_with("default\t"), "{default}");
    assert_ne!(default, "default\t1234\n");
    let own = ask(STATE, &[("database", "system"), ("max_block_size", "1234")]).await;
    assert_eq!(own, "system\t1234\n");
    assert_eq!(ask(STATE, &[]).await, default);
    assert_eq!(
        ask(STATE, &[("database", "system"), ("max_block_size", "1234")]).await,
        own
    );
    assert_eq!(
        ask(STATE, &[("max_block_size", "1234")]).await,
        "default\t1234\n"
    );
    assert_eq!(
        ask(STATE, &[("database", "system")]).await,
        default.replacen("default", "system", 1)
    );
    // Statements that change the connection itself.
    ask("SET max_block_size = 1234", &[]).await;
    assert_eq!(ask(STATE, &[]).await, default);
    ask("USE system", &[]).await;
    assert_eq!(ask(STATE, &[]).await, default);
}

#[tokio::test]
async fn http_ping_and_select_formats() {
    let config = support::stack();
    let base = url(&config);
    let ping = http()
        .get(format!("{base}/ping"))
        .send()
        .await
        .expect("ping");
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.expect("body"), "Ok.\n");

    let get = |query: &str, format: Option<&str>| {
        let mut request = http().get(&base).query(&[("query", query)]);
        if let Some(format) = format {
            request = request.query(&[("default_format", format)]);
        }
        request.send()
    };
    let tsv = get("SELECT number, toString(number * 2) FROM numbers(3)", None)
        .await
        .expect("tsv");
    assert_eq!(tsv.status(), 200);
    assert_eq!(tsv.text().await.expect("body"), "0\t0\n1\t2\n2\t4\n");

    let each = get("SELECT number AS n FROM numbers(2)", Some("JSONEachRow"))
        .await
        .expect("json each row")
        .text()
        .await
        .expect("body");
    assert_eq!(each, "{\"n\":0}\n{\"n\":1}\n");

    let json: serde_json::Value = get("SELECT 1 AS one", Some("JSON"))
        .await
        .expect("json")
        .json()
        .await
        .expect("json body");
    assert_eq!(json["data"][0]["one"], 1);
    assert_eq!(json["meta"][0]["type"], "UInt8");

    // A FORMAT clause in the query wins over `default_format`, as in ClickHouse.
    let clause = get("SELECT 7 AS x FORMAT CSVWithNames", Some("JSON"))
        .await
        .expect("format clause")
        .text()
        .await
        .expect("body");
    assert_eq!(clause, "\"x\"\n7\n");

    let binary = get("SELECT toUInt8(5) AS v", Some("RowBinaryWithNamesAndTypes"))
        .await
        .expect("row binary")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&binary[..], b"\x01\x01v\x05UInt8\x05");

    // Query parameters and the POST body as the query.
    let param = http()
        .post(&base)
        .query(&[("param_x", "41")])
        .body("SELECT {x:UInt32} + 1")
        .send()
        .await
        .expect("param")
        .text()
        .await
        .expect("body");
    assert_eq!(param, "42\n");
}

#[tokio::test]
async fn http_inserts_in_every_way_clients_send_them() {
    let config = support::stack();
    let (_, database) = support::fresh_database(&config).await;
    let base = url(&config);
    let post = |query: Option<&str>| {
        let mut request = http().post(&base).query(&[("database", database.as_str())]);
        if let Some(query) = query {
            request = request.query(&[("query", query)]);
        }
        request
    };
    let create = post(None)
        .body("CREATE TABLE t (id UInt32, s String) ENGINE = MergeTree ORDER BY id")
        .send()
        .await
        .expect("create");
    assert_eq!(
        create.status(),
        200,
        "{}",
        create.text().await.unwrap_or_default()
    );

    // 1. Statement in the query parameter, rows in the body.
    let r = post(Some("INSERT INTO t FORMAT JSONEachRow"))
        .body("{\"id\":1,\"s\":\"a\"}\n{\"id\":2,\"s\":\"b\"}\n")
        .send()
        .await
        .expect("insert 1");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // 2. Statement and rows together in the body.
    let r = post(None)
        .body("INSERT INTO t FORMAT JSONEachRow\n{\"id\":3,\"s\":\"c\"}\n")
        .send()
        .await
        .expect("insert 2");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // 3. RowBinary in the body.
    let mut rows = Vec::new();
    rows.extend_from_slice(&4_u32.to_le_bytes());
    rows.push(1);
    rows.push(b'd');
    let r = post(Some("INSERT INTO t (id, s) FORMAT RowBinary"))
        .body(rows)
        .send()
        .await
        .expect("insert 3");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // 4. A gzip-encoded body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"id\":5,\"s\":\"e\"}\n").expect("gzip");
    let r = post(Some("INSERT INTO t FORMAT JSONEachRow"))
        .header("Content-Encoding", "gzip")
        .body(gz.finish().expect("gzip"))
        .send()
        .await
        .expect("insert 4");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // 5. A chunked (streamed) body, split in the middle of a row.
    let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![
        Ok(b"{\"id\":6,\"s\":" as &[u8]),
        Ok(b"\"f\"}\n{\"id\":7,\"s\":\"g\"}\n"),
    ];
    let r = post(Some("INSERT INTO t FORMAT JSONEachRow"))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .expect("insert 5");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // 6. VALUES, plain SQL.
    let r = post(None)
        .body("INSERT INTO t VALUES (8, 'h'), (9, 'semi;colon')")
        .send()
        .await
        .expect("insert 6");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());

    let all = post(None)
        .body("SELECT id, s FROM t ORDER BY id")
        .send()
        .await
        .expect("select")
        .text()
        .await
        .expect("body");
    assert_eq!(
        all,
        "1\ta\n2\tb\n3\tc\n4\td\n5\te\n6\tf\n7\tg\n8\th\n9\tsemi;colon\n"
    );
}

#[tokio::test]
async fn http_errors_look_like_clickhouse() {
    let config = support::stack();
    let base = url(&config);
    let syntax = http()
        .post(&base)
        .body("SELEC 1")
        .send()
        .await
        .expect("sent");
    check_error(syntax, 400, "62").await;
    let table = http()
        .post(&base)
        .body("SELECT * FROM no_such_db.no_such_table")
        .send()
        .await
        .expect("sent");
    check_error(table, 404, "81").await;
    let setting = http()
        .post(&base)
        .query(&[("max_result_rows", "1"), ("result_overflow_mode", "throw")])
        .body("SELECT number FROM numbers(10)")
        .send()
        .await
        .expect("sent");
    let body = check_error(setting, 500, "396").await;
    assert!(body.contains("TOO_MANY_ROWS_OR_BYTES"), "{body}");
    // The setting applied to that request only.
    let after = http()
        .post(&base)
        .body("SELECT count() FROM numbers(10)")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    assert_eq!(after, "10\n");
    let readonly = http()
        .get(&base)
        .query(&[("query", "CREATE DATABASE nope")])
        .send()
        .await
        .expect("sent");
    check_error(readonly, 403, "164").await;
    let compressed = http()
        .post(&base)
        .query(&[("compress", "1")])
        .body("SELECT 1")
        .send()
        .await
        .expect("sent");
    let body = check_error(compressed, 501, "48").await;
    assert!(body.contains("turn compression off"), "{body}");
    let unknown_setting = http()
        .post(&base)
        .query(&[("no_such_setting", "1")])
        .body("SELECT 1")
        .send()
        .await
        .expect("sent");
    check_error(unknown_setting, 400, "115").await;
}

#[tokio::test]
async fn http_authentication_is_checked_every_way() {
    let config = support::stack();
    let base = url(&config);
    let user = config.clickhouse.user.clone();
    let password = config.clickhouse.password.expose().to_owned();

    let good = http()
        .post(&base)
        .basic_auth(&user, Some(&password))
        .body("SELECT 1")
        .send()
        .await
        .expect("sent");
    assert_eq!(good.status(), 200);
    let good = http()
        .post(&base)
        .header("X-ClickHouse-User", &user)
        .header("X-ClickHouse-Key", &password)
        .body("SELECT 1")
        .send()
        .await
        .expect("sent");
    assert_eq!(good.status(), 200);

    let wrong = format!("{password}-wrong");
    for request in [
        http().post(&base).basic_auth(&user, Some(&wrong)),
        http()
            .post(&base)
            .header("X-ClickHouse-User", &user)
            .header("X-ClickHouse-Key", &wrong),
        http()
            .post(&base)
            .query(&[("user", "intruder"), ("password", "")]),
    ] {
        let response = request.body("SELECT 1").send().await.expect("sent");
        assert_eq!(response.status(), 403);
        assert_eq!(
            response
                .headers()
                .get("X-ClickHouse-Exception-Code")
                .and_then(|v| v.to_str().ok()),
            Some("516")
        );
        let body = response.text().await.expect("body");
        assert!(body.contains("Authentication failed"), "{body}");
    }

    // The clickhouse crate with a wrong password is refused too.
    let mut bad = config.clickhouse.clone();
    bad.password = spindle::config::Secret::new(wrong);
    let err = spindle::clients::clickhouse(&bad)
        .query("SELECT 1")
        .execute()
        .await
        .expect_err("wrong password refused");
    assert!(err.to_string().contains("AUTHENTICATION_FAILED"), "{err}");
}

/// Asserts a ClickHouse-style error and returns its text.
async fn check_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    let header = response
        .headers()
        .get("X-ClickHouse-Exception-Code")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    assert_eq!(header.as_deref(), Some(code));
    let body = response.text().await.expect("body");
    assert!(
        body.starts_with(&format!("Code: {code}. DB::Exception:")),
        "{body}"
    );
    body
}

/// A block the engine refuses after parsing (Nested arrays of different lengths) is an error,
/// not a silent 200 with nothing stored.
#[tokio::test]
async fn refused_blocks_are_errors_not_silent_drops() {
    let config = support::stack();
    let (db, database) = support::fresh_database(&config).await;
    db.query(
        "CREATE TABLE n (id UInt8, e Nested(a UInt8, b UInt8)) ENGINE = MergeTree ORDER BY id",
    )
    .execute()
    .await
    .expect("create table");
    let response = http()
        .post(url(&config))
        .query(&[
            ("database", database.as_str()),
            ("query", "INSERT INTO n FORMAT JSONEachRow"),
        ])
        .body("{\"id\":1,\"e.a\":[1,2],\"e.b\":[1]}\n")
        .send()
        .await
        .expect("sent");
    let body = check_error(response, 500, "190").await;
    assert!(body.contains("SIZES_OF_ARRAYS_DONT_MATCH"), "{body}");
    let count: u64 = db
        .query("SELECT count() FROM n")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(count, 0);
    // Settings in the statement still apply (they are moved after FROM INFILE).
    let ok = http()
        .post(url(&config))
        .query(&[
            ("database", database.as_str()),
            (
                "query",
                "INSERT INTO n SETTINGS insert_deduplication_token = 'x' FORMAT JSONEachRow",
            ),
        ])
        .body("{\"id\":2,\"e.a\":[1],\"e.b\":[1]}\n")
        .send()
        .await
        .expect("sent");
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap_or_default());
}
