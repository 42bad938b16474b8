//! The ClickHouse side of the sink: [`write`] looks up the stored rows of a batch's spans,
//! applies the sign protocol ([`super::plan`]) and inserts the result as one `INSERT` carrying
//! the caller's insert deduplication token.
//!
//! Two guards, one per way a span can come back:
//! - a redelivered batch (the sink crashed after the insert, before committing offsets) comes
//!   with the same token, so ClickHouse drops a retried insert whole — even one that raced the
//!   first attempt — and the lookup finds its spans stored anyway;
//! - a replay (the same spans re-processed, through other offsets) is caught by the lookup:
//!   identical spans are skipped, changed ones are cancelled (`-1`) and rewritten (`+1`).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clickhouse::Client;
use clickhouse::error::Error as ClickHouseError;
use clickhouse::sql::Identifier;
use serde::Deserialize;
use spindle_schemas::canonical::EnrichedSpan;

use super::plan::{self, RejectedSpan};
use super::row::{SpanKey, SpanRow};

/// The sink's storage settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// The database holding `spans` (created by the migrations).
    pub database: String,
    /// `retention_days` written in each row (until retention comes from the project's plan).
    pub retention_days_default: u16,
    /// Span keys per lookup query. A key adds about 110 bytes to the query text (its tuple and
    /// its trace id), which ClickHouse caps with `max_query_size` (256 KiB by default): 1000
    /// keys stay well under it.
    pub lookup_keys_per_query: usize,
    /// How long each lookup query and the insert may take before the write counts as failed
    /// (retryable: the insert may still land, and its token makes the retry harmless).
    pub request_timeout_ms: u64,
}

/// What one [`write`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Spans stored for the first time (`+1`).
    pub new: usize,
    /// Spans stored with other content, now cancelled (`-1`) and rewritten (`+1`).
    pub replaced: usize,
    /// Spans already stored with the same content: nothing written.
    pub unchanged: usize,
    /// Earlier copies of spans that appear again later in the batch (the last copy counts).
    pub duplicates: usize,
    /// Spans already past their retention, not written ([`plan::expired`]).
    pub expired: usize,
    /// Spans that can never be stored, for the dead-letter queue; the rest were written.
    pub rejected: Vec<RejectedSpan>,
    /// Rows in the insert (`new + 2 × replaced`); 0 when nothing was sent.
    pub rows_written: usize,
}

/// Why a write failed. Nothing of the batch is known to be stored; retry the whole batch with
/// the same deduplication token when [`StoreError::is_retryable`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The server could not be reached or the connection broke.
    #[error("clickhouse is unavailable: {source}")]
    Unavailable {
        #[source]
        source: ClickHouseError,
    },
    #[error("clickhouse did not answer within {timeout_ms} ms")]
    TimedOut { timeout_ms: u64 },
    /// A server-side failure that may pass (memory, too many parts, a restarting replica, …).
    #[error("clickhouse failed{}: {message}", code_suffix(*code))]
    Server { code: Option<u32>, message: String },
    /// The deployment is wrong, not the data: a missing database, table or column, a row type
    /// that no longer matches `spans`, refused credentials. Retry after fixing it; never DLQ.
    #[error("clickhouse refused the sink's setup for `{database}`{}: {message}", code_suffix(*code))]
    Setup {
        database: String,
        code: Option<u32>,
        message: String,
    },
    /// ClickHouse refused the batch's values: retrying the same rows fails the same way. The
    /// caller splits the batch to find the record to send to the dead-letter queue.
    #[error("clickhouse rejected the batch's data (code {code}): {message}")]
    Rejected { code: u32, message: String },
}

impl StoreError {
    /// Whether the same batch may succeed later.
    pub fn is_retryable(&self) -> bool {
        !self.is_permanent()
    }

    /// Whether the batch's data itself is refused: some record belongs in the dead-letter queue.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::Rejected { .. })
    }
}

/// Writes a batch of canonical spans under the sign protocol, as one `INSERT` carrying
/// `insert_deduplication_token = dedup_token` (empty: ClickHouse's own block hash). The token
/// must name the batch's source (topic, partition, offset range) and never be reused for other
/// records: ClickHouse drops any later insert into `spans` with a token it has seen.
pub async fn write(
    client: &Client,
    spans: &[EnrichedSpan],
    settings: &StoreSettings,
    dedup_token: &str,
) -> Result<WriteOutcome, StoreError> {
    let prepared = plan::prepare(spans, settings.retention_days_default, now_ms());
    let keys: Vec<SpanKey> = prepared.rows.iter().map(SpanRow::key).collect();
    let stored = lookup(client, settings, &keys).await?;
    let decision = plan::decide(prepared.rows, &stored);
    if !decision.rows.is_empty() {
        insert(client, &decision.rows, settings, dedup_token).await?;
    }
    Ok(WriteOutcome {
        new: decision.new,
        replaced: decision.replaced,
        unchanged: decision.unchanged,
        duplicates: prepared.duplicates,
        expired: prepared.expired,
        rejected: prepared.rejected,
        rows_written: decision.rows.len(),
    })
}

/// The live stored row of each of `keys` that has one (read from `spans FINAL`).
///
/// First only the keys are read, without `FINAL`, so a batch of new spans (the common case)
/// costs one light query per chunk; full rows are read only for spans already stored.
pub async fn lookup(
    client: &Client,
    settings: &StoreSettings,
    keys: &[SpanKey],
) -> Result<HashMap<SpanKey, SpanRow>, StoreError> {
    let mut stored = Vec::new();
    for chunk in keys.chunks(settings.lookup_keys_per_query.max(1)) {
        let present: Vec<(String, String, String)> = bounded(
            settings,
            key_query(
                client,
                settings,
                "SELECT DISTINCT project_id, trace_id, span_id FROM ?.spans",
                chunk,
            )
            .fetch_all(),
        )
        .await?;
        if present.is_empty() {
            continue;
        }
        let present: Vec<SpanKey> = present
            .into_iter()
            .map(|(project_id, trace_id, span_id)| SpanKey {
                project_id,
                trace_id,
                span_id,
            })
            .collect();
        let rows: Vec<SpanRow> = bounded(
            settings,
            key_query(
                client,
                settings,
                "SELECT ?fields FROM ?.spans FINAL",
                &present,
            )
            .fetch_all(),
        )
        .await?;
        stored.extend(rows);
    }
    Ok(plan::live_rows(stored))
}

/// Inserts rows into `spans` as one `INSERT` with the deduplication token (skipped when empty).
/// [`write`] is the way to store spans; this is the raw step, for rows already decided.
pub async fn insert(
    client: &Client,
    rows: &[SpanRow],
    settings: &StoreSettings,
    dedup_token: &str,
) -> Result<(), StoreError> {
    let table = format!("{}.spans", quote_identifier(&settings.database));
    bounded(settings, async {
        let mut insert = client
            .insert_unescaped::<SpanRow>(&table)
            .await?
            // A server profile with `async_insert = 1` would acknowledge before the rows are
            // written and deduplicate differently; the protocol needs them visible on return.
            .with_option("async_insert", "0")
            // Valid spans never fail a batch by how many months they cover (ClickHouse refuses
            // more than `max_partitions_per_insert_block` partitions per insert by default).
            .with_option("throw_on_max_partitions_per_insert_block", "0");
        if !dedup_token.is_empty() {
            // A retried block is dropped by `spans` and, through the views, by `traces` and
            // `usage_hourly` (migration 0005 gives them a deduplication window). With views
            // deduplication off, ClickHouse 26 still feeds a dropped block to the views.
            insert = insert
                .with_option("insert_deduplication_token", dedup_token)
                .with_option("deduplicate_blocks_in_dependent_materialized_views", "1");
        }
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    })
    .await
}

/// A query over `spans` narrowed to exact span keys: `project_id` and `trace_id` first, so the
/// primary key and the `trace_id` bloom filter skip the rest of the table.
fn key_query(
    client: &Client,
    settings: &StoreSettings,
    select: &str,
    keys: &[SpanKey],
) -> clickhouse::query::Query {
    let mut projects: Vec<&str> = keys.iter().map(|k| k.project_id.as_str()).collect();
    projects.sort_unstable();
    projects.dedup();
    let mut traces: Vec<&str> = keys.iter().map(|k| k.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    let tuples: Vec<(&str, &str, &str)> = keys
        .iter()
        .map(|k| {
            (
                k.project_id.as_str(),
                k.trace_id.as_str(),
                k.span_id.as_str(),
            )
        })
        .collect();
    client
        .query(&format!(
            "{select} WHERE project_id IN ? AND trace_id IN ? \
             AND (project_id, trace_id, span_id) IN ?"
        ))
        .bind(Identifier(&settings.database))
        .bind(projects)
        .bind(traces)
        .bind(tuples)
}

/// Runs one ClickHouse call under the request timeout, classifying its error.
async fn bounded<T>(
    settings: &StoreSettings,
    call: impl Future<Output = Result<T, ClickHouseError>>,
) -> Result<T, StoreError> {
    let timeout_ms = settings.request_timeout_ms;
    match tokio::time::timeout(Duration::from_millis(timeout_ms), call).await {
        Ok(result) => result.map_err(|e| classify(e, &settings.database)),
        Err(_) => Err(StoreError::TimedOut { timeout_ms }),
    }
}

/// ClickHouse codes meaning the values sent cannot be stored (src/Common/ErrorCodes.cpp).
const REJECTED_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    190, // SIZES_OF_ARRAYS_DONT_MATCH
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    407, // DECIMAL_OVERFLOW
];

/// ClickHouse codes meaning the deployment does not fit the sink.
const SETUP_CODES: &[u32] = &[
    10,  // NOT_FOUND_COLUMN_IN_BLOCK
    16,  // NO_SUCH_COLUMN_IN_TABLE
    47,  // UNKNOWN_IDENTIFIER
    60,  // UNKNOWN_TABLE
    62,  // SYNTAX_ERROR
    81,  // UNKNOWN_DATABASE
    115, // UNKNOWN_SETTING
    164, // READONLY
    192, // UNKNOWN_USER
    193, // WRONG_PASSWORD
    194, // REQUIRED_PASSWORD
    497, // ACCESS_DENIED
    516, // AUTHENTICATION_FAILED
];

/// Sorts a `clickhouse` crate error into retryable, setup and permanent.
pub fn classify(error: ClickHouseError, database: &str) -> StoreError {
    let setup = |code, message| StoreError::Setup {
        database: database.to_owned(),
        code,
        message,
    };
    match error {
        ClickHouseError::BadResponse(message) => match exception_code(&message) {
            Some(code) if REJECTED_CODES.contains(&code) => StoreError::Rejected { code, message },
            Some(code) if SETUP_CODES.contains(&code) => setup(Some(code), message),
            code => StoreError::Server { code, message },
        },
        e @ (ClickHouseError::SchemaMismatch(_)
        | ClickHouseError::NotEnoughData
        | ClickHouseError::InvalidColumnsHeader(_)
        | ClickHouseError::InvalidParams(_)
        | ClickHouseError::Unsupported(_)
        | ClickHouseError::Custom(_)
        | ClickHouseError::DeserializeAnyNotSupported
        | ClickHouseError::SequenceMustHaveLength
        | ClickHouseError::InvalidTagEncoding(_)
        | ClickHouseError::InvalidUtf8Encoding(_)) => setup(None, e.to_string()),
        source => StoreError::Unavailable { source },
    }
}

/// The `N` of `Code: N. DB::Exception: …`.
fn exception_code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + "Code: ".len()..];
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

fn code_suffix(code: Option<u32>) -> String {
    code.map_or_else(String::new, |code| format!(" (code {code})"))
}

/// A backquoted identifier, as ClickHouse escapes them.
fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_response(text: &str) -> StoreError {
        classify(ClickHouseError::BadResponse(text.to_owned()), "spindle")
    }

    #[test]
    fn values_clickhouse_refuses_are_permanent() {
        let err = bad_response(
            "Code: 190. DB::Exception: Elements 'events.time' and 'events.name' of Nested data \
             structure 'events' (Array columns) have different array sizes. \
             (SIZES_OF_ARRAYS_DONT_MATCH) (version 25.8.1.1)",
        );
        assert!(
            matches!(err, StoreError::Rejected { code: 190, .. }),
            "{err:?}"
        );
        assert!(err.is_permanent() && !err.is_retryable());
    }

    #[test]
    fn outages_and_server_trouble_are_retryable() {
        for text in [
            "Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)",
            "Code: 252. DB::Exception: Too many parts (3000). (TOO_MANY_PARTS)",
            "Code: 159. DB::Exception: Timeout exceeded. (TIMEOUT_EXCEEDED)",
            "502 Bad Gateway",
        ] {
            let err = bad_response(text);
            assert!(matches!(err, StoreError::Server { .. }), "{err:?}");
            assert!(err.is_retryable(), "{text}");
        }
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = classify(ClickHouseError::Network(Box::new(io)), "spindle");
        assert!(matches!(err, StoreError::Unavailable { .. }) && err.is_retryable());
        let err = classify(ClickHouseError::TimedOut, "spindle");
        assert!(matches!(err, StoreError::Unavailable { .. }) && err.is_retryable());
        assert!(StoreError::TimedOut { timeout_ms: 1 }.is_retryable());
    }

    #[test]
    fn a_deployment_that_does_not_fit_is_setup_not_data() {
        let err = bad_response(
            "Code: 60. DB::Exception: Table spindle.spans does not exist. (UNKNOWN_TABLE)",
        );
        assert!(matches!(err, StoreError::Setup { code: Some(60), .. }));
        assert!(err.is_retryable(), "never sent to the dead-letter queue");
        assert_eq!(
            err.to_string(),
            "clickhouse refused the sink's setup for `spindle` (code 60): Code: 60. \
             DB::Exception: Table spindle.spans does not exist. (UNKNOWN_TABLE)"
        );
        let err = classify(ClickHouseError::SchemaMismatch("x".into()), "spindle");
        assert!(matches!(err, StoreError::Setup { code: None, .. }));
    }

    #[test]
    fn reads_the_exception_code() {
        assert_eq!(exception_code("Code: 62. DB::Exception: x"), Some(62));
        assert_eq!(exception_code("bad gateway"), None);
        assert_eq!(quote_identifier("a`b\\c"), "`a\\`b\\\\c`");
    }

    #[test]
    fn settings_refuse_unknown_keys() {
        let json = r#"{"database":"d","retention_days_default":30,"lookup_keys_per_query":1000,
                       "request_timeout_ms":5000,"extra":1}"#;
        let err = serde_json::from_str::<StoreSettings>(json).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }
}
