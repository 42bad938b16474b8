//! Live fan-out of `spans.enriched` and `traces.events` to GraphQL subscriptions.
//!
//! Every server instance reads both topics itself: each reader is assigned every partition of
//! its topic from the end, outside any consumer group, and never commits an offset, so instances
//! neither share nor rebalance work and a restart simply resumes at "now". Each event goes, in
//! process, to the feeds of its project ([`Hub::subscribe`]).
//!
//! A project's feeds share one `tokio::sync::broadcast` channel of `subscriber_buffer` events,
//! the only buffer there is. A feed that falls further behind loses the oldest events and reads
//! a [`LiveEvent::Lagged`] notice in their place: a slow subscriber never grows memory and never
//! slows the reader or the other subscribers. A record of a project nobody watches costs a map
//! lookup on its key; its payload is not even decoded.
//!
//! It is not a history: a feed sees what is produced after it subscribed, at most once.

mod reader;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use spindle_schemas::canonical::EnrichedSpan;
use spindle_schemas::topics::{SPANS_ENRICHED, TRACES_EVENTS};
use spindle_schemas::trace_events::TraceEvent;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::{CancellationToken, ReusableBoxFuture};

/// The largest `subscriber_buffer`: a broadcast channel allocates its slots up front, once per
/// watched project.
const MAX_SUBSCRIBER_BUFFER: usize = 65_536;

/// Settings of the live hub (`[graphql]` settings of the binary feed it).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// Events buffered per project for its feeds (1 to 65,536). A feed more than this many
    /// events behind loses the oldest ones and reads [`LiveEvent::Lagged`] instead.
    pub subscriber_buffer: usize,
    /// `fetch.wait.max.ms` of the `spans.enriched` reader: it bounds how late a span reaches
    /// the feeds when the broker holds empty fetches to the end.
    pub spans_fetch_wait_ms: u32,
    /// `fetch.wait.max.ms` of the `traces.events` reader (COMPLETED, PERSISTED).
    pub events_fetch_wait_ms: u32,
}

/// What a [`Feed`] yields.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// A span as the processor enriched it (`spans.enriched`); shared by every feed of the
    /// project, never copied.
    Span(Arc<EnrichedSpan>),
    /// A trace's lifecycle event (`traces.events`): `COMPLETED` or `PERSISTED`, never another
    /// kind. Either may arrive more than once.
    Trace(TraceEvent),
    /// This feed fell behind and `missed` events were dropped for it; the feed goes on with the
    /// oldest event still buffered.
    Lagged {
        /// How many events this feed will never see.
        missed: u64,
    },
}

/// The in-process fan-out: cheap to clone, every clone shares the readers and the feeds.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

/// Why the hub cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// `subscriber_buffer` is 0 or above the maximum.
    #[error("`subscriber_buffer` must be between 1 and {MAX_SUBSCRIBER_BUFFER}, not {value}")]
    SubscriberBuffer {
        /// The configured value.
        value: usize,
    },
    /// [`Hub::start`] was called outside a tokio runtime.
    #[error("the live hub must start inside a tokio runtime")]
    NoRuntime,
    /// librdkafka refused the consumer settings.
    #[error("cannot create the reader of `{topic}`: {source}")]
    Kafka {
        /// The topic the reader was for.
        topic: &'static str,
        /// What librdkafka said.
        source: rdkafka::error::KafkaError,
    },
}

impl Hub {
    /// Starts one reader per topic (`spans.enriched`, `traces.events`) on the current tokio
    /// runtime and returns at once; [`Hub::is_ready`] says when both read from the end.
    ///
    /// Each reader is an rdkafka consumer built from `kafka` (bootstrap servers and the like),
    /// with a `group.id` of its own that never joins a group, `enable.auto.commit=false`,
    /// `enable.auto.offset.store=false` and the `fetch.wait.max.ms` of its source from
    /// `config` (a span reaches the feeds within about that long). It reads the topic's
    /// partition count from the broker's metadata (retrying while the topic is missing) and is
    /// assigned every partition at its high watermark; partitions added later are not read.
    /// Each payload is decoded (prost) and published to the feeds of its project
    /// (`EnrichedSpan::project_id`, `TraceEvent::project_id`). Payloads that do not decode or
    /// carry an unknown version are counted in `spindle_graphql_live_undecodable_total{topic}`
    /// and skipped; so are, silently, trace events other than `COMPLETED` and `PERSISTED`.
    /// A record whose key (`<project_id>/<trace_id>`) names a project without feeds is
    /// skipped undecoded.
    ///
    /// Runs until `shutdown` is cancelled; then every feed ends.
    pub fn start(
        kafka: &rdkafka::ClientConfig,
        config: &LiveConfig,
        shutdown: CancellationToken,
    ) -> Result<Hub, LiveError> {
        let capacity = config.subscriber_buffer;
        if !(1..=MAX_SUBSCRIBER_BUFFER).contains(&capacity) {
            return Err(LiveError::SubscriberBuffer { value: capacity });
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| LiveError::NoRuntime)?;
        let _entered = runtime.enter();
        let readers = [Source::Spans, Source::TraceEvents].map(|source| {
            reader::consumer(kafka, config, source).map(|consumer| (source, consumer))
        });
        let shared = Arc::new(Shared::new(capacity, shutdown.clone()));
        // Both consumers exist before anything runs, so an error leaves nothing behind.
        let [spans, events] = readers;
        for (source, consumer) in [spans?, events?] {
            runtime.spawn(reader::run(consumer, source, Arc::clone(&shared)));
        }
        let closing = Arc::clone(&shared);
        runtime.spawn(async move {
            shutdown.cancelled().await;
            closing.close();
        });
        Ok(Hub { shared })
    }

    /// A feed of one project's events from now on. It ends only when the hub shuts down.
    pub fn subscribe(&self, project_id: &str) -> Feed {
        self.shared.subscribe(project_id)
    }

    /// True once both readers have their partitions assigned at the end offsets (anything
    /// produced after this turned true reaches the feeds subscribed at that time), until
    /// shutdown.
    pub fn is_ready(&self) -> bool {
        !self.shared.shutdown.is_cancelled()
            && self.shared.ready.iter().all(|r| r.load(Ordering::Acquire))
    }

    /// Number of live feeds (of all projects).
    pub fn subscribers(&self) -> usize {
        self.shared.feeds.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("ready", &self.is_ready())
            .field("subscribers", &self.subscribers())
            .finish_non_exhaustive()
    }
}

/// One subscriber's events of one project: a `Stream` of [`LiveEvent`]s that ends when the hub
/// shuts down. Dropping it unsubscribes.
pub struct Feed {
    next: ReusableBoxFuture<'static, Received>,
    // Declared after `next`, so the receiver inside `next` is gone when this prunes the channel.
    membership: Membership,
}

type Received = (Result<LiveEvent, RecvError>, broadcast::Receiver<LiveEvent>);

async fn receive(mut receiver: broadcast::Receiver<LiveEvent>) -> Received {
    let result = receiver.recv().await;
    (result, receiver)
}

impl futures::Stream for Feed {
    type Item = LiveEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LiveEvent>> {
        let (result, receiver) = ready!(self.next.poll(cx));
        self.next.set(receive(receiver));
        Poll::Ready(match result {
            Ok(event) => Some(event),
            Err(RecvError::Lagged(missed)) => {
                metrics::counter!("spindle_graphql_live_lagged_total").increment(missed);
                Some(LiveEvent::Lagged { missed })
            }
            Err(RecvError::Closed) => None,
        })
    }
}

impl fmt::Debug for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feed")
            .field("project_id", &self.membership.project)
            .finish_non_exhaustive()
    }
}

/// A feed's place in the hub: counted while alive, pruned with the channel's last receiver.
struct Membership {
    shared: Arc<Shared>,
    project: String,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.shared.leave(&self.project);
    }
}

/// The topic a reader follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Spans,
    TraceEvents,
}

impl Source {
    fn topic(self) -> &'static str {
        match self {
            Source::Spans => SPANS_ENRICHED.name,
            Source::TraceEvents => TRACES_EVENTS.name,
        }
    }

    fn index(self) -> usize {
        match self {
            Source::Spans => 0,
            Source::TraceEvents => 1,
        }
    }
}

/// What the readers, the hub and the feeds share.
struct Shared {
    /// Project → its feeds' channel; a project is here only while it has feeds.
    channels: Mutex<HashMap<String, broadcast::Sender<LiveEvent>>>,
    capacity: usize,
    /// Per [`Source::index`]: the reader is assigned at the end offsets.
    ready: [AtomicBool; 2],
    feeds: AtomicUsize,
    shutdown: CancellationToken,
}

impl Shared {
    fn new(capacity: usize, shutdown: CancellationToken) -> Shared {
        Shared {
            channels: Mutex::new(HashMap::new()),
            capacity,
            ready: [AtomicBool::new(false), AtomicBool::new(false)],
            feeds: AtomicUsize::new(0),
            shutdown,
        }
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<String, broadcast::Sender<LiveEvent>>> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn subscribe(self: &Arc<Self>, project: &str) -> Feed {
        let receiver = {
            let mut channels = self.channels();
            if self.shutdown.is_cancelled() {
                // A feed that ends at once: its sender is dropped right here.
                broadcast::channel(1).1
            } else if let Some(sender) = channels.get(project) {
                sender.subscribe()
            } else {
                let (sender, receiver) = broadcast::channel(self.capacity);
                channels.insert(project.to_owned(), sender);
                receiver
            }
        };
        let feeds = self.feeds.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::gauge!("spindle_graphql_live_subscribers").set(feeds as f64);
        Feed {
            next: ReusableBoxFuture::new(receive(receiver)),
            membership: Membership {
                shared: Arc::clone(self),
                project: project.to_owned(),
            },
        }
    }

    /// A feed of `project` is gone (its receiver already dropped).
    fn leave(&self, project: &str) {
        {
            let mut channels = self.channels();
            if channels
                .get(project)
                .is_some_and(|sender| sender.receiver_count() == 0)
            {
                channels.remove(project);
            }
        }
        let feeds = self.feeds.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!("spindle_graphql_live_subscribers").set(feeds as f64);
    }

    /// Whether `project` has feeds: the readers skip everything else before decoding.
    fn watched(&self, project: &str) -> bool {
        self.channels().contains_key(project)
    }

    /// Sends `event` to the feeds of `project`; false when it has none (the event is dropped).
    fn publish(&self, project: &str, event: LiveEvent) -> bool {
        let mut channels = self.channels();
        let Some(sender) = channels.get(project) else {
            return false;
        };
        if sender.send(event).is_ok() {
            return true;
        }
        // No receiver left: a feed being dropped right now; its `leave` finds nothing to do.
        channels.remove(project);
        false
    }

    fn set_ready(&self, source: Source, ready: bool) {
        self.ready[source.index()].store(ready, Ordering::Release);
    }

    /// Shutdown: dropping every sender ends every feed.
    fn close(&self) {
        for ready in &self.ready {
            ready.store(false, Ordering::Release);
        }
        self.channels().clear();
    }
}
