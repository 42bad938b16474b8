//! The GraphQL server's live hub against the real broker: records produced to `spans.enriched`
//! and `traces.events` reach the feeds of their project only, a slow feed reads a lag notice and
//! goes on, and feeds unsubscribe when dropped.
//!
//! The spans produced here start at the Unix epoch, so the stack's running sink counts them as
//! expired and writes nothing; the trace events are `PERSISTED`, which the sink ignores (a
//! `COMPLETED` it could never answer would hold back its committed offset).

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use prost::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use spindle::config::Config;
use spindle_graphql::live::{Feed, Hub, LiveConfig, LiveEvent};
use spindle_schemas::canonical::{ENRICHED_SPAN_VERSION, EnrichedSpan};
use spindle_schemas::topics::{SPANS_ENRICHED, TRACES_EVENTS};
use spindle_schemas::trace_events::{TRACE_EVENT_VERSION, TraceEvent, TraceEventKind};
use tokio_util::sync::CancellationToken;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A hub on the local stack whose readers are at the end of both topics.
async fn ready_hub(config: &Config, subscriber_buffer: usize) -> (Hub, CancellationToken) {
    let shutdown = CancellationToken::new();
    let hub = Hub::start(
        &spindle::clients::kafka_config(&config.kafka),
        &LiveConfig {
            subscriber_buffer,
            ..config.graphql.live.clone()
        },
        shutdown.clone(),
    )
    .expect("hub starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !hub.is_ready() {
        assert!(Instant::now() < deadline, "the hub is not ready after 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (hub, shutdown)
}

fn producer(config: &Config) -> FutureProducer {
    spindle::clients::kafka_config(&config.kafka)
        .set("acks", "all")
        .create()
        .expect("producer")
}

fn span(project: &str, index: usize) -> EnrichedSpan {
    EnrichedSpan {
        version: ENRICHED_SPAN_VERSION,
        project_id: project.to_owned(),
        trace_id: TRACE_ID.to_owned(),
        span_id: format!("{index:016x}"),
        name: format!("step {index}"),
        ..EnrichedSpan::default()
    }
}

async fn produce(producer: &FutureProducer, topic: &str, key: &str, payload: Vec<u8>) {
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("record acknowledged");
}

async fn produce_span(producer: &FutureProducer, span: &EnrichedSpan) {
    produce(
        producer,
        SPANS_ENRICHED.name,
        &span.key(),
        span.encode_to_vec(),
    )
    .await;
}

/// The next event of `feed` within `wait`, or `None`; panics if the feed ended.
async fn next_within(feed: &mut Feed, wait: Duration) -> Option<LiveEvent> {
    match tokio::time::timeout(wait, feed.next()).await {
        Ok(Some(event)) => Some(event),
        Ok(None) => panic!("the feed ended"),
        Err(_) => None,
    }
}

fn unique_project(prefix: &str) -> String {
    support::unique(prefix).replace('_', "-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_gets_its_projects_spans_and_trace_events_only() {
    let config = support::stack();
    let (hub, shutdown) = ready_hub(&config, 64).await;
    let project = unique_project("live");
    let neighbour = unique_project("neighbour");
    let mut feed = hub.subscribe(&project);
    let mut neighbours = hub.subscribe(&neighbour);
    assert_eq!(hub.subscribers(), 2);

    let producer = producer(&config);
    let sent = span(&project, 1);
    produce_span(&producer, &sent).await;
    let acked = Instant::now();
    match next_within(&mut feed, Duration::from_secs(10)).await {
        Some(LiveEvent::Span(got)) => assert_eq!(*got, sent),
        other => panic!("expected the span, got {other:?}"),
    }
    let span_latency = acked.elapsed();

    let event = TraceEvent {
        version: TRACE_EVENT_VERSION,
        kind: TraceEventKind::Persisted as i32,
        project_id: project.clone(),
        trace_id: TRACE_ID.to_owned(),
        span_count: 1,
        root_seen: true,
        at_unix_nano: 1,
    };
    produce(
        &producer,
        TRACES_EVENTS.name,
        &event.key(),
        event.encode_to_vec(),
    )
    .await;
    let acked = Instant::now();
    match next_within(&mut feed, Duration::from_secs(10)).await {
        Some(LiveEvent::Trace(got)) => assert_eq!(got, event),
        other => panic!("expected the trace event, got {other:?}"),
    }
    let event_latency = acked.elapsed();
    eprintln!("delivered after the ack: span {span_latency:?}, trace event {event_latency:?}");
    // About 100 ms is the aim; a loaded test machine gets some slack.
    assert!(
        span_latency.max(event_latency) < Duration::from_secs(2),
        "live events took {span_latency:?} and {event_latency:?} to arrive"
    );
    // The tenant wall: the neighbour's feed saw none of it.
    let leaked = next_within(&mut neighbours, Duration::from_millis(500)).await;
    assert!(leaked.is_none(), "another project's feed got {leaked:?}");

    shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), feed.next()).await;
    assert!(
        matches!(ended, Ok(None)),
        "feeds end at shutdown: {ended:?}"
    );
    assert!(!hub.is_ready(), "a stopped hub is not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_feed_reads_a_lag_notice_and_goes_on() {
    const SPANS: usize = 50;
    let config = support::stack();
    let (hub, shutdown) = ready_hub(&config, 4).await;
    let project = unique_project("slow");
    let mut feed = hub.subscribe(&project);
    let producer = producer(&config);
    for index in 0..SPANS {
        produce_span(&producer, &span(&project, index)).await;
    }
    // Not read meanwhile: by now the reader has published far more than 4 of them.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (mut missed, mut received) = (0, Vec::new());
    while missed + received.len() < SPANS {
        match next_within(&mut feed, Duration::from_secs(10)).await {
            Some(LiveEvent::Lagged { missed: n }) => missed += usize::try_from(n).expect("fits"),
            Some(LiveEvent::Span(span)) => received.push(span.name.clone()),
            other => panic!(
                "expected spans and lag notices, got {other:?} after {} spans, {missed} missed",
                received.len()
            ),
        }
    }
    assert!(missed > 0, "a feed 50 events behind a buffer of 4 lags");
    assert_eq!(
        missed + received.len(),
        SPANS,
        "every span is received or missed"
    );
    // What it kept are the newest ones, in order.
    let expected: Vec<String> = (SPANS - received.len()..SPANS)
        .map(|i| format!("step {i}"))
        .collect();
    assert_eq!(received, expected);

    // And the feed goes on with what comes next.
    produce_span(&producer, &span(&project, SPANS)).await;
    match next_within(&mut feed, Duration::from_secs(10)).await {
        Some(LiveEvent::Span(span)) => assert_eq!(span.name, format!("step {SPANS}")),
        other => panic!("expected the next span, got {other:?}"),
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_feed_unsubscribes() {
    let config = support::stack();
    let (hub, shutdown) = ready_hub(&config, 16).await;
    let project = unique_project("drop");
    let other = unique_project("drop-other");
    let mut first = hub.subscribe(&project);
    let second = hub.subscribe(&project);
    let third = hub.subscribe(&other);
    assert_eq!(hub.subscribers(), 3);
    let producer = producer(&config);
    produce_span(&producer, &span(&project, 0)).await;
    assert!(
        matches!(
            next_within(&mut first, Duration::from_secs(10)).await,
            Some(LiveEvent::Span(_))
        ),
        "the feed works before the drop"
    );
    drop(first);
    assert_eq!(hub.subscribers(), 2);
    drop((second, third));
    assert_eq!(hub.subscribers(), 0);

    // A project subscribed again starts afresh and still receives.
    produce_span(&producer, &span(&project, 1)).await;
    let mut again = hub.subscribe(&project);
    assert_eq!(hub.subscribers(), 1);
    produce_span(&producer, &span(&project, 2)).await;
    loop {
        match next_within(&mut again, Duration::from_secs(10)).await {
            // Span 1 may or may not have been read before the new feed subscribed.
            Some(LiveEvent::Span(span)) if span.name == "step 1" => {}
            Some(LiveEvent::Span(span)) => {
                assert_eq!(span.name, "step 2");
                break;
            }
            other => panic!("expected span 2, got {other:?}"),
        }
    }
    drop(again);
    assert_eq!(hub.subscribers(), 0);
    shutdown.cancel();
}
