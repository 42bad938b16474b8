//! A guard against a consumer group the broker has stranded.
//!
//! The processor and the sink join their groups as static members (`group.instance.id`), so a
//! restarted role gets its partitions back at once. A static member that stops sends no
//! `LeaveGroup`, and the local broker (tansu 0.6) can then keep it as the group's leader: a
//! member that joins afterwards is a follower whose `SyncGroup` is answered "rebalance in
//! progress" again and again. It holds no partition and consumes nothing, with no error, for
//! as long as only static members talk to the group, since the broker expires departed members
//! only on a dynamic member's requests. `tests/consumer_groups.rs` reproduces it.
//!
//! [`Guard`] watches one consumer. When it has held no partition for a while, records wait
//! beyond the group's committed offsets and those offsets have not moved meanwhile (so no other
//! member is consuming them either), it joins the group for a moment as a dynamic member: the
//! broker drops the departed members, the group forms anew, and the guard leaves again
//! (a dynamic member's `LeaveGroup`), so the watched consumer ends up with every partition. The
//! stand-in never reads a record and never commits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

/// How long a broker request of the guard may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the stand-in member stays in the group at most.
const STAND_IN_FOR: Duration = Duration::from_secs(30);

/// What one look at the watched consumer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// It holds partitions.
    Member,
    /// It holds none, but is not (yet) stranded: nothing waits, the group moves, or not for
    /// long enough.
    Idle,
    /// It was stranded; the group was made to form again.
    Rescued,
}

/// Watches `consumer`, a member of `group` subscribed to `topic`.
pub struct Guard {
    consumer: Arc<StreamConsumer>,
    /// Connection settings for the stand-in member (no group settings).
    base: ClientConfig,
    group: String,
    topic: String,
    stranded_after: Duration,
    /// Since when the consumer has held no partition, and the committed offsets then.
    empty_since: Option<(Instant, Vec<i64>)>,
}

impl Guard {
    /// A guard that rescues `consumer` once it has held no partition for `stranded_after`.
    pub fn new(
        consumer: Arc<StreamConsumer>,
        base: ClientConfig,
        group: &str,
        topic: &str,
        stranded_after: Duration,
    ) -> Self {
        Self {
            consumer,
            base,
            group: group.to_owned(),
            topic: topic.to_owned(),
            stranded_after,
            empty_since: None,
        }
    }

    /// Checks every `every` until `shutdown`.
    pub async fn run(mut self, every: Duration, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            match self.check().await {
                Ok(Check::Rescued) => tracing::warn!(
                    group = %self.group,
                    "the consumer held no partition while records waited: the group was made \
                     to form again"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(group = %self.group, error = %e, "cannot check the consumer group")
                }
            }
        }
    }

    /// One look at the consumer; rescues it when it is stranded.
    pub async fn check(&mut self) -> Result<Check, String> {
        let holds = self
            .consumer
            .assignment()
            .map_err(|e| format!("cannot read the assignment: {e}"))?
            .count();
        if holds > 0 {
            self.empty_since = None;
            return Ok(Check::Member);
        }
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let (committed, waiting) = tokio::task::spawn_blocking(move || lag(&consumer, &topic))
            .await
            .map_err(|e| e.to_string())??;
        let Some((since, before)) = &self.empty_since else {
            self.empty_since = Some((Instant::now(), committed));
            return Ok(Check::Idle);
        };
        if !waiting || *before != committed {
            self.empty_since = Some((Instant::now(), committed));
            return Ok(Check::Idle);
        }
        if since.elapsed() < self.stranded_after {
            return Ok(Check::Idle);
        }
        self.stand_in().await?;
        self.empty_since = None;
        metrics::counter!("spindle_group_rescues_total", "group" => self.group.clone())
            .increment(1);
        Ok(Check::Rescued)
    }

    /// Joins the group as a dynamic member until the watched consumer holds partitions (or
    /// [`STAND_IN_FOR`] passed), then leaves it.
    async fn stand_in(&self) -> Result<(), String> {
        let stand_in: StreamConsumer = self
            .base
            .clone()
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .map_err(|e| format!("cannot create the stand-in member: {e}"))?;
        stand_in
            .subscribe(&[&self.topic])
            .map_err(|e| format!("cannot subscribe the stand-in member: {e}"))?;
        let started = Instant::now();
        while started.elapsed() < STAND_IN_FOR {
            // Polling serves the stand-in's group protocol; its records are never read.
            let _ = tokio::time::timeout(Duration::from_millis(200), stand_in.recv()).await;
            let joined = stand_in.assignment().is_ok_and(|a| a.count() > 0);
            if joined || self.consumer.assignment().is_ok_and(|a| a.count() > 0) {
                break;
            }
        }
        stand_in.unsubscribe();
        // Dropping a dynamic member closes it with a `LeaveGroup`: the group forms again around
        // the watched consumer.
        drop(stand_in);
        Ok(())
    }
}

/// The group's committed offset of each partition of `topic` (-1: none), and whether any
/// partition has records beyond it.
fn lag(consumer: &StreamConsumer, topic: &str) -> Result<(Vec<i64>, bool), String> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot read the metadata of `{topic}`: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        list.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(list, REQUEST_TIMEOUT)
        .map_err(|e| format!("cannot read the committed offsets of `{topic}`: {e}"))?;
    let mut offsets = Vec::with_capacity(partitions.len());
    let mut waiting = false;
    for partition in partitions {
        let at = match committed
            .find_partition(topic, partition)
            .map(|e| e.offset())
        {
            Some(Offset::Offset(n)) => n,
            _ => -1,
        };
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            .map_err(|e| format!("cannot read the end of `{topic}` [{partition}]: {e}"))?;
        waiting |= high > at.max(low);
        offsets.push(at);
    }
    Ok((offsets, waiting))
}
