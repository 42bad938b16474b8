//! Group commit of accepted requests to the S3 archive.
//!
//! Requests arriving within `window` share one object per project under
//! `raw/<project>/<yyyy>/<mm>/<dd>/<hh>/<batch-id>.pb` (an
//! [`ArchiveObject`](spindle_schemas::raw::ArchiveObject): the list of
//! requests is the index replay walks). Each caller gets the object key and its index once the
//! PUT succeeded, or the error; a window is flushed while the next one fills.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use bytes::{Bytes, BytesMut};
use prost::Message;
use spindle_schemas::raw::{ARCHIVE_VERSION, ArchivePointer, ArchivedRequest};
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

/// The name of the archiver's thread (what `/proc/<pid>/task/*/comm` shows): the load
/// generator reads its CPU time apart from the rest of the gateway's.
pub const THREAD_NAME: &str = "s3-archiver";

impl Archiver {
    /// Starts the flushing task on a thread and runtime of its own, so the S3 writes (the
    /// SDK, the object's checksum, sending it) are measured, and scheduled, apart from the
    /// requests' decode → auth → produce path. The receiver completes once every handle was
    /// dropped and the last window is written.
    pub(crate) fn start(
        s3: aws_sdk_s3::Client,
        settings: ArchiveSettings,
    ) -> std::io::Result<(Self, oneshot::Receiver<()>)> {
        let (tx, rx) = mpsc::channel(4096);
        let (done, finished) = oneshot::channel();
        // The runtime is built on its thread (a runtime must not be dropped in an async
        // context, as it would be here if the thread failed to start), which reports back.
        let (started, start) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = started.send(Err(e));
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                runtime.block_on(run(s3, settings, rx));
                let _ = done.send(());
            })?;
        start.recv().map_err(|_| {
            std::io::Error::other("the archiver's thread ended before it started")
        })??;
        Ok((Self { tx }, finished))
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
        let object = ObjectBody::new(&workspace_id, &project_id, &requests);
        let started = Instant::now();
        let put = s3
            .put_object()
            .bucket(&settings.bucket)
            .key(&key)
            .content_type("application/x-protobuf")
            .content_length(i64::try_from(object.len).unwrap_or(i64::MAX))
            // Computed here, so the SDK neither buffers the body nor hashes it again.
            .checksum_crc32(object.crc32())
            .body(object.into_stream())
            .customize()
            // The body's CRC32 checksum guards integrity; signing the payload too would hash
            // every archived byte with SHA-256 (8 % of the gateway's CPU).
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

/// An [`ArchiveObject`](spindle_schemas::raw::ArchiveObject)'s encoding as chunks: the framing, and between it the requests' own
/// bytes, so writing an object copies none of them into one buffer first. The bytes are
/// exactly what `ArchiveObject::encode_to_vec` writes (tested).
#[derive(Debug, Clone)]
struct ObjectBody {
    chunks: Arc<[Bytes]>,
    len: u64,
}

impl ObjectBody {
    fn new(workspace_id: &str, project_id: &str, requests: &[ArchivedRequest]) -> Self {
        use bytes::BufMut as _;
        use prost::encoding::{WireType, encode_key, encode_varint, fixed64, uint32};
        // Proto3 leaves out fields holding their default value, as prost does.
        fn put_len(out: &mut BytesMut, number: u32, len: usize) {
            encode_key(number, WireType::LengthDelimited, out);
            encode_varint(len as u64, out);
        }
        let mut framing = BytesMut::with_capacity(
            32 + workspace_id.len() + project_id.len() + requests.len() * 64,
        );
        let mut chunks = Vec::with_capacity(2 * requests.len() + 1);
        if ARCHIVE_VERSION != 0 {
            uint32::encode(1, &ARCHIVE_VERSION, &mut framing);
        }
        for (number, text) in [(2, workspace_id), (3, project_id)] {
            if !text.is_empty() {
                put_len(&mut framing, number, text.len());
                framing.put_slice(text.as_bytes());
            }
        }
        for request in requests {
            put_len(&mut framing, 4, request.encoded_len());
            if request.received_at_unix_nano != 0 {
                fixed64::encode(1, &request.received_at_unix_nano, &mut framing);
            }
            if !request.transport.is_empty() {
                put_len(&mut framing, 2, request.transport.len());
                framing.put_slice(request.transport.as_bytes());
            }
            if !request.request.is_empty() {
                // The request's own bytes follow as a chunk of their own.
                put_len(&mut framing, 3, request.request.len());
                chunks.push(framing.split().freeze());
                chunks.push(request.request.clone());
            }
        }
        if !framing.is_empty() {
            chunks.push(framing.freeze());
        }
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks: chunks.into(),
            len,
        }
    }

    /// The CRC32 of the body, base64-encoded as the `x-amz-checksum-crc32` header wants it.
    fn crc32(&self) -> String {
        use base64::Engine as _;
        let mut crc = crc32fast::Hasher::new();
        for chunk in self.chunks.iter() {
            crc.update(chunk);
        }
        base64::engine::general_purpose::STANDARD.encode(crc.finalize().to_be_bytes())
    }

    /// The body for the SDK; retries send the same chunks again.
    fn into_stream(self) -> ByteStream {
        ByteStream::new(SdkBody::retryable(move || {
            SdkBody::from_body_1_x(Chunks {
                chunks: self.chunks.clone(),
                next: 0,
                remaining: self.len,
            })
        }))
    }
}

/// An HTTP body yielding chunks in order, with its exact length.
struct Chunks {
    chunks: Arc<[Bytes]>,
    next: usize,
    remaining: u64,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let Some(chunk) = self.chunks.get(self.next).cloned() else {
            return std::task::Poll::Ready(None);
        };
        self.next += 1;
        self.remaining -= chunk.len() as u64;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.next == self.chunks.len()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
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
    fn object_bodies_are_what_prost_writes() {
        use spindle_schemas::raw::ArchiveObject;
        let request = |at: u64, transport: &str, bytes: &'static [u8]| ArchivedRequest {
            received_at_unix_nano: at,
            transport: transport.into(),
            request: Bytes::from_static(bytes),
        };
        let cases = [
            ("w1", "p1", vec![request(7, "grpc", b"\x0a\x02hi")]),
            (
                "w1",
                "p1",
                vec![
                    request(1_764_230_400_000_000_000, "http/protobuf", &[1; 300]),
                    request(0, "", b""),
                    request(5, "http/json", b""),
                    request(0, "grpc", &[2; 20_000]),
                ],
            ),
            ("", "", vec![]),
        ];
        for (workspace_id, project_id, requests) in cases {
            let body = ObjectBody::new(workspace_id, project_id, &requests);
            let object = ArchiveObject {
                version: ARCHIVE_VERSION,
                workspace_id: workspace_id.into(),
                project_id: project_id.into(),
                requests,
            };
            let bytes = body.chunks.concat();
            assert_eq!(bytes, object.encode_to_vec());
            assert_eq!(body.len, bytes.len() as u64);
        }
    }

    #[test]
    fn checksums_are_s3_crc32_headers() {
        let body = ObjectBody {
            chunks: vec![Bytes::from_static(b"1234"), Bytes::from_static(b"56789")].into(),
            len: 9,
        };
        // CRC32 of "123456789" is 0xcbf43926: big-endian bytes, base64.
        assert_eq!(body.crc32(), "y/Q5Jg==");
    }

    #[test]
    fn keys_follow_the_layout() {
        let at = time::macros::datetime!(2026-11-27 09:05 UTC);
        assert_eq!(object_key("p1", at, "0193"), "raw/p1/2026/11/27/09/0193.pb");
    }
}
