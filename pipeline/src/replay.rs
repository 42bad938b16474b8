//! Replay from the S3 archive: archived requests back into `spans.raw`, so a new price table
//! or processor version rebuilds the store.
//!
//! Replay walks the archive hour by hour (`raw/<project>/<yyyy>/<mm>/<dd>/<hh>/`, one
//! ListObjectsV2 prefix per project and hour, never the whole bucket), reads each
//! [`ArchiveObject`] and splits every archived request into records exactly as the gateway did:
//! the same wire parsing, one `RawSpanBatch` per resource, scope and trace, keyed
//! `<project>/<trace hex>`, with the request's own `received_at_unix_nano` and a pointer to
//! this object and index. The sink's sign protocol makes the copies harmless: a span already
//! stored unchanged is not written again, a changed one replaces the stored row, so `traces`
//! and `usage_hourly` never count a replayed span twice.
//!
//! Nothing is skipped: an unreadable object, an unknown archive version, a malformed request
//! or a failed produce stops the replay with an error naming the object (and the request).
//! Records produced before the error stay produced; running the same replay again is safe.
//! Replay does not decide what the processor makes of the records, and it never reads
//! ClickHouse.

mod object;
mod range;

use aws_sdk_s3::error::DisplayErrorContext;
use futures::{StreamExt as _, TryStreamExt as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use spindle_schemas::raw::{ARCHIVE_VERSION, ArchiveObject};
use spindle_schemas::topics::SPANS_RAW;
use time::OffsetDateTime;

use crate::gateway::batch::Record;
use object::{decode, split};
use range::{ARCHIVE_ROOT, Hours, check_project, hour_prefix, project_of};

/// What to replay: the archive hours that overlap `[since, until]`, of one project or of all.
///
/// The archive is laid out by the hour its objects were written (UTC), so the range is
/// widened to whole hours: every object written in an hour the range touches is replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayRange {
    pub since: OffsetDateTime,
    /// `None`: up to now.
    pub until: Option<OffsetDateTime>,
    /// `None`: every project under `raw/`.
    pub project: Option<String>,
}

/// What a replay produced, counted over the objects replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Archive objects read.
    pub objects: u64,
    /// Archived requests in them.
    pub requests: u64,
    /// Spans in those requests.
    pub spans: u64,
    /// `spans.raw` records produced and acknowledged.
    pub records: u64,
}

/// Reported after each object is replayed (every record acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayProgress {
    /// The object just replayed.
    pub key: String,
    /// The hour being replayed (UTC, at the start of the hour).
    pub hour: OffsetDateTime,
    /// Hours of the range finished before this one.
    pub hours_done: u64,
    /// Hours in the range.
    pub hours_total: u64,
    /// Totals so far, this object included.
    pub replayed: ReplayReport,
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("invalid replay range: {reason}")]
    InvalidRange { reason: String },
    #[error("listing `{prefix}` in bucket `{bucket}` failed: {reason}")]
    List {
        bucket: String,
        prefix: String,
        reason: String,
    },
    #[error("reading `{key}` from bucket `{bucket}` failed: {reason}")]
    Get {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("`{key}` is not an archive object: {reason}")]
    Decode { key: String, reason: String },
    #[error("`{key}` has archive version {version}; replay reads version {ARCHIVE_VERSION}")]
    UnknownVersion { key: String, version: u32 },
    #[error("`{key}` holds project `{project_id}`, not the project of its key")]
    ProjectMismatch { key: String, project_id: String },
    #[error("request {index} of `{key}` is malformed: {reason}")]
    MalformedRequest {
        key: String,
        index: u32,
        reason: String,
    },
    #[error("cannot split requests into `spans.raw` records: {0}")]
    Partitions(String),
    #[error("producing request {index} of `{key}` to `spans.raw` failed")]
    Produce {
        key: String,
        index: u32,
        #[source]
        source: KafkaError,
    },
}

/// How many hour prefixes are listed at once.
const LIST_CONCURRENCY: usize = 16;
/// How many objects are read ahead of the one being produced.
const FETCH_AHEAD: usize = 4;
/// How long the partition count of `spans.raw` may take to read.
const METADATA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long to wait before retrying a produce the full local queue refused.
const QUEUE_FULL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);

/// Replays the archived requests of `range` into `spans.raw` through `producer` (which must
/// be configured with `acks=all`; its `message.timeout.ms` bounds each delivery), calling
/// `progress` after each object. Objects are replayed hour by hour, in key order within an
/// hour, and each object's records are all acknowledged before the next object starts.
pub async fn replay(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    producer: &FutureProducer,
    range: ReplayRange,
    mut progress: impl FnMut(&ReplayProgress),
) -> Result<ReplayReport, ReplayError> {
    let until = range.until.unwrap_or_else(OffsetDateTime::now_utc);
    let hours = Hours::new(range.since, until)?;
    let projects = match range.project {
        Some(project) => {
            check_project(&project)?;
            vec![project]
        }
        None => list_projects(s3, bucket).await?,
    };
    let partitions = {
        let producer = producer.clone();
        tokio::task::spawn_blocking(move || {
            use rdkafka::producer::Producer as _;
            crate::gateway::batch::partition_count(producer.client(), METADATA_TIMEOUT)
        })
        .await
        .map_err(|e| ReplayError::Partitions(e.to_string()))?
        .map_err(ReplayError::Partitions)?
    };
    let mut report = ReplayReport::default();
    for (done, hour) in hours.iter().enumerate() {
        let prefixes = projects.iter().map(|project| hour_prefix(project, hour));
        let keys: Vec<Vec<String>> = futures::stream::iter(prefixes)
            .map(|prefix| list_keys(s3, bucket, prefix))
            .buffered(LIST_CONCURRENCY)
            .try_collect()
            .await?;
        let mut objects = futures::stream::iter(keys.into_iter().flatten())
            .map(|key| fetch(s3, bucket, key))
            .buffered(FETCH_AHEAD);
        while let Some(fetched) = objects.next().await {
            let (key, object) = fetched?;
            let made = split(bucket, &key, &object, partitions)?;
            produce(producer, &key, &made.records).await?;
            report.objects += 1;
            report.requests += made.requests;
            report.spans += made.spans;
            report.records += made.records.len() as u64;
            progress(&ReplayProgress {
                key,
                hour,
                hours_done: done as u64,
                hours_total: hours.count,
                replayed: report,
            });
        }
    }
    Ok(report)
}

/// Produces the records in order, then waits for every acknowledgement.
async fn produce(
    producer: &FutureProducer,
    key: &str,
    records: &[(u32, Record)],
) -> Result<(), ReplayError> {
    let failed = |index: u32, source: KafkaError| ReplayError::Produce {
        key: key.to_owned(),
        index,
        source,
    };
    let mut deliveries = Vec::with_capacity(records.len());
    for (index, record) in records {
        // Enqueued one by one, so records of one trace keep their order on the partition.
        let mut next = FutureRecord::to(SPANS_RAW.name)
            .key(&record.key)
            .payload(&record.payload);
        let delivery = loop {
            match producer.send_result(next) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    next = back;
                    tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
                }
                Err((e, _)) => return Err(failed(*index, e)),
            }
        };
        deliveries.push((*index, delivery));
    }
    for (index, delivery) in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(failed(index, e)),
            Err(_) => return Err(failed(index, KafkaError::Canceled)),
        }
    }
    Ok(())
}

/// Reads and decodes one object.
async fn fetch(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: String,
) -> Result<(String, ArchiveObject), ReplayError> {
    let failed = |reason: String| ReplayError::Get {
        bucket: bucket.to_owned(),
        key: key.clone(),
        reason,
    };
    let output = s3
        .get_object()
        .bucket(bucket)
        .key(&key)
        .send()
        .await
        .map_err(|e| failed(DisplayErrorContext(e).to_string()))?;
    let bytes = output
        .body
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .into_bytes();
    let object = decode(&key, bytes)?;
    Ok((key, object))
}

/// Every key under `prefix`, in key order, over as many pages as it takes.
async fn list_keys(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: String,
) -> Result<Vec<String>, ReplayError> {
    let mut keys = Vec::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ReplayError::List {
            bucket: bucket.to_owned(),
            prefix: prefix.clone(),
            reason: DisplayErrorContext(e).to_string(),
        })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    Ok(keys)
}

/// The projects with an archive: the "folders" directly under `raw/`, in name order.
///
/// Read from the common prefixes; keys are read too, for stores that ignore the delimiter
/// (s3s-fs, the local stack's, lists every key under the prefix instead).
async fn list_projects(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Vec<String>, ReplayError> {
    let mut projects = std::collections::BTreeSet::new();
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(ARCHIVE_ROOT)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ReplayError::List {
            bucket: bucket.to_owned(),
            prefix: ARCHIVE_ROOT.to_owned(),
            reason: DisplayErrorContext(e).to_string(),
        })?;
        let prefixes = page.common_prefixes().iter().filter_map(|p| p.prefix());
        let keys = page.contents().iter().filter_map(|o| o.key());
        projects.extend(
            prefixes
                .chain(keys)
                .filter_map(project_of)
                .map(str::to_owned),
        );
    }
    Ok(projects.into_iter().collect())
}
