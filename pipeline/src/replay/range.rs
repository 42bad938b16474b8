//! The archive hours a replay walks, and their S3 prefixes (pure).

use time::OffsetDateTime;

use super::ReplayError;

/// Where the gateway's archive starts (`gateway/archive.rs` writes below it).
pub(super) const ARCHIVE_ROOT: &str = "raw/";

/// `raw/<project>/<yyyy>/<mm>/<dd>/<hh>/`: the layout of `gateway/archive.rs`, in UTC.
pub(super) fn hour_prefix(project: &str, hour: OffsetDateTime) -> String {
    let hour = hour.to_offset(time::UtcOffset::UTC);
    format!(
        "{ARCHIVE_ROOT}{project}/{:04}/{:02}/{:02}/{:02}/",
        hour.year(),
        u8::from(hour.month()),
        hour.day(),
        hour.hour()
    )
}

/// The project of an archive key or folder: `raw/<project>/…` → `<project>`.
pub(super) fn project_of(key: &str) -> Option<&str> {
    let (project, _) = key.strip_prefix(ARCHIVE_ROOT)?.split_once('/')?;
    (!project.is_empty()).then_some(project)
}

/// A project id that names exactly one folder of the archive.
pub(super) fn check_project(project: &str) -> Result<(), ReplayError> {
    if project.is_empty() || project.contains('/') {
        return Err(ReplayError::InvalidRange {
            reason: format!("project `{project}` is empty or contains `/`"),
        });
    }
    Ok(())
}

/// The UTC hours from the one holding `since` to the one holding `until`, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hours {
    first: OffsetDateTime,
    pub(super) count: u64,
}

impl Hours {
    pub(super) fn new(since: OffsetDateTime, until: OffsetDateTime) -> Result<Self, ReplayError> {
        if since > until {
            return Err(ReplayError::InvalidRange {
                reason: format!("`since` ({since}) is after `until` ({until})"),
            });
        }
        let first = start_of_hour(since);
        let last = start_of_hour(until);
        let count = u64::try_from((last - first).whole_hours()).expect("last >= first") + 1;
        Ok(Self { first, count })
    }

    pub(super) fn iter(self) -> impl Iterator<Item = OffsetDateTime> {
        (0..self.count).map(move |i| {
            self.first + time::Duration::hours(i64::try_from(i).expect("hours fit in i64"))
        })
    }
}

fn start_of_hour(at: OffsetDateTime) -> OffsetDateTime {
    let seconds = at.unix_timestamp().div_euclid(3600) * 3600;
    OffsetDateTime::from_unix_timestamp(seconds).expect("an earlier time is still in range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ranges_cover_whole_utc_hours() {
        let hours = Hours::new(
            datetime!(2025-12-31 22:59:59 UTC),
            datetime!(2026-01-01 02:00 +02:00),
        )
        .expect("valid");
        let prefixes: Vec<String> = hours.iter().map(|h| hour_prefix("p", h)).collect();
        assert_eq!(
            prefixes,
            [
                "raw/p/2025/12/31/22/",
                "raw/p/2025/12/31/23/",
                "raw/p/2026/01/01/00/"
            ]
        );
        let one = Hours::new(
            datetime!(2026-03-01 10:15 UTC),
            datetime!(2026-03-01 10:15 UTC),
        );
        assert_eq!(one.expect("valid").count, 1);
        let err = Hours::new(
            datetime!(2026-03-01 11:00 UTC),
            datetime!(2026-03-01 10:00 UTC),
        )
        .expect_err("backwards");
        assert!(matches!(err, ReplayError::InvalidRange { .. }), "{err}");
        assert!(check_project("a/b").is_err());
        assert!(check_project("").is_err());
        assert!(check_project("p-1").is_ok());
        assert_eq!(project_of("raw/p-1/"), Some("p-1"));
        assert_eq!(project_of("raw/p-1/2026/03/01/10/x.pb"), Some("p-1"));
        assert_eq!(project_of("raw/p-1"), None);
        assert_eq!(project_of("raw//x"), None);
        assert_eq!(project_of("other/p-1/x"), None);
    }
}
