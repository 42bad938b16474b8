//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! The service is written out instead of using the generated `TraceServiceServer`, so the
//! request reaches the gateway as its protobuf bytes (the codec below) and takes the same
//! wire-level fast path as OTLP/HTTP instead of a full decode and re-encode.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{Accepted, Gateway, GatewayError, Transport};

const EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The gRPC service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub(crate) struct TraceService {
    gateway: Gateway,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_request_bytes: usize,
}

pub(crate) fn service(gateway: Gateway) -> TraceService {
    let mut accept = EnabledCompressionEncodings::default();
    accept.enable(CompressionEncoding::Gzip);
    accept.enable(CompressionEncoding::Zstd);
    let mut send = EnabledCompressionEncodings::default();
    send.enable(CompressionEncoding::Gzip);
    TraceService {
        max_request_bytes: gateway.config().max_request_bytes,
        gateway,
        accept,
        send,
    }
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<B> tonic::codegen::Service<http::Request<B>> for TraceService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT {
            let status = Status::unimplemented(format!(
                "`{}` is not served here; OTLP/gRPC is `{EXPORT}`",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let this = self.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(this.accept, this.send)
                .apply_max_message_size_config(Some(this.max_request_bytes), None);
            Ok(grpc.unary(Export(this.gateway), request).await)
        })
    }
}

struct Export(Gateway);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let gateway = self.0.clone();
        Box::pin(async move {
            let result = handle(&gateway, request).await;
            let code = match &result {
                Ok(_) => "0".to_owned(),
                Err(e) => (e.grpc_code() as i32).to_string(),
            };
            metrics::counter!("spindle_gateway_requests_total", "transport" => "grpc", "status" => code)
                .increment(1);
            match result {
                Ok(accepted) => Ok(Response::new(ExportTraceServiceResponse {
                    partial_success: (accepted.rejected_spans > 0).then(|| {
                        ExportTracePartialSuccess {
                            rejected_spans: i64::try_from(accepted.rejected_spans)
                                .unwrap_or(i64::MAX),
                            error_message: accepted.message,
                        }
                    }),
                })),
                Err(error) => {
                    let mut status = Status::new(error.grpc_code(), error.to_string());
                    if let Some(secs) = error.retry_after_secs()
                        && let Ok(value) = secs.to_string().parse()
                    {
                        status.metadata_mut().insert("retry-after", value);
                    }
                    Err(status)
                }
            }
        })
    }
}

async fn handle(gateway: &Gateway, request: Request<Bytes>) -> Result<Accepted, GatewayError> {
    let metadata = request.metadata();
    let key = metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().strip_prefix("Bearer ").unwrap_or(v).trim())
        .or_else(|| metadata.get("x-api-key").and_then(|v| v.to_str().ok()));
    let principal = gateway.authorize(key).await?;
    let body = request.into_inner();
    metrics::counter!("spindle_gateway_bytes_total", "transport" => "grpc")
        .increment(body.len() as u64);
    let _permit = gateway.reserve(body.len())?;
    gateway.ingest(&principal, Transport::Grpc, body).await
}

/// Requests as raw bytes, responses as prost messages.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        let len = buf.remaining();
        Ok(Some(buf.copy_to_bytes(len)))
    }
}
