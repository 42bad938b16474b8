//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::{Gateway, GatewayError, Transport};

pub(crate) fn service(gateway: Gateway) -> TraceServiceServer<Otlp> {
    let limit = gateway.config().max_request_bytes;
    TraceServiceServer::new(Otlp { gateway })
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit)
}

pub(crate) struct Otlp {
    gateway: Gateway,
}

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let result = self.handle(request).await;
        let status = match &result {
            Ok(_) => "0".to_owned(),
            Err(e) => (e.grpc_code() as i32).to_string(),
        };
        metrics::counter!("spindle_gateway_requests_total", "transport" => "grpc", "status" => status)
            .increment(1);
        match result {
            Ok(accepted) => Ok(Response::new(ExportTraceServiceResponse {
                partial_success: (accepted.rejected_spans > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(accepted.rejected_spans).unwrap_or(i64::MAX),
                    error_message: accepted.message,
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
    }
}

impl Otlp {
    async fn handle(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<super::Accepted, GatewayError> {
        let metadata = request.metadata();
        let key = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().strip_prefix("Bearer ").unwrap_or(v).trim())
            .or_else(|| metadata.get("x-api-key").and_then(|v| v.to_str().ok()));
        let principal = self.gateway.authorize(key).await?;
        let request = request.into_inner();
        let size = request.encoded_len();
        metrics::counter!("spindle_gateway_bytes_total", "transport" => "grpc")
            .increment(size as u64);
        let _permit = self.gateway.reserve(size)?;
        self.gateway
            .ingest(&principal, Transport::Grpc, request, None)
            .await
    }
}
