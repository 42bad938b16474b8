//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! The unary call is served by hand over the HTTP/2 stream tonic's server hands over, instead
//! of through the generated `TraceServiceServer` and tonic's codec. The request's one
//! length-prefixed message is taken out of its DATA frames as it is: when a frame holds the
//! whole message (frames are up to [`MAX_FRAME`]), the message is a slice of the frame, with no
//! copy and no protobuf decode, and it takes the same wire-level fast path as OTLP/HTTP. The
//! response is one data frame and the `grpc-status` trailers.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::OwnedSemaphorePermit;
use tonic::Status;
use tonic::codegen::{BoxFuture, http};
use tonic::server::NamedService;

use super::{Accepted, Gateway, GatewayError, Transport};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The largest HTTP/2 frame a client may send. A typical export (a few hundred KiB) then
/// arrives in one DATA frame, which becomes the message without being copied.
pub(crate) const MAX_FRAME: u32 = 1 << 20;

/// The gRPC message prefix: a compressed flag and a big-endian length.
const PREFIX: usize = 5;

/// The request encodings served, as `grpc-accept-encoding` lists them.
const ACCEPTED_ENCODINGS: &str = "gzip,zstd";

/// The gRPC service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub(crate) struct TraceService {
    gateway: Gateway,
}

pub(crate) fn service(gateway: Gateway) -> TraceService {
    TraceService { gateway }
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        if request.uri().path() != EXPORT {
            let status = Status::unimplemented(format!(
                "`{}` is not served here; OTLP/gRPC is `{EXPORT}`",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let gateway = self.gateway.clone();
        Box::pin(async move {
            let result = handle(&gateway, request).await;
            let code = match &result {
                Ok(_) => "0".to_owned(),
                Err(e) => (e.grpc_code() as i32).to_string(),
            };
            metrics::counter!("spindle_gateway_requests_total", "transport" => "grpc", "status" => code)
                .increment(1);
            Ok(match result {
                Ok(accepted) => success(&accepted),
                Err(error) => failure(&error),
            })
        })
    }
}

async fn handle(
    gateway: &Gateway,
    request: http::Request<tonic::body::Body>,
) -> Result<Accepted, GatewayError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // gRPC metadata are HTTP/2 headers: the key is read as OTLP/HTTP reads it.
    let principal = gateway.authorize(super::http::api_key(headers)).await?;
    let encoding = match headers.get("grpc-encoding").map(|v| v.to_str()) {
        None => "identity".to_owned(),
        Some(Ok(v)) => v.trim().to_ascii_lowercase(),
        Some(Err(_)) => String::from("(not ASCII)"),
    };
    if !super::http::is_supported_encoding(&encoding) {
        return Err(GatewayError::UnsupportedEncoding(encoding));
    }
    let limit = gateway.config().max_request_bytes;
    let Unary {
        compressed,
        bytes,
        _permit,
    } = read_message(body, limit, |bytes| gateway.reserve(bytes)).await?;
    metrics::counter!("spindle_gateway_bytes_total", "transport" => "grpc")
        .increment(bytes.len() as u64);
    let (body, _decompressed_permit) = if compressed {
        if matches!(encoding.as_str(), "" | "identity") {
            return Err(GatewayError::BadRequest(
                "the message is flagged compressed, but the request has no `grpc-encoding`"
                    .to_owned(),
            ));
        }
        let body = super::http::decompress(&encoding, bytes, limit)?;
        let permit = gateway.reserve(body.len())?;
        (body, Some(permit))
    } else {
        (bytes, None)
    };
    gateway.ingest(&principal, Transport::Grpc, body).await
}

/// The one message of a unary request.
#[derive(Debug)]
struct Unary {
    compressed: bool,
    bytes: Bytes,
    /// Room reserved for the message once its length was read, before its bytes were.
    _permit: Option<OwnedSemaphorePermit>,
}

/// Reads a unary request's one length-prefixed message. `reserve` is asked for room for the
/// message as soon as its length is known, so memory is accounted before the bytes arrive.
async fn read_message<B>(
    mut body: B,
    limit: usize,
    reserve: impl FnOnce(usize) -> Result<OwnedSemaphorePermit, GatewayError>,
) -> Result<Unary, GatewayError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut prefix = [0_u8; PREFIX];
    let mut prefix_len = 0;
    let mut reserve = Some(reserve);
    let mut permit = None;
    // The message's length, once the prefix has been read.
    let mut expected: Option<(bool, usize)> = None;
    let mut whole: Option<Bytes> = None;
    let mut parts = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| GatewayError::BadRequest(format!("cannot read the request: {e}")))?;
        let Ok(mut data) = frame.into_data() else {
            // Request trailers carry nothing for this call.
            continue;
        };
        if expected.is_none() {
            let take = (PREFIX - prefix_len).min(data.len());
            prefix[prefix_len..prefix_len + take].copy_from_slice(&data[..take]);
            prefix_len += take;
            data = data.slice(take..);
            if prefix_len < PREFIX {
                continue;
            }
            let compressed = match prefix[0] {
                0 => false,
                1 => true,
                flag => {
                    return Err(GatewayError::BadRequest(format!(
                        "invalid gRPC message flag {flag}: expected 0 or 1"
                    )));
                }
            };
            let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
            if len > limit {
                return Err(GatewayError::PayloadTooLarge {
                    limit,
                    decompressed: false,
                });
            }
            if let Some(reserve) = reserve.take() {
                permit = Some(reserve(len)?);
            }
            expected = Some((compressed, len));
            if data.len() >= len {
                // The usual case with large frames: the frame holds the whole message.
                whole = Some(data.split_to(len));
            } else {
                parts.reserve(len);
            }
        }
        let Some((_, len)) = expected else {
            continue;
        };
        if whole.is_none() && !data.is_empty() {
            let take = (len - parts.len()).min(data.len());
            parts.put_slice(&data[..take]);
            data = data.slice(take..);
            if parts.len() == len {
                whole = Some(std::mem::take(&mut parts).freeze());
            }
        }
        if !data.is_empty() {
            return Err(GatewayError::BadRequest(
                "the request holds more than one message; `Export` is a unary call".to_owned(),
            ));
        }
    }
    match (expected, whole) {
        (Some((compressed, _)), Some(bytes)) => Ok(Unary {
            compressed,
            bytes,
            _permit: permit,
        }),
        (Some((_, len)), None) => Err(GatewayError::BadRequest(format!(
            "the request ended after {} of the message's {len} bytes",
            parts.len()
        ))),
        (None, _) if prefix_len == 0 => Err(GatewayError::BadRequest(
            "the request holds no message".to_owned(),
        )),
        (None, _) => Err(GatewayError::BadRequest(format!(
            "the request ended inside the message prefix ({prefix_len} of {PREFIX} bytes)"
        ))),
    }
}

/// `ExportTraceServiceResponse` as one uncompressed message, then `grpc-status: 0`.
fn success(accepted: &Accepted) -> http::Response<tonic::body::Body> {
    let response = ExportTraceServiceResponse {
        partial_success: (accepted.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(accepted.rejected_spans).unwrap_or(i64::MAX),
            error_message: accepted.message.clone(),
        }),
    };
    let len = response.encoded_len();
    let mut frame = BytesMut::with_capacity(PREFIX + len);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(len).expect("a response is far below 4 GiB"));
    response
        .encode(&mut frame)
        .expect("the buffer was sized for the message");
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let body =
        http_body_util::Full::new(frame.freeze()).with_trailers(async move { Some(Ok(trailers)) });
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

/// A trailers-only response carrying the error's code and message.
fn failure(error: &GatewayError) -> http::Response<tonic::body::Body> {
    if matches!(error.grpc_code(), tonic::Code::Unavailable) {
        tracing::warn!(error = %error, "export refused");
    } else {
        tracing::debug!(error = %error, "export refused");
    }
    let mut status = Status::new(error.grpc_code(), error.to_string());
    if let Some(secs) = error.retry_after_secs()
        && let Ok(value) = secs.to_string().parse()
    {
        status.metadata_mut().insert("retry-after", value);
    }
    if matches!(error, GatewayError::UnsupportedEncoding(_)) {
        status.metadata_mut().insert(
            "grpc-accept-encoding",
            tonic::metadata::MetadataValue::from_static(ACCEPTED_ENCODINGS),
        );
    }
    status.into_http()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::StreamBody;
    use tokio::sync::Semaphore;

    use super::*;

    type Frames =
        futures::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, Infallible>>>;

    /// A request body arriving as these DATA frames.
    fn frames(chunks: Vec<Vec<u8>>) -> StreamBody<Frames> {
        let frames: Vec<_> = chunks
            .into_iter()
            .map(|c| Ok(http_body::Frame::data(Bytes::from(c))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    fn prefixed(compressed: bool, message: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::from(compressed)];
        out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        out.extend_from_slice(message);
        out
    }

    async fn read(chunks: Vec<Vec<u8>>, limit: usize) -> Result<Unary, GatewayError> {
        let room = Arc::new(Semaphore::new(1 << 20));
        read_message(frames(chunks), limit, |bytes| {
            Ok(room
                .clone()
                .try_acquire_many_owned(u32::try_from(bytes).unwrap())
                .expect("room"))
        })
        .await
    }

    #[tokio::test]
    async fn a_message_in_one_frame_is_that_frame() {
        let message: Vec<u8> = (0..=255).collect();
        let unary = read(vec![prefixed(false, &message)], 1000).await.unwrap();
        assert!(!unary.compressed);
        assert_eq!(unary.bytes, message);
    }

    #[tokio::test]
    async fn a_message_split_anywhere_is_put_together() {
        let message: Vec<u8> = (0..100_u8).collect();
        let whole = prefixed(true, &message);
        // Splits inside the prefix, at its end, and inside the message.
        for cuts in [vec![2, 5, 40], vec![1, 2, 3, 4, 5], vec![5], vec![60, 61]] {
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([whole.len()]) {
                chunks.push(whole[from..cut].to_vec());
                from = cut;
            }
            chunks.push(Vec::new());
            let unary = read(chunks, 1000).await.unwrap();
            assert!(unary.compressed);
            assert_eq!(unary.bytes, message);
        }
    }

    #[tokio::test]
    async fn an_empty_message_is_a_message() {
        let unary = read(vec![prefixed(false, b"")], 10).await.unwrap();
        assert!(unary.bytes.is_empty());
    }

    #[tokio::test]
    async fn malformed_requests_say_what_is_wrong() {
        let error = |chunks: Vec<Vec<u8>>| async move {
            match read(chunks, 100).await {
                Err(GatewayError::BadRequest(m)) => m,
                other => panic!("expected a bad request, got {other:?}"),
            }
        };
        assert_eq!(error(vec![]).await, "the request holds no message");
        assert_eq!(
            error(vec![vec![0, 0, 0]]).await,
            "the request ended inside the message prefix (3 of 5 bytes)"
        );
        assert_eq!(
            error(vec![vec![0, 0, 0, 0, 10, 1, 2, 3]]).await,
            "the request ended after 3 of the message's 10 bytes"
        );
        assert_eq!(
            error(vec![vec![2, 0, 0, 0, 1, 7]]).await,
            "invalid gRPC message flag 2: expected 0 or 1"
        );
        let mut two = prefixed(false, b"ab");
        two.extend(prefixed(false, b"cd"));
        assert_eq!(
            error(vec![two]).await,
            "the request holds more than one message; `Export` is a unary call"
        );
        assert_eq!(
            error(vec![prefixed(false, b"ab"), vec![0]]).await,
            "the request holds more than one message; `Export` is a unary call"
        );
    }

    #[tokio::test]
    async fn oversize_messages_are_refused_before_they_are_read() {
        let mut reserved = false;
        let result = read_message(frames(vec![vec![0, 0, 0, 4, 1]]), 1000, |_| {
            reserved = true;
            Err(GatewayError::BadRequest("unreachable".into()))
        })
        .await;
        assert!(matches!(
            result,
            Err(GatewayError::PayloadTooLarge {
                limit: 1000,
                decompressed: false
            })
        ));
        assert!(
            !reserved,
            "no room is reserved for a message over the limit"
        );
    }

    #[tokio::test]
    async fn responses_are_one_message_and_a_status() {
        let response = success(&Accepted {
            accepted_spans: 1,
            rejected_spans: 2,
            message: "two spans had no id".into(),
        });
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let collected = response.into_body().collect().await.unwrap();
        assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        let bytes = collected.to_bytes();
        assert_eq!(bytes[0], 0);
        let len = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - PREFIX);
        let decoded = ExportTraceServiceResponse::decode(&bytes[PREFIX..]).unwrap();
        let partial = decoded.partial_success.unwrap();
        assert_eq!(partial.rejected_spans, 2);
        assert_eq!(partial.error_message, "two spans had no id");
    }
}
