//! The sign protocol as pure functions: which rows one batch adds to `spans`, given the rows
//! stored for its spans. [`store::write`](super::store::write) wraps them with the lookup and
//! the insert.
//!
//! For each span (the last copy when a batch holds several):
//! - not stored yet → the new row, `version = 1`, `sign = +1`;
//! - stored with the same content ([`SpanRow::same_content`]) → nothing;
//! - stored with other content → the stored row again with `sign = -1`, then the new row with
//!   `sign = +1` and `version` one above the stored one.
//!
//! So `spans FINAL`, `traces` and `usage_hourly` hold each span once, whatever is redelivered
//! or replayed, as long as one writer at a time handles a given span (the sink consumer that
//! owns its `spans.enriched` partition; keys are `<project_id>/<trace_id>`).
//!
//! A span already past its retention (`start_time + retention_days`, within
//! [`EXPIRY_MARGIN_SECS`]) is not written at all: ClickHouse applies `spans`' TTL on insert and
//! drops the row, but the materialized views still see it, so `usage_hourly` (which has no
//! TTL) would count it again at every replay while the lookup never finds it stored.

use std::collections::HashMap;

use spindle_schemas::canonical::EnrichedSpan;

use super::row::{RowError, SpanKey, SpanRow};

/// A batch turned into rows, one per distinct span, before the stored rows are known.
#[derive(Debug, Default)]
pub struct Prepared {
    /// One row per span key (its last copy in the batch), in batch order, with `version = 0`
    /// and `sign = +1` until [`decide`] sets them.
    pub rows: Vec<SpanRow>,
    /// Earlier copies of spans that appear again later in the batch.
    pub duplicates: usize,
    /// Spans past their retention: not written (see the module documentation).
    pub expired: usize,
    /// Spans that can never become a row.
    pub rejected: Vec<RejectedSpan>,
}

/// A span of the batch that cannot be stored, for the dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSpan {
    /// Its position in the batch given to `write`.
    pub index: usize,
    pub key: SpanKey,
    pub error: RowError,
}

/// How close to its expiry a span may be and still be written: more than the time from
/// planning to the insert, plus clock skew between the sink and ClickHouse.
pub const EXPIRY_MARGIN_SECS: i64 = 3600;

/// The rows to insert and what they do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// `-1` rows and `+1` rows, each `-1` right before the row that replaces it.
    pub rows: Vec<SpanRow>,
    /// Spans stored for the first time.
    pub new: usize,
    /// Spans whose stored row is cancelled and written again with new content.
    pub replaced: usize,
    /// Spans already stored with the same content.
    pub unchanged: usize,
}

/// Converts a batch, keeping the last copy of each span and leaving out expired ones.
pub fn prepare(spans: &[EnrichedSpan], retention_days: u16, ingested_at_ms: i64) -> Prepared {
    let mut last: HashMap<SpanKey, usize> = HashMap::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        last.insert(SpanKey::from(span), index);
    }
    let mut prepared = Prepared {
        rows: Vec::with_capacity(last.len()),
        duplicates: spans.len() - last.len(),
        expired: 0,
        rejected: Vec::new(),
    };
    for (index, span) in spans.iter().enumerate() {
        let key = SpanKey::from(span);
        if last.get(&key) != Some(&index) {
            continue;
        }
        if expired(span, retention_days, ingested_at_ms) {
            prepared.expired += 1;
            continue;
        }
        match SpanRow::from_enriched(span, 0, 1, retention_days, ingested_at_ms) {
            Ok(row) => prepared.rows.push(row),
            Err(error) => prepared.rejected.push(RejectedSpan { index, key, error }),
        }
    }
    prepared
}

/// Whether ClickHouse would drop the span's row on insert: the `spans` TTL,
/// `toDateTime(start_time) + toIntervalDay(retention_days)`, is at most `now + margin`.
pub fn expired(span: &EnrichedSpan, retention_days: u16, now_ms: i64) -> bool {
    let start_secs = i64::try_from(span.start_time_unix_nano / 1_000_000_000).unwrap_or(i64::MAX);
    let expiry = start_secs.saturating_add(i64::from(retention_days) * 86_400);
    expiry <= now_ms.div_euclid(1000).saturating_add(EXPIRY_MARGIN_SECS)
}

/// The live row of each span among rows read from `spans FINAL`: the `+1` row of highest
/// version (a `-1` row without its pair, which the protocol never writes, is ignored).
pub fn live_rows(rows: Vec<SpanRow>) -> HashMap<SpanKey, SpanRow> {
    let mut live: HashMap<SpanKey, SpanRow> = HashMap::with_capacity(rows.len());
    for row in rows.into_iter().filter(|r| r.sign > 0) {
        match live.get(&row.key()) {
            Some(current) if current.version >= row.version => {}
            _ => {
                live.insert(row.key(), row);
            }
        }
    }
    live
}

/// Applies the sign protocol to prepared rows given the live stored row of each span.
pub fn decide(rows: Vec<SpanRow>, stored: &HashMap<SpanKey, SpanRow>) -> Decision {
    let mut decision = Decision {
        rows: Vec::with_capacity(rows.len()),
        ..Decision::default()
    };
    for mut row in rows {
        row.sign = 1;
        match stored.get(&row.key()) {
            None => {
                row.version = 1;
                decision.new += 1;
                decision.rows.push(row);
            }
            Some(current) if current.same_content(&row) => decision.unchanged += 1,
            Some(current) => {
                row.version = current.version + 1;
                decision.replaced += 1;
                decision.rows.push(current.cancelling());
                decision.rows.push(row);
            }
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use spindle_schemas::canonical::{CostStatus, ENRICHED_SPAN_VERSION, SpanKind};

    use super::*;

    fn span(project: &str, span_id: &str, cost_nanos: i64) -> EnrichedSpan {
        EnrichedSpan {
            version: ENRICHED_SPAN_VERSION,
            project_id: project.into(),
            trace_id: "t1".into(),
            span_id: span_id.into(),
            kind: SpanKind::Llm as i32,
            start_time_unix_nano: 1_795_770_000_000_000_000,
            input_tokens: 10,
            total_cost_nanos: Some(cost_nanos),
            cost_status: CostStatus::Computed as i32,
            ..Default::default()
        }
    }

    fn stored(spans: &[EnrichedSpan], version: u64) -> HashMap<SpanKey, SpanRow> {
        spans
            .iter()
            .map(|s| {
                let row = SpanRow::from_enriched(s, version, 1, 30, 5).expect("valid");
                (row.key(), row)
            })
            .collect()
    }

    #[test]
    fn new_spans_are_written_once_with_version_one() {
        let batch = [span("p", "a", 100), span("p", "b", 200)];
        let prepared = prepare(&batch, 30, 9);
        assert_eq!((prepared.duplicates, prepared.rejected.len()), (0, 0));
        let decision = decide(prepared.rows, &HashMap::new());
        assert_eq!(
            (decision.new, decision.replaced, decision.unchanged),
            (2, 0, 0)
        );
        let written: Vec<(&str, u64, i8)> = decision
            .rows
            .iter()
            .map(|r| (r.span_id.as_str(), r.version, r.sign))
            .collect();
        assert_eq!(written, [("a", 1, 1), ("b", 1, 1)]);
    }

    #[test]
    fn identical_spans_are_not_written_again_whatever_the_ingest_time() {
        let batch = [span("p", "a", 100), span("p", "b", 200)];
        let decision = decide(prepare(&batch, 30, 123_456).rows, &stored(&batch, 4));
        assert_eq!(
            (decision.new, decision.replaced, decision.unchanged),
            (0, 0, 2)
        );
        assert!(decision.rows.is_empty());
    }

    #[test]
    fn changed_spans_cancel_the_stored_row_and_raise_the_version() {
        let before = [span("p", "a", 100), span("p", "b", 200)];
        let after = [span("p", "a", 100), span("p", "b", 250)];
        let store = stored(&before, 4);
        let decision = decide(prepare(&after, 30, 9).rows, &store);
        assert_eq!(
            (decision.new, decision.replaced, decision.unchanged),
            (0, 1, 1)
        );
        let cancel = &decision.rows[0];
        assert_eq!(
            cancel,
            &store[&cancel.key()].cancelling(),
            "the stored row, verbatim"
        );
        assert_eq!((cancel.version, cancel.sign), (4, -1));
        let new = &decision.rows[1];
        assert_eq!(
            (new.version, new.sign, new.total_cost),
            (5, 1, Some(250_000))
        );
        assert_eq!(decision.rows.len(), 2);
    }

    #[test]
    fn the_last_copy_in_a_batch_wins() {
        let batch = [span("p", "a", 100), span("p", "b", 1), span("p", "a", 300)];
        let prepared = prepare(&batch, 30, 9);
        assert_eq!(prepared.duplicates, 1);
        let rows: Vec<(&str, Option<i64>)> = prepared
            .rows
            .iter()
            .map(|r| (r.span_id.as_str(), r.total_cost))
            .collect();
        assert_eq!(rows, [("b", Some(1_000)), ("a", Some(300_000))]);
    }

    #[test]
    fn projects_never_share_a_span() {
        let batch = [span("p1", "a", 100), span("p2", "a", 100)];
        let decision = decide(prepare(&batch, 30, 9).rows, &stored(&batch[..1], 1));
        assert_eq!((decision.new, decision.unchanged), (1, 1));
        assert_eq!(decision.rows[0].project_id, "p2");
    }

    #[test]
    fn invalid_spans_are_set_aside_with_their_position() {
        let mut bad = span("p", "b", 0);
        bad.total_cost_nanos = Some(i64::MAX);
        let batch = [span("p", "a", 1), bad, span("p", "c", 1)];
        let prepared = prepare(&batch, 30, 9);
        assert_eq!(prepared.rows.len(), 2);
        assert_eq!(prepared.rejected.len(), 1);
        assert_eq!(prepared.rejected[0].index, 1);
        assert_eq!(prepared.rejected[0].key.span_id, "b");
    }

    #[test]
    fn spans_past_their_retention_are_left_out() {
        let now_ms = 1_795_770_000_000 + 30 * 86_400_000;
        let mut batch = [span("p", "a", 1), span("p", "b", 1), span("p", "c", 1)];
        // `a` started exactly 30 days before now: expired. `b` expires in the margin, `c` after.
        batch[1].start_time_unix_nano += (EXPIRY_MARGIN_SECS as u64) * 1_000_000_000;
        batch[2].start_time_unix_nano += (EXPIRY_MARGIN_SECS as u64 + 1) * 1_000_000_000;
        let prepared = prepare(&batch, 30, now_ms);
        assert_eq!(prepared.expired, 2);
        let kept: Vec<&str> = prepared.rows.iter().map(|r| r.span_id.as_str()).collect();
        assert_eq!(kept, ["c"]);
        assert!(
            !expired(&batch[0], 31, now_ms),
            "a longer retention keeps it"
        );
    }

    #[test]
    fn live_rows_are_the_highest_positive_version() {
        let a = span("p", "a", 1);
        let row = |version, sign| SpanRow::from_enriched(&a, version, sign, 30, 0).expect("ok");
        let live = live_rows(vec![
            row(2, 1),
            row(1, -1),
            row(3, 1),
            row(1, 1),
            row(4, -1),
        ]);
        assert_eq!(live.len(), 1);
        assert_eq!(live[&SpanKey::from(&a)].version, 3);
        assert!(live_rows(vec![row(1, -1)]).is_empty());
    }
}
