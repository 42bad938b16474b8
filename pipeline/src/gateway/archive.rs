//! Group commit of accepted requests to the S3 archive.
//!
//! Requests arriving within `window` share one object per project under
//! `raw/<project>/<yyyy>/<mm>/<dd>/<hh>/<batch-id>.pb` (an [`ArchiveObject`]: the list of
//! requests is the index replay walks). Each caller gets the object key and its index once the
//! PUT succeeded, or the error; a window is flushed while the next one fills.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use spindle_schemas::raw::{ARCHIVE_VERSION, ArchiveObject, ArchivePointer, ArchivedRequest};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// One request waiting to be archived.
struct Job {
    workspace_id: String,
    project_id: String,
    entry: ArchivedRequest,
    reply: oneshot::Sender<Result<ArchivePointer, String>>,
}

/// The handle requests use; the flushing task runs until every handle is dropped.
#[derive(Clone)]
pub(crate) struct Archiver {
    tx: mpsc::Sender<Job>,
}

/// Settings of the group commit.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveSettings {
    pub(crate) bucket: String,
    pub(crate) window: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) timeout: Duration,
}

impl Archiver {
    /// Starts the flushing task.
    pub(crate) fn start(
        s3: aws_sdk_s3::Client,
        settings: ArchiveSettings,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(run(s3, settings, rx));
        (Self { tx }, task)
    }

    /// Archives one request; returns where it is once it is durable in S3.
    pub(crate) async fn archive(
        &self,
        workspace_id: &str,
        project_id: &str,
        transport: &str,
        received_at_unix_nano: u64,
        request: Bytes,
    ) -> Result<ArchivePointer, String> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            workspace_id: workspace_id.to_owned(),
            project_id: project_id.to_owned(),
            entry: ArchivedRequest {
                received_at_unix_nano,
                transport: transport.to_owned(),
                request,
            },
            reply,
        };
        self.tx
            .send(job)
            .await
            .map_err(|_| "the archiver has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the archiver dropped the request".to_owned())?
    }
}

async fn run(s3: aws_sdk_s3::Client, settings: ArchiveSettings, mut rx: mpsc::Receiver<Job>) {
    let settings = Arc::new(settings);
    // At most this many windows are being written at once.
    let flushes = Arc::new(Semaphore::new(8));
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + settings.window;
        let mut bytes = first.entry.request.len();
        let mut jobs = vec![first];
        while bytes < settings.max_bytes {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => {
                    bytes += job.entry.request.len();
                    jobs.push(job);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let permit = flushes
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let s3 = s3.clone();
        let settings = settings.clone();
        tokio::spawn(async move {
            flush(&s3, &settings, jobs).await;
            drop(permit);
        });
    }
    // Wait for the last flushes before returning, so shutdown drains.
    let _ = flushes.acquire_many(8).await;
}

async fn flush(s3: &aws_sdk_s3::Client, settings: &ArchiveSettings, jobs: Vec<Job>) {
    let now = OffsetDateTime::now_utc();
    let mut by_project: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    for job in jobs {
        by_project
            .entry(job.project_id.clone())
            .or_default()
            .push(job);
    }
    let writes = by_project.into_values().map(|jobs| async move {
        let first = &jobs[0];
        let key = object_key(&first.project_id, now, &uuid::Uuid::now_v7().to_string());
        let workspace_id = first.workspace_id.clone();
        let project_id = first.project_id.clone();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut requests = Vec::with_capacity(jobs.len());
        for job in jobs {
            replies.push(job.reply);
            requests.push(job.entry);
        }
        let object = ArchiveObject {
            version: ARCHIVE_VERSION,
            workspace_id,
            project_id,
            requests,
        };
        let body = object.encode_to_vec();
        let started = Instant::now();
        let put = s3
            .put_object()
            .bucket(&settings.bucket)
            .key(&key)
            .content_type("application/x-protobuf")
            .body(body.into())
            .customize()
            // The body's CRC32 checksum (sent by default) guards integrity; signing the payload
            // too would hash every archived byte with SHA-256 (8 % of the gateway's CPU).
            .disable_payload_signing()
            .send();
        let result = match tokio::time::timeout(settings.timeout, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "S3 PUT `{key}` failed: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )),
            Err(_) => Err(format!(
                "S3 PUT `{key}` took longer than {} ms",
                settings.timeout.as_millis()
            )),
        };
        metrics::histogram!("spindle_gateway_s3_put_seconds")
            .record(started.elapsed().as_secs_f64());
        for (index, reply) in replies.into_iter().enumerate() {
            let answer = result.clone().map(|()| ArchivePointer {
                bucket: settings.bucket.clone(),
                key: key.clone(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
            });
            // The caller may have given up (client gone); nothing to do then.
            let _ = reply.send(answer);
        }
    });
    futures::future::join_all(writes).await;
}

/// `raw/<project>/<yyyy>/<mm>/<dd>/<hh>/<batch-id>.pb`, in UTC.
pub(crate) fn object_key(project_id: &str, at: OffsetDateTime, batch_id: &str) -> String {
    format!(
        "raw/{project_id}/{:04}/{:02}/{:02}/{:02}/{batch_id}.pb",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout() {
        let at = time::macros::datetime!(2026-11-27 09:05 UTC);
        assert_eq!(object_key("p1", at, "0193"), "raw/p1/2026/11/27/09/0193.pb");
    }
}
