//! ClickHouse schema migrations: numbered SQL files compiled into the binary, and their runner.
//!
//! The runner records every applied file in `schema_migrations` with a SHA-256 checksum.
//! Applying twice is a no-op; a file edited after it was applied is refused; a failing
//! statement stops the run with the file name and ClickHouse's own message. ClickHouse has no
//! transactional DDL, so every statement is written to be re-runnable (`IF NOT EXISTS`): a run
//! that stopped half-way is finished by the next run once the cause is fixed.
//!
//! This crate does not create Kafka topics or touch any other store.

mod runner;
mod split;

pub use runner::{MigrateError, Migration, MigrationState, MigrationStatus, apply, status};
pub use split::{SplitError, split_statements};

/// The migration files, in order. A test checks this list against the `sql/` folder.
const FILES: &[(&str, &str)] = &[
    ("0001_spans.sql", include_str!("../sql/0001_spans.sql")),
    ("0002_traces.sql", include_str!("../sql/0002_traces.sql")),
    (
        "0003_usage_hourly.sql",
        include_str!("../sql/0003_usage_hourly.sql"),
    ),
    (
        "0004_audit_log.sql",
        include_str!("../sql/0004_audit_log.sql"),
    ),
    (
        "0005_summary_dedup_window.sql",
        include_str!("../sql/0005_summary_dedup_window.sql"),
    ),
    (
        "0006_trace_lifecycle.sql",
        include_str!("../sql/0006_trace_lifecycle.sql"),
    ),
    (
        "0007_trace_hours.sql",
        include_str!("../sql/0007_trace_hours.sql"),
    ),
];

/// Spindle's migrations, parsed from the embedded files.
pub fn embedded() -> Vec<Migration> {
    FILES
        .iter()
        .map(|(name, sql)| {
            Migration::new(name, sql).expect("embedded migration names are checked by a test")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_matches_the_sql_folder() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("sql folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        on_disk.sort();
        let listed: Vec<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
        assert_eq!(
            listed, on_disk,
            "add new files in `sql/` to FILES, in order"
        );
    }

    #[test]
    fn embedded_versions_are_strictly_increasing_and_split_cleanly() {
        let migrations = embedded();
        for pair in migrations.windows(2) {
            assert!(pair[0].version < pair[1].version, "{:?}", pair[1].name);
        }
        for m in &migrations {
            let statements = split_statements(&m.sql).expect("splits");
            assert!(!statements.is_empty(), "{} has no statement", m.name);
        }
    }
}
