//! The producer of the long-running roles (gateway, processor, sink), and waiting for records
//! to be acknowledged by the brokers.
//!
//! Every record of a request (or of one [`Producer::send`]) carries the same [`Acks`] as its
//! delivery opaque; the producer's polling thread counts each delivery down and wakes the
//! waiter once, when its last record is acknowledged. It replaces rdkafka's `FutureProducer`,
//! whose polling thread spins (see [`POLL_PERIOD`]) and which allocates a oneshot channel and
//! wakes a task per record.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::Notify;

/// How long one `poll` call of the delivery thread lasts.
///
/// rdkafka's `poll(timeout)` loops until its deadline, handing librdkafka the time left in
/// whole milliseconds; in the last millisecond that is 0, a non-blocking poll, so every call
/// ends in up to a millisecond of spinning. rdkafka's `ThreadedProducer` (under its
/// `FutureProducer`) polls for 100 ms at a time, which spun 1 % of a core even when idle (5 ms
/// of the gateway's CPU every second under the bench; most of an idle processor's or sink's
/// CPU). Polling for 500 ms keeps that under 0.2 %; stopping waits at most this long.
const POLL_PERIOD: Duration = Duration::from_millis(500);

/// How long to wait before enqueueing again when the producer's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(100);

/// A `BaseProducer` with a thread of its own serving delivery reports; create it with the
/// [`Deliveries`] context.
pub struct Producer {
    producer: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FromClientConfigAndContext<Deliveries> for Producer {
    fn from_config_and_context(config: &ClientConfig, context: Deliveries) -> KafkaResult<Self> {
        let producer = Arc::new(BaseProducer::from_config_and_context(config, context)?);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let producer = producer.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("kafka-deliveries".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_PERIOD);
                    }
                })
                .map_err(|e| KafkaError::ClientCreation(format!("delivery thread: {e}")))?
        };
        Ok(Self {
            producer,
            stop,
            thread: Some(thread),
        })
    }
}

/// One record to enqueue: where, what, and the [`Acks`] it is counted in.
pub(crate) struct Record<'a> {
    pub(crate) topic: &'a str,
    pub(crate) key: &'a [u8],
    pub(crate) payload: &'a [u8],
    pub(crate) headers: Option<&'a OwnedHeaders>,
}

impl Producer {
    /// Hands one record to librdkafka (which copies it) as one more of `acks`; while the
    /// producer's queue is full, retries until `deadline`. On `Err` the record is not counted.
    pub(crate) async fn enqueue(
        &self,
        record: &Record<'_>,
        acks: &Arc<Acks>,
        deadline: tokio::time::Instant,
    ) -> KafkaResult<()> {
        loop {
            acks.expect_one();
            let mut base = BaseRecord::with_opaque_to(record.topic, acks.clone())
                .key(record.key)
                .payload(record.payload);
            if let Some(headers) = record.headers {
                base = base.headers(headers.clone());
            }
            let Err((error, _)) = self.producer.send(base) else {
                return Ok(());
            };
            acks.refused_one();
            match error {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep_until(
                        deadline.min(tokio::time::Instant::now() + QUEUE_FULL_BACKOFF),
                    )
                    .await;
                }
                e => return Err(e),
            }
        }
    }

    /// Produces one record and waits until the brokers acknowledged it; `queue_timeout` bounds
    /// the wait for room in a full queue (as rdkafka's `FutureProducer::send`'s does). The
    /// error says which topic failed and why.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: Option<&OwnedHeaders>,
        queue_timeout: Duration,
    ) -> Result<(), String> {
        let acks = Acks::new();
        let record = Record {
            topic,
            key,
            payload,
            headers,
        };
        let deadline = tokio::time::Instant::now() + queue_timeout;
        self.enqueue(&record, &acks, deadline)
            .await
            .map_err(|e| format!("produce to `{topic}` failed: {e}"))?;
        acks.settled()
            .await
            .map_err(|e| format!("produce to `{topic}` failed: {e}"))
    }

    pub fn client(&self) -> &Client<Deliveries> {
        self.producer.client()
    }

    /// Waits for every enqueued record to be delivered or to fail.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.producer.flush(timeout)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The producer context: routes each delivery report to its request's [`Acks`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        if let Err((error, _)) = result {
            let mut failure = acks.failure.lock().expect("acks lock is never poisoned");
            failure.get_or_insert_with(|| error.to_string());
        }
        acks.settle();
    }
}

/// The outstanding records of one request.
#[derive(Debug)]
pub struct Acks {
    /// Records handed to the producer and not yet reported, plus one while the request is
    /// still enqueueing (so the count cannot reach zero early).
    outstanding: AtomicUsize,
    /// The first delivery error.
    failure: Mutex<Option<String>>,
    settled: Notify,
}

impl Acks {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            outstanding: AtomicUsize::new(1),
            failure: Mutex::new(None),
            settled: Notify::new(),
        })
    }

    /// Counts a record about to be handed to the producer.
    pub(crate) fn expect_one(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back a record the producer refused (it will never be reported).
    pub(crate) fn refused_one(&self) {
        self.settle();
    }

    fn settle(&self) {
        if self.outstanding.fetch_sub(1, Ordering::AcqRel) == 1 {
            // One waiter at most; the permit is kept if it is not waiting yet.
            self.settled.notify_one();
        }
    }

    /// Ends enqueueing and waits until every record was reported: `Err` with the first
    /// delivery error if any record failed.
    pub(crate) async fn settled(&self) -> Result<(), String> {
        self.settle();
        if self.outstanding.load(Ordering::Acquire) != 0 {
            self.settled.notified().await;
        }
        match self
            .failure
            .lock()
            .expect("acks lock is never poisoned")
            .take()
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settles_once_every_record_is_reported() {
        let acks = Acks::new();
        acks.expect_one();
        acks.expect_one();
        acks.expect_one();
        acks.refused_one();
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.settled().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "two records outstanding");
        acks.settle();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one record outstanding");
        acks.settle();
        assert_eq!(waiter.await.expect("joins"), Ok(()));
    }

    #[tokio::test]
    async fn the_first_failure_is_reported() {
        let acks = Acks::new();
        acks.expect_one();
        acks.expect_one();
        *acks.failure.lock().expect("lock") = Some("broker down".into());
        acks.settle();
        acks.settle();
        assert_eq!(acks.settled().await, Err("broker down".into()));
    }

    #[tokio::test]
    async fn a_request_with_no_record_settles_at_once() {
        assert_eq!(Acks::new().settled().await, Ok(()));
    }
}
