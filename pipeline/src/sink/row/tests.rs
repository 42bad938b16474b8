use std::collections::BTreeMap;

use spindle_schemas::canonical::{SpanEvent, SpanLink};
use spindle_schemas::raw::ArchivePointer;

use super::*;

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn llm_span() -> EnrichedSpan {
    EnrichedSpan {
        version: ENRICHED_SPAN_VERSION,
        processor_version: 1,
        project_id: "p1".into(),
        trace_id: "5b8efff798038103d269b633813fc60c".into(),
        span_id: "eee19b7ec3c1b174".into(),
        parent_span_id: "aaa19b7ec3c1b174".into(),
        name: "chat gpt-4o".into(),
        kind: SpanKind::Llm as i32,
        service: "svc".into(),
        start_time_unix_nano: 1_795_770_000_123_456_789,
        end_time_unix_nano: 1_795_770_001_123_456_789,
        duration_ns: 1_000_000_000,
        status_code: StatusCode::Error as i32,
        model: "gpt-4o".into(),
        provider: "openai".into(),
        input_tokens: 1000,
        output_tokens: 200,
        cache_read_tokens: 30,
        cache_write_tokens: 4,
        reasoning_tokens: 5,
        // $0.0025 in, $0.002 out.
        input_cost_nanos: Some(2_500_000),
        output_cost_nanos: Some(2_000_000),
        total_cost_nanos: Some(4_500_000),
        cost_status: CostStatus::Computed as i32,
        tags: vec!["prod".into()],
        attributes: attrs(&[("b", "2"), ("a", "1")]),
        events: vec![
            SpanEvent {
                time_unix_nano: 1_795_770_000_500_000_001,
                name: "first token".into(),
                attributes: attrs(&[("x", "y")]),
            },
            SpanEvent {
                time_unix_nano: 1_795_770_000_900_000_002,
                name: "done".into(),
                attributes: BTreeMap::new(),
            },
        ],
        links: vec![SpanLink {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: "b7ad6b7169203331".into(),
            attributes: attrs(&[("rel", "follows")]),
        }],
        raw: Some(ArchivePointer {
            bucket: "spindle".into(),
            key: "raw/p1/x.pb".into(),
            index: 3,
        }),
        span_bytes: 321,
        ..Default::default()
    }
}

fn row(span: &EnrichedSpan) -> SpanRow {
    SpanRow::from_enriched(span, 7, 1, 30, 1_795_770_002_000).expect("valid span")
}

#[test]
fn scales_nano_dollars_to_decimal_18_12() {
    let row = row(&llm_span());
    assert_eq!(row.input_cost, Some(2_500_000_000));
    assert_eq!(row.output_cost, Some(2_000_000_000));
    // 0.0045 USD × 1e12.
    assert_eq!(row.total_cost, Some(4_500_000_000));
    assert_eq!(row.total_cost_nanos(), Some(4_500_000));
}

#[test]
fn keeps_unknown_costs_null_and_zero_costs_zero() {
    let mut span = llm_span();
    span.input_cost_nanos = None;
    span.output_cost_nanos = Some(0);
    span.total_cost_nanos = None;
    span.cost_status = CostStatus::UnknownModel as i32;
    let row = row(&span);
    assert_eq!(row.input_cost, None);
    assert_eq!(row.output_cost, Some(0));
    assert_eq!(row.total_cost, None);
    assert_eq!(row.total_cost_nanos(), None);
    assert_eq!(row.cost_status, "unknown_model");
}

#[test]
fn refuses_costs_the_column_cannot_hold() {
    let mut span = llm_span();
    // $999,999.999999999 is the largest cost `Decimal(18, 12)` holds.
    span.total_cost_nanos = Some(999_999_999_999_999);
    assert!(SpanRow::from_enriched(&span, 1, 1, 30, 0).is_ok());
    span.total_cost_nanos = Some(1_000_000_000_000_000);
    assert_eq!(
        SpanRow::from_enriched(&span, 1, 1, 30, 0),
        Err(RowError::CostOutOfRange {
            field: "total_cost",
            nanos: 1_000_000_000_000_000
        })
    );
    span.total_cost_nanos = Some(-1_000_000_000_000_000);
    assert!(SpanRow::from_enriched(&span, 1, 1, 30, 0).is_err());
    span.total_cost_nanos = Some(i64::MAX);
    assert!(SpanRow::from_enriched(&span, 1, 1, 30, 0).is_err());
}

#[test]
fn flattens_events_and_links_into_parallel_arrays() {
    let row = row(&llm_span());
    assert_eq!(
        row.events_time,
        [1_795_770_000_500_000_001, 1_795_770_000_900_000_002]
    );
    assert_eq!(row.events_name, ["first token", "done"]);
    assert_eq!(
        row.events_attributes,
        [attrs(&[("x", "y")]), BTreeMap::new()]
    );
    assert_eq!(row.links_trace_id, ["0af7651916cd43dd8448eb211c80319c"]);
    assert_eq!(row.links_span_id, ["b7ad6b7169203331"]);
    assert_eq!(row.links_attributes, [attrs(&[("rel", "follows")])]);

    let empty = self::row(&EnrichedSpan {
        events: vec![],
        links: vec![],
        ..llm_span()
    });
    assert!(empty.events_time.is_empty() && empty.events_name.is_empty());
    assert!(empty.links_trace_id.is_empty() && empty.links_attributes.is_empty());
}

#[test]
fn maps_enums_times_and_the_sinks_own_columns() {
    let row = row(&llm_span());
    assert_eq!(
        (row.kind.as_str(), row.status_code.as_str()),
        ("llm", "error")
    );
    assert_eq!(row.cost_status, "computed");
    assert_eq!(row.start_time, 1_795_770_000_123_456_789);
    assert_eq!(row.end_time, 1_795_770_001_123_456_789);
    assert_eq!(row.raw_pointer, "s3://spindle/raw/p1/x.pb#3");
    assert_eq!(row.attributes, attrs(&[("a", "1"), ("b", "2")]));
    assert_eq!(
        (row.version, row.sign, row.retention_days, row.ingested_at),
        (7, 1, 30, 1_795_770_002_000)
    );
    assert_eq!(
        row.key(),
        SpanKey::from(&llm_span()),
        "the row and the record name the same span"
    );
}

#[test]
fn refuses_what_is_not_a_span_of_this_version() {
    let bad = |edit: fn(&mut EnrichedSpan)| {
        let mut span = llm_span();
        edit(&mut span);
        SpanRow::from_enriched(&span, 1, 1, 30, 0).expect_err("refused")
    };
    assert_eq!(
        bad(|s| s.version = ENRICHED_SPAN_VERSION + 1),
        RowError::UnsupportedVersion {
            found: ENRICHED_SPAN_VERSION + 1,
            supported: ENRICHED_SPAN_VERSION
        }
    );
    assert_eq!(
        bad(|s| s.project_id.clear()),
        RowError::MissingId {
            field: "project_id"
        }
    );
    assert_eq!(
        bad(|s| s.kind = 99),
        RowError::UnknownEnum {
            field: "kind",
            value: 99
        }
    );
    assert_eq!(
        bad(|s| s.start_time_unix_nano = u64::MAX),
        RowError::TimeOutOfRange {
            field: "start_time",
            nanos: u64::MAX
        }
    );
    assert!(matches!(
        bad(|s| s.events[1].time_unix_nano = 1 << 63),
        RowError::TimeOutOfRange {
            field: "events.time",
            ..
        }
    ));
    assert_eq!(
        bad(|s| s.total_cost_nanos = Some(i64::MIN)).to_string(),
        "`total_cost` = -9223372036854775808 nano-dollars does not fit `Decimal(18, 12)` (|USD| < 1e6)"
    );
}

#[test]
fn same_content_ignores_only_the_bookkeeping_columns() {
    let span = llm_span();
    let stored = SpanRow::from_enriched(&span, 1, 1, 30, 100).expect("valid");
    let again = SpanRow::from_enriched(&span, 2, 1, 30, 999).expect("valid");
    assert!(
        stored.same_content(&again),
        "version and ingested_at differ only"
    );
    assert!(stored.same_content(&stored.cancelling()));

    let changed = |edit: fn(&mut EnrichedSpan)| {
        let mut span = llm_span();
        edit(&mut span);
        !stored.same_content(&SpanRow::from_enriched(&span, 1, 1, 30, 100).expect("valid"))
    };
    assert!(changed(|s| s.total_cost_nanos = Some(4_500_001)));
    assert!(changed(|s| s.total_cost_nanos = None));
    assert!(changed(|s| s.output_tokens += 1));
    assert!(changed(|s| s.model = "gpt-4o-mini".into()));
    assert!(changed(|s| s.kind = SpanKind::Agent as i32));
    assert!(changed(|s| s.events[0].name = "other".into()));
    assert!(changed(|s| {
        s.attributes.insert("c".into(), "3".into());
    }));
    // Facts that are not columns do not make a span different by themselves.
    assert!(!changed(|s| s.processor_version = 2));
    assert!(!changed(|s| s.price_table_version = "2026-12".into()));
    assert!(!changed(|s| s.received_at_unix_nano = 42));

    let other_retention = SpanRow::from_enriched(&span, 1, 1, 90, 100).expect("valid");
    assert!(!stored.same_content(&other_retention));
}

#[test]
fn cancelling_repeats_the_row_with_sign_minus_one() {
    let stored = row(&llm_span());
    let cancel = stored.cancelling();
    assert_eq!(cancel.sign, -1);
    assert_eq!(SpanRow { sign: 1, ..cancel }, stored);
}
