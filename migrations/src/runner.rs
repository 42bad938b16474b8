//! Applying migrations to a ClickHouse database and reporting their state.

use std::collections::BTreeMap;

use clickhouse::Client;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::split::{SplitError, split_statements};

/// One numbered SQL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number the file name starts with (`0003_usage_hourly.sql` → 3).
    pub version: u32,
    /// The file name, as recorded in `schema_migrations`.
    pub name: String,
    /// The file's text.
    pub sql: String,
}

impl Migration {
    /// Parses the version from a `NNNN_description.sql` file name.
    pub fn new(name: &str, sql: &str) -> Result<Self, MigrateError> {
        let bad = || MigrateError::BadName {
            name: name.to_owned(),
        };
        let (number, rest) = name.split_once('_').ok_or_else(bad)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        if !rest.ends_with(".sql") || rest.len() <= ".sql".len() {
            return Err(bad());
        }
        Ok(Self {
            version: number.parse().map_err(|_| bad())?,
            name: name.to_owned(),
            sql: sql.to_owned(),
        })
    }

    /// SHA-256 of the file's text, hex encoded.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }
}

/// Why migrating stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration file name `{name}` is not of the form `NNNN_description.sql`")]
    BadName { name: String },
    #[error("migrations `{first}` and `{second}` share version {version}")]
    DuplicateVersion {
        version: u32,
        first: String,
        second: String,
    },
    #[error(
        "migration `{name}` was edited after it was applied (recorded checksum {recorded}, file now {actual}); \
         add a new migration instead of editing an applied one"
    )]
    Edited {
        name: String,
        recorded: String,
        actual: String,
    },
    #[error(
        "the database has migration `{name}` (version {version}) that this binary does not know; \
         run a newer `spindle`"
    )]
    UnknownApplied { version: u32, name: String },
    #[error("migration `{name}` cannot be split into statements: {source}")]
    Split { name: String, source: SplitError },
    #[error("migration `{name}` failed at statement {statement} of {total}: {message}")]
    Failed {
        name: String,
        statement: usize,
        total: usize,
        message: String,
    },
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationState {
    Applied,
    Pending,
    /// Applied, but the file changed since.
    Edited,
    /// Recorded in the database, unknown to this binary.
    Unknown,
}

/// One line of `spindle migrate status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub version: u32,
    pub name: String,
    pub state: MigrationState,
    /// When it was applied, as ClickHouse printed it.
    pub applied_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize, clickhouse::Row)]
struct AppliedRow {
    version: u32,
    name: String,
    checksum: String,
    applied_at: String,
}

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations \
    (version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) \
    ENGINE = MergeTree ORDER BY version";

/// Applies every pending migration to `database` (created when missing), in order.
///
/// Returns the names of the migrations it applied; an empty list means the schema was current.
/// `client` must not have a database set: the runner creates the database first.
pub async fn apply(
    client: &Client,
    database: &str,
    migrations: &[Migration],
) -> Result<Vec<String>, MigrateError> {
    check_versions(migrations)?;
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS `{database}`"))
        .execute()
        .await?;
    let db = client.clone().with_database(database);
    db.query(CREATE_LEDGER).execute().await?;
    let applied = applied(&db).await?;
    verify(migrations, &applied)?;

    let mut done = Vec::new();
    for migration in migrations {
        if applied.contains_key(&migration.version) {
            continue;
        }
        let statements =
            split_statements(&migration.sql).map_err(|source| MigrateError::Split {
                name: migration.name.clone(),
                source,
            })?;
        let total = statements.len();
        for (index, statement) in statements.iter().enumerate() {
            tracing::debug!(migration = %migration.name, statement = index + 1, "running");
            db.query(statement)
                .execute()
                .await
                .map_err(|e| MigrateError::Failed {
                    name: migration.name.clone(),
                    statement: index + 1,
                    total,
                    message: clickhouse_message(&e),
                })?;
        }
        db.query("INSERT INTO schema_migrations (version, name, checksum) VALUES (?, ?, ?)")
            .bind(migration.version)
            .bind(migration.name.as_str())
            .bind(migration.checksum())
            .execute()
            .await?;
        tracing::debug!(migration = %migration.name, "applied");
        done.push(migration.name.clone());
    }
    Ok(done)
}

/// Lists every migration, known or recorded, with its state. Does not change anything.
pub async fn status(
    client: &Client,
    database: &str,
    migrations: &[Migration],
) -> Result<Vec<MigrationStatus>, MigrateError> {
    check_versions(migrations)?;
    let exists: u8 = client
        .query("SELECT count() > 0 FROM system.tables WHERE database = ? AND name = 'schema_migrations'")
        .bind(database)
        .fetch_one()
        .await?;
    let applied = if exists == 1 {
        applied(&client.clone().with_database(database)).await?
    } else {
        BTreeMap::new()
    };
    let mut lines: Vec<MigrationStatus> = migrations
        .iter()
        .map(|m| {
            let recorded = applied.get(&m.version);
            MigrationStatus {
                version: m.version,
                name: m.name.clone(),
                state: match recorded {
                    None => MigrationState::Pending,
                    Some(row) if row.checksum == m.checksum() => MigrationState::Applied,
                    Some(_) => MigrationState::Edited,
                },
                applied_at: recorded.map(|r| r.applied_at.clone()),
            }
        })
        .collect();
    for (version, row) in &applied {
        if !migrations.iter().any(|m| m.version == *version) {
            lines.push(MigrationStatus {
                version: *version,
                name: row.name.clone(),
                state: MigrationState::Unknown,
                applied_at: Some(row.applied_at.clone()),
            });
        }
    }
    lines.sort_by_key(|l| l.version);
    Ok(lines)
}

async fn applied(db: &Client) -> Result<BTreeMap<u32, AppliedRow>, MigrateError> {
    let rows: Vec<AppliedRow> = db
        .query(
            "SELECT version, name, checksum, toString(applied_at) AS applied_at \
             FROM schema_migrations ORDER BY version",
        )
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|r| (r.version, r)).collect())
}

fn check_versions(migrations: &[Migration]) -> Result<(), MigrateError> {
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for m in migrations {
        if let Some(first) = seen.insert(m.version, &m.name) {
            return Err(MigrateError::DuplicateVersion {
                version: m.version,
                first: first.to_owned(),
                second: m.name.clone(),
            });
        }
    }
    Ok(())
}

fn verify(
    migrations: &[Migration],
    applied: &BTreeMap<u32, AppliedRow>,
) -> Result<(), MigrateError> {
    for (version, row) in applied {
        match migrations.iter().find(|m| m.version == *version) {
            None => {
                return Err(MigrateError::UnknownApplied {
                    version: *version,
                    name: row.name.clone(),
                });
            }
            Some(m) if m.checksum() != row.checksum => {
                return Err(MigrateError::Edited {
                    name: m.name.clone(),
                    recorded: row.checksum.clone(),
                    actual: m.checksum(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// ClickHouse's own message, without the client's wrapping.
fn clickhouse_message(error: &clickhouse::error::Error) -> String {
    match error {
        clickhouse::error::Error::BadResponse(message) => message.trim().to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_version() {
        let m = Migration::new("0042_add_things.sql", "SELECT 1").expect("valid");
        assert_eq!(m.version, 42);
        for bad in [
            "42.sql",
            "x_things.sql",
            "0001_.sql",
            "0001_things.txt",
            "_a.sql",
        ] {
            assert!(
                matches!(Migration::new(bad, ""), Err(MigrateError::BadName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn checksum_changes_with_the_text() {
        let a = Migration::new("0001_a.sql", "SELECT 1").expect("valid");
        let b = Migration::new("0001_a.sql", "SELECT 2").expect("valid");
        assert_ne!(a.checksum(), b.checksum());
        assert_eq!(a.checksum().len(), 64);
    }

    #[test]
    fn duplicate_versions_are_refused() {
        let list = [
            Migration::new("0001_a.sql", "SELECT 1").expect("valid"),
            Migration::new("0001_b.sql", "SELECT 1").expect("valid"),
        ];
        assert!(matches!(
            check_versions(&list),
            Err(MigrateError::DuplicateVersion { version: 1, .. })
        ));
    }
}
