//! The fan-out without Kafka: feeds, lag notices, pruning, shutdown, dispatch.

use std::time::Duration;

use futures::StreamExt as _;
use prost::Message as _;
use spindle_schemas::canonical::ENRICHED_SPAN_VERSION;
use spindle_schemas::trace_events::{TRACE_EVENT_VERSION, TraceEventKind};

use super::*;

fn hub(capacity: usize) -> (Hub, CancellationToken) {
    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared::new(capacity, shutdown.clone()));
    (Hub { shared }, shutdown)
}

fn span(project: &str, span_id: &str) -> LiveEvent {
    LiveEvent::Span(Arc::new(EnrichedSpan {
        version: ENRICHED_SPAN_VERSION,
        project_id: project.into(),
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: span_id.into(),
        ..EnrichedSpan::default()
    }))
}

fn span_id(event: Option<LiveEvent>) -> String {
    match event {
        Some(LiveEvent::Span(span)) => span.span_id.clone(),
        other => panic!("expected a span, got {other:?}"),
    }
}

/// The next item if one is ready within a short wait.
async fn next(feed: &mut Feed) -> Option<Option<LiveEvent>> {
    tokio::time::timeout(Duration::from_millis(50), feed.next())
        .await
        .ok()
}

#[tokio::test]
async fn a_feed_gets_its_projects_events_only() {
    let (hub, _shutdown) = hub(8);
    let mut a = hub.subscribe("a");
    let mut b = hub.subscribe("b");
    assert!(hub.shared.publish("a", span("a", "1")));
    assert!(hub.shared.publish("a", span("a", "2")));
    assert!(!hub.shared.publish("c", span("c", "1")), "nobody watches c");
    assert_eq!(span_id(a.next().await), "1");
    assert_eq!(span_id(a.next().await), "2");
    assert!(next(&mut a).await.is_none());
    assert!(next(&mut b).await.is_none(), "b sees nothing of a");
    assert!(!hub.shared.watched("c"), "publishing creates no channel");
}

#[tokio::test]
async fn every_feed_of_a_project_gets_every_event() {
    let (hub, _shutdown) = hub(8);
    let mut first = hub.subscribe("a");
    let mut second = hub.subscribe("a");
    assert_eq!(hub.subscribers(), 2);
    assert!(hub.shared.publish("a", span("a", "1")));
    assert_eq!(span_id(first.next().await), "1");
    assert_eq!(span_id(second.next().await), "1");
}

#[tokio::test]
async fn a_slow_feed_reads_a_lag_notice_then_goes_on() {
    let (hub, _shutdown) = hub(4);
    let mut slow = hub.subscribe("a");
    let mut fast = hub.subscribe("a");
    for i in 0..10 {
        assert!(hub.shared.publish("a", span("a", &i.to_string())));
        // The fast feed keeps up and never lags.
        assert_eq!(span_id(fast.next().await), i.to_string());
    }
    match slow.next().await {
        Some(LiveEvent::Lagged { missed }) => assert_eq!(missed, 6),
        other => panic!("expected a lag notice, got {other:?}"),
    }
    for i in 6..10 {
        assert_eq!(span_id(slow.next().await), i.to_string());
    }
    assert!(hub.shared.publish("a", span("a", "10")));
    assert_eq!(span_id(slow.next().await), "10");
    assert_eq!(span_id(fast.next().await), "10");
    assert!(next(&mut slow).await.is_none());
}

#[tokio::test]
async fn the_last_feed_dropped_removes_the_projects_channel() {
    let (hub, _shutdown) = hub(4);
    let first = hub.subscribe("a");
    let second = hub.subscribe("a");
    let other = hub.subscribe("b");
    assert_eq!(hub.subscribers(), 3);
    drop(first);
    assert!(hub.shared.watched("a"), "one feed of a is left");
    assert!(hub.shared.publish("a", span("a", "1")));
    drop(second);
    assert!(!hub.shared.watched("a"));
    assert!(!hub.shared.publish("a", span("a", "2")));
    assert_eq!(hub.subscribers(), 1);
    drop(other);
    assert_eq!(hub.subscribers(), 0);
    assert!(hub.shared.channels().is_empty());
}

#[tokio::test]
async fn a_feed_dropped_mid_receive_is_pruned_too() {
    let (hub, _shutdown) = hub(4);
    let mut feed = hub.subscribe("a");
    // Polled once: the receiver now waits inside the feed's future.
    assert!(next(&mut feed).await.is_none());
    drop(feed);
    assert_eq!(hub.subscribers(), 0);
    assert!(hub.shared.channels().is_empty());
}

#[tokio::test]
async fn a_new_feed_after_the_last_one_left_starts_fresh() {
    let (hub, _shutdown) = hub(4);
    let feed = hub.subscribe("a");
    assert!(hub.shared.publish("a", span("a", "old")));
    drop(feed);
    let mut feed = hub.subscribe("a");
    assert!(
        next(&mut feed).await.is_none(),
        "nothing from before it subscribed"
    );
    assert!(hub.shared.publish("a", span("a", "new")));
    assert_eq!(span_id(feed.next().await), "new");
}

#[tokio::test]
async fn shutdown_ends_every_feed() {
    let (hub, shutdown) = hub(4);
    let mut feed = hub.subscribe("a");
    shutdown.cancel();
    hub.shared.close();
    assert!(feed.next().await.is_none());
    assert!(feed.next().await.is_none(), "and stays ended");
    let mut late = hub.subscribe("a");
    assert!(
        late.next().await.is_none(),
        "a feed after shutdown ends at once"
    );
    assert!(hub.shared.channels().is_empty());
    drop((feed, late));
    assert_eq!(hub.subscribers(), 0);
}

#[tokio::test]
async fn dispatch_publishes_decoded_records_to_the_payloads_project() {
    let (hub, _shutdown) = hub(8);
    let mut feed = hub.subscribe("a");
    let span = EnrichedSpan {
        version: ENRICHED_SPAN_VERSION,
        project_id: "a".into(),
        trace_id: "ab".into(),
        span_id: "s1".into(),
        ..EnrichedSpan::default()
    };
    let event = TraceEvent {
        version: TRACE_EVENT_VERSION,
        kind: TraceEventKind::Completed as i32,
        project_id: "a".into(),
        trace_id: "ab".into(),
        span_count: 1,
        ..TraceEvent::default()
    };
    let shared = &hub.shared;
    let key = span.key();
    // Another project's record, an undecodable one and a keyless one are skipped or routed.
    reader::dispatch(shared, Source::Spans, Some(b"b/ab"), Some(&[0xff]));
    reader::dispatch(shared, Source::Spans, Some(key.as_bytes()), Some(&[0xff]));
    reader::dispatch(
        shared,
        Source::Spans,
        Some(key.as_bytes()),
        Some(&span.encode_to_vec()),
    );
    reader::dispatch(
        shared,
        Source::TraceEvents,
        None,
        Some(&event.encode_to_vec()),
    );
    assert_eq!(span_id(feed.next().await), "s1");
    match feed.next().await {
        Some(LiveEvent::Trace(got)) => assert_eq!(got, event),
        other => panic!("expected the trace event, got {other:?}"),
    }
    assert!(next(&mut feed).await.is_none());
}

#[test]
fn settings_refuse_unknown_keys_and_bad_buffers() {
    let config: LiveConfig = serde_json::from_str(
        r#"{"subscriber_buffer": 256, "spans_fetch_wait_ms": 50, "events_fetch_wait_ms": 900}"#,
    )
    .expect("valid settings");
    assert_eq!(config.subscriber_buffer, 256);
    assert_eq!(config.spans_fetch_wait_ms, 50);
    assert_eq!(config.events_fetch_wait_ms, 900);
    let unknown = r#"{"subscriber_buffer": 1, "spans_fetch_wait_ms": 1, "events_fetch_wait_ms": 1, "extra": 2}"#;
    assert!(serde_json::from_str::<LiveConfig>(unknown).is_err());
    for value in [0, MAX_SUBSCRIBER_BUFFER + 1] {
        let refused = Hub::start(
            &rdkafka::ClientConfig::new(),
            &LiveConfig {
                subscriber_buffer: value,
                spans_fetch_wait_ms: 100,
                events_fetch_wait_ms: 500,
            },
            CancellationToken::new(),
        );
        assert!(matches!(refused, Err(LiveError::SubscriberBuffer { .. })));
    }
    let outside = Hub::start(
        &rdkafka::ClientConfig::new(),
        &LiveConfig {
            subscriber_buffer: 1,
            spans_fetch_wait_ms: 100,
            events_fetch_wait_ms: 500,
        },
        CancellationToken::new(),
    );
    assert!(matches!(outside, Err(LiveError::NoRuntime)));
}
