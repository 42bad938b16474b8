//! Waiting for a request's records to be acknowledged by the brokers.
//!
//! Every record of a request carries the same [`Acks`] as its delivery opaque; the producer's
//! polling thread counts each delivery down and wakes the request once, when its last record
//! is acknowledged. (rdkafka's `FutureProducer` allocates a oneshot channel per record and
//! wakes the awaiting task per record.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::ClientContext;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use tokio::sync::Notify;

/// The gateway's producer.
pub type Producer = ThreadedProducer<Deliveries>;

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
