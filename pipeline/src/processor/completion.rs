//! Trace completion: which traces look finished.
//!
//! A trace is complete when its root span has been seen and no span arrived for `quiet`, or
//! when it has been open for `max_age` whatever its root. The open-trace table lives in Redis,
//! one hash per `spans.raw` partition (`spindle:open_traces:<partition>`, field = record key),
//! so it survives processor restarts and moves with partitions on rebalance; span ids go to a
//! set per trace, so a redelivered batch never inflates the count. This module is the pure
//! part: the entry, its merge and its due test.

use std::time::Duration;

/// One open trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenTrace {
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub root_seen: bool,
    pub spans: u64,
}

impl OpenTrace {
    /// A trace first seen now with these spans.
    pub fn new(now_ns: u64, spans: u64, root_seen: bool) -> Self {
        Self {
            first_seen_ns: now_ns,
            last_seen_ns: now_ns,
            root_seen,
            spans,
        }
    }

    /// The entry after more spans of the trace arrived.
    pub fn merge(self, now_ns: u64, spans: u64, root_seen: bool) -> Self {
        Self {
            first_seen_ns: self.first_seen_ns.min(now_ns),
            last_seen_ns: self.last_seen_ns.max(now_ns),
            root_seen: self.root_seen || root_seen,
            spans: self.spans + spans,
        }
    }

    /// Whether the trace counts as complete at `now_ns`.
    pub fn is_due(&self, now_ns: u64, quiet: Duration, max_age: Duration) -> bool {
        let quiet_for = now_ns.saturating_sub(self.last_seen_ns);
        let open_for = now_ns.saturating_sub(self.first_seen_ns);
        (self.root_seen && u128::from(quiet_for) >= quiet.as_nanos())
            || u128::from(open_for) >= max_age.as_nanos()
    }

    /// The Redis field value: `first,last,root,spans`.
    pub fn encode(&self) -> String {
        format!(
            "{},{},{},{}",
            self.first_seen_ns,
            self.last_seen_ns,
            u8::from(self.root_seen),
            self.spans
        )
    }

    /// Parses [`encode`](Self::encode)'s output; `None` for anything else.
    pub fn decode(value: &str) -> Option<Self> {
        let mut parts = value.split(',');
        let first_seen_ns = parts.next()?.parse().ok()?;
        let last_seen_ns = parts.next()?.parse().ok()?;
        let root_seen = match parts.next()? {
            "1" => true,
            "0" => false,
            _ => return None,
        };
        let spans = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(Self {
            first_seen_ns,
            last_seen_ns,
            root_seen,
            spans,
        })
    }
}

/// The Redis set of a trace's span ids (hex), so redelivered spans are counted once.
pub fn spans_key(record_key: &str) -> String {
    format!("spindle:open_trace_spans:{record_key}")
}

/// The Redis hash of open traces of one `spans.raw` partition.
pub fn redis_key(partition: i32) -> String {
    format!("spindle:open_traces:{partition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_trace_completes_after_its_root_and_a_quiet_period() {
        let quiet = Duration::from_secs(5);
        let max_age = Duration::from_secs(600);
        let t = OpenTrace::new(100 * S, 3, false);
        assert!(!t.is_due(200 * S, quiet, max_age), "no root yet, young");
        let t = t.merge(102 * S, 1, true);
        assert_eq!(t.spans, 4);
        assert!(!t.is_due(106 * S, quiet, max_age), "quiet for 4 s only");
        assert!(
            t.is_due(107 * S, quiet, max_age),
            "root seen, quiet for 5 s"
        );
        let late = t.merge(107 * S, 1, false);
        assert!(
            !late.is_due(108 * S, quiet, max_age),
            "a late span reopens the quiet period"
        );
    }

    #[test]
    fn a_trace_without_root_completes_at_max_age() {
        let t = OpenTrace::new(0, 1, false);
        assert!(!t.is_due(599 * S, Duration::from_secs(5), Duration::from_secs(600)));
        assert!(t.is_due(600 * S, Duration::from_secs(5), Duration::from_secs(600)));
    }

    #[test]
    fn entries_round_trip_through_redis_values() {
        let t = OpenTrace::new(5, 2, true).merge(9, 1, false);
        assert_eq!(OpenTrace::decode(&t.encode()), Some(t));
        for bad in ["", "1,2,3", "1,2,x,4", "1,2,1,4,5", "a,2,1,4"] {
            assert_eq!(OpenTrace::decode(bad), None, "{bad}");
        }
    }
}
