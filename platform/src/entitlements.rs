//! Ingest entitlements: a per-project rate (token bucket, per gateway instance) and a monthly
//! span quota (a Redis counter shared by all instances).
//!
//! Accepted spans are counted in memory and added to the Redis counter by [`Limits::flush`],
//! which the gateway calls every `usage_flush_ms` and once more when it stops: one `INCRBY`
//! per project and flush instead of a Redis round trip per request. An instance's own
//! unflushed count is part of its quota check, so only other instances' last interval of
//! spans is unseen; a count that fails to reach Redis is kept for the next flush.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use time::OffsetDateTime;

use crate::cache::TtlCache;

/// Projects whose entitlements one gateway keeps cached.
const ENTITLEMENTS_CACHED: usize = 100_000;

/// A project's ingest limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entitlements {
    /// Sustained spans per second; bursts of one second's worth pass at once.
    pub spans_per_second: u64,
    /// Spans per calendar month (UTC); 0 means unlimited.
    pub monthly_span_quota: u64,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error(
        "project `{project_id}` is over its rate of {limit} spans per second; retry in {retry_after_secs} s"
    )]
    RateLimited {
        project_id: String,
        limit: u64,
        retry_after_secs: u64,
    },
    #[error(
        "project `{project_id}` has used its monthly quota of {quota} spans ({used} sent this month); \
         it resets on {resets_on}"
    )]
    QuotaExhausted {
        project_id: String,
        quota: u64,
        used: u64,
        resets_on: String,
        retry_after_secs: u64,
    },
    #[error("cannot check limits right now: {0}")]
    Unavailable(String),
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Admits requests against entitlements and records accepted spans.
#[derive(Clone)]
pub struct Limits {
    redis: ConnectionManager,
    defaults: Entitlements,
    entitlements: TtlCache<Entitlements>,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    /// Accepted spans not yet added to Redis, by project and month (`yyyymm`).
    unflushed: Arc<Mutex<HashMap<(String, u32), u64>>>,
}

impl Limits {
    /// `defaults` apply to projects with no `entitlements_set` event; `ttl` is how long a
    /// project's entitlements are cached.
    pub fn new(redis: ConnectionManager, defaults: Entitlements, ttl: Duration) -> Self {
        Self {
            redis,
            defaults,
            entitlements: TtlCache::new(ttl, ENTITLEMENTS_CACHED),
            buckets: Arc::default(),
            unflushed: Arc::default(),
        }
    }

    /// Checks that `spans` more spans may enter now. Does not record them.
    ///
    /// The rate's tokens are taken here: a caller that then fails to accept the spans gives
    /// them back with [`Limits::refund`].
    pub async fn admit(&self, project_id: &str, spans: u64) -> Result<(), LimitError> {
        let entitlements = self.entitlements(project_id).await?;
        self.take_tokens(project_id, spans, entitlements.spans_per_second)?;
        if let Err(e) = self.check_quota(project_id, spans, entitlements).await {
            self.refund(project_id, spans);
            return Err(e);
        }
        Ok(())
    }

    /// Gives back the rate tokens [`Limits::admit`] took for `spans` that were not accepted
    /// after all (refused over the quota, or answered 503 later), so a client retrying them is
    /// charged once. The bucket's cap applies again at its next refill.
    pub fn refund(&self, project_id: &str, spans: u64) {
        let mut buckets = self.buckets.lock().expect("bucket lock is never poisoned");
        if let Some(bucket) = buckets.get_mut(project_id) {
            give_back(bucket, spans);
        }
    }

    /// Checks `spans` more against the project's monthly quota, if it has one.
    async fn check_quota(
        &self,
        project_id: &str,
        spans: u64,
        entitlements: Entitlements,
    ) -> Result<(), LimitError> {
        if entitlements.monthly_span_quota > 0 {
            let now = OffsetDateTime::now_utc();
            let used: Option<u64> = self
                .redis
                .clone()
                .get(crate::keys::monthly_usage(project_id, yyyymm(now)))
                .await
                .map_err(|e| LimitError::Unavailable(e.to_string()))?;
            let used = used
                .unwrap_or(0)
                .saturating_add(self.unflushed_for(project_id, yyyymm(now)));
            if used.saturating_add(spans) > entitlements.monthly_span_quota {
                let (resets_on, retry_after_secs) = next_month(now);
                return Err(LimitError::QuotaExhausted {
                    project_id: project_id.to_owned(),
                    quota: entitlements.monthly_span_quota,
                    used,
                    resets_on,
                    retry_after_secs,
                });
            }
        }
        Ok(())
    }

    /// Counts accepted spans towards the project's monthly usage; [`Limits::flush`] adds them
    /// to the Redis counter.
    pub fn record(&self, project_id: &str, spans: u64) {
        if spans == 0 {
            return;
        }
        let month = yyyymm(OffsetDateTime::now_utc());
        let mut unflushed = self.unflushed.lock().expect("usage lock is never poisoned");
        *unflushed.entry((project_id.to_owned(), month)).or_default() += spans;
    }

    /// Adds the counted spans to the Redis counters, one pipeline for every project; on an
    /// error the counts stay for the next flush.
    pub async fn flush(&self) -> Result<(), LimitError> {
        let counts =
            std::mem::take(&mut *self.unflushed.lock().expect("usage lock is never poisoned"));
        if counts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for ((project_id, month), spans) in &counts {
            let key = crate::keys::monthly_usage(project_id, *month);
            pipe.incr(&key, *spans).ignore();
            pipe.expire(&key, 40 * 24 * 3600).ignore();
        }
        let mut redis = self.redis.clone();
        if let Err(e) = pipe.query_async::<()>(&mut redis).await {
            // Whether Redis applied the increments is unknown; they are assumed lost, so a
            // count may be added twice after a dropped reply, never lost.
            let mut unflushed = self.unflushed.lock().expect("usage lock is never poisoned");
            for (key, spans) in counts {
                *unflushed.entry(key).or_default() += spans;
            }
            return Err(LimitError::Unavailable(e.to_string()));
        }
        Ok(())
    }

    fn unflushed_for(&self, project_id: &str, month: u32) -> u64 {
        let unflushed = self.unflushed.lock().expect("usage lock is never poisoned");
        unflushed
            .get(&(project_id.to_owned(), month))
            .copied()
            .unwrap_or(0)
    }

    async fn entitlements(&self, project_id: &str) -> Result<Entitlements, LimitError> {
        if let Some(e) = self.entitlements.get(project_id) {
            return Ok(e);
        }
        let fields: HashMap<String, u64> = self
            .redis
            .clone()
            .hgetall(crate::keys::entitlements(project_id))
            .await
            .map_err(|e| LimitError::Unavailable(e.to_string()))?;
        let e = Entitlements {
            spans_per_second: fields
                .get("spans_per_second")
                .copied()
                .unwrap_or(self.defaults.spans_per_second),
            monthly_span_quota: fields
                .get("monthly_span_quota")
                .copied()
                .unwrap_or(self.defaults.monthly_span_quota),
        };
        self.entitlements.insert(project_id, e);
        Ok(e)
    }

    fn take_tokens(&self, project_id: &str, spans: u64, rate: u64) -> Result<(), LimitError> {
        if rate == 0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("bucket lock is never poisoned");
        let bucket = buckets.entry(project_id.to_owned()).or_insert(Bucket {
            tokens: rate as f64,
            at: Instant::now(),
        });
        let verdict = take(bucket, spans, rate, Instant::now());
        verdict.map_err(|retry_after_secs| LimitError::RateLimited {
            project_id: project_id.to_owned(),
            limit: rate,
            retry_after_secs,
        })
    }
}

/// Refills the bucket and takes `spans` when it holds any tokens (debt is allowed, so a batch
/// larger than one second's worth still passes, then waits out its debt).
fn take(bucket: &mut Bucket, spans: u64, rate: u64, now: Instant) -> Result<(), u64> {
    let rate = rate as f64;
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
    bucket.at = now;
    if bucket.tokens <= 0.0 {
        return Err(((-bucket.tokens) / rate).ceil().max(1.0) as u64);
    }
    bucket.tokens -= spans as f64;
    Ok(())
}

/// Returns `spans` tokens to the bucket; [`take`]'s next refill caps it at the rate again.
fn give_back(bucket: &mut Bucket, spans: u64) {
    bucket.tokens += spans as f64;
}

/// The month `now` falls in as `yyyymm` (UTC), as usage counters are keyed
/// ([`crate::keys::monthly_usage`]).
pub fn yyyymm(now: OffsetDateTime) -> u32 {
    now.year().unsigned_abs() * 100 + u32::from(u8::from(now.month()))
}

/// The first day of the next month (`yyyy-mm-01`) and the seconds until then.
fn next_month(now: OffsetDateTime) -> (String, u64) {
    let (year, month) = match now.month() {
        time::Month::December => (now.year() + 1, time::Month::January),
        m => (now.year(), m.next()),
    };
    let start = time::Date::from_calendar_date(year, month, 1)
        .map(|d| d.midnight().assume_utc())
        .unwrap_or(now);
    let secs = (start - now).whole_seconds().max(1).unsigned_abs();
    (format!("{year:04}-{:02}-01", u8::from(month)), secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_a_burst_then_asks_to_wait() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 100.0,
            at: start,
        };
        assert_eq!(take(&mut bucket, 60, 100, start), Ok(()));
        assert_eq!(take(&mut bucket, 60, 100, start), Ok(()), "debt is allowed");
        assert_eq!(take(&mut bucket, 1, 100, start), Err(1));
        // Half a second later the debt of 20 is repaid and 30 tokens are back.
        let later = start + Duration::from_millis(500);
        assert_eq!(take(&mut bucket, 300, 100, later), Ok(()));
        assert_eq!(take(&mut bucket, 1, 100, later), Err(3));
    }

    #[test]
    fn a_refund_restores_what_was_taken() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 10.0,
            at: start,
        };
        assert_eq!(take(&mut bucket, 100, 10, start), Ok(()));
        assert_eq!(
            take(&mut bucket, 1, 10, start),
            Err(9),
            "a debt of 90 spans"
        );
        give_back(&mut bucket, 100);
        assert_eq!(
            take(&mut bucket, 10, 10, start),
            Ok(()),
            "the full burst is back"
        );
        // The cap holds at the next refill, however much was given back.
        give_back(&mut bucket, 1000);
        assert_eq!(
            take(&mut bucket, 0, 10, start + Duration::from_secs(1)),
            Ok(())
        );
        assert!(bucket.tokens <= 10.0, "{}", bucket.tokens);
    }

    #[test]
    fn months_roll_over() {
        let dec = time::macros::datetime!(2026-12-31 23:00 UTC);
        assert_eq!(yyyymm(dec), 202_612);
        assert_eq!(next_month(dec), ("2027-01-01".to_owned(), 3600));
        let nov = time::macros::datetime!(2026-11-27 00:00 UTC);
        assert_eq!(next_month(nov).0, "2026-12-01");
    }
}
