//! OTLP/HTTP: `POST /v1/traces` with protobuf or JSON bodies, optionally gzip or zstd encoded.
//! Responses use the request's encoding; errors carry a `google.rpc.Status` as OTLP asks.

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;

use super::{Accepted, Gateway, GatewayError, Transport, json};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

pub(crate) fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(gateway)
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

async fn export(State(gateway): State<Gateway>, headers: HeaderMap, body: Body) -> Response {
    let format = format_of(&headers);
    let transport = match format {
        Ok(Format::Json) => Transport::HttpJson,
        _ => Transport::HttpProtobuf,
    };
    let reply_format = format.as_ref().map_or(Format::Json, |f| *f);
    let result = handle(&gateway, &headers, body, format).await;
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.http_status(),
    };
    metrics::counter!("spindle_gateway_requests_total", "transport" => transport.as_str(), "status" => status.to_string())
        .increment(1);
    match result {
        Ok(accepted) => success(reply_format, &accepted),
        Err(error) => failure(reply_format, &error),
    }
}

async fn handle(
    gateway: &Gateway,
    headers: &HeaderMap,
    body: Body,
    format: Result<Format, GatewayError>,
) -> Result<Accepted, GatewayError> {
    let principal = gateway.authorize(api_key(headers)).await?;
    let format = format?;
    let limit = gateway.config().max_request_bytes;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !is_supported_encoding(&encoding) {
        return Err(GatewayError::UnsupportedEncoding(encoding));
    }
    // With a length (`Content-Length`, which hyper has checked), room is reserved before the
    // body is read, so a gateway at its in-flight limit sheds the request without buffering
    // it. A chunked body is counted once read.
    let declared = http_body::Body::size_hint(&body)
        .exact()
        .and_then(|len| usize::try_from(len).ok());
    let reserved = match declared {
        Some(len) if len > limit => Err(GatewayError::PayloadTooLarge {
            limit,
            decompressed: false,
        }),
        Some(len) => gateway.reserve(len).map(Some),
        None => Ok(None),
    };
    let _declared_permit = match reserved {
        Ok(permit) => permit,
        Err(error) => {
            discard(body, limit).await;
            return Err(error);
        }
    };
    let wire = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            GatewayError::PayloadTooLarge {
                limit,
                decompressed: false,
            }
        } else {
            GatewayError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })?;
    metrics::counter!("spindle_gateway_bytes_total", "transport" => if format == Format::Json { "http/json" } else { "http/protobuf" })
        .increment(wire.len() as u64);
    let compressed = !matches!(encoding.as_str(), "" | "identity");
    let body = decompress(&encoding, wire, limit)?;
    let _permit = if declared.is_none() || compressed {
        Some(gateway.reserve(body.len())?)
    } else {
        None
    };
    let (body, transport) = match format {
        Format::Protobuf => (body, Transport::HttpProtobuf),
        Format::Json => {
            let request = json::decode(&body).map_err(GatewayError::BadRequest)?;
            (Bytes::from(request.encode_to_vec()), Transport::HttpJson)
        }
    };
    gateway.ingest(&principal, transport, body).await
}

/// The API key from `Authorization: Bearer <key>` or `x-api-key`.
pub(crate) fn api_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        return Some(
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
                .trim(),
        );
    }
    headers.get("x-api-key").and_then(|v| v.to_str().ok())
}

/// How long a refused body is read and dropped before the answer goes out.
const DISCARD_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads and drops a refused body, for up to `limit` bytes or [`DISCARD_FOR`], without keeping
/// any of it. A client still sending its body would otherwise find the connection closed under
/// it and might see a reset instead of the answer.
async fn discard(mut body: Body, limit: usize) {
    use http_body_util::BodyExt as _;
    let _ = tokio::time::timeout(DISCARD_FOR, async {
        let mut read = 0;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len());
            if read > limit {
                break;
            }
        }
    })
    .await;
}

fn format_of(headers: &HeaderMap) -> Result<Format, GatewayError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        PROTOBUF => Ok(Format::Protobuf),
        JSON => Ok(Format::Json),
        _ => Err(GatewayError::UnsupportedMediaType(content_type.to_owned())),
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Whether a request's content encoding (lowercased; empty when absent) is one
/// [`decompress`] reads: the same set over OTLP/HTTP and OTLP/gRPC.
pub(crate) fn is_supported_encoding(encoding: &str) -> bool {
    matches!(encoding, "" | "identity" | "gzip" | "zstd")
}

/// Decompresses with a hard cap on the output, so a small bomb cannot grow past `limit`.
pub(crate) fn decompress(encoding: &str, wire: Bytes, limit: usize) -> Result<Bytes, GatewayError> {
    let reader: Box<dyn Read + '_> = match encoding {
        "gzip" => Box::new(flate2::read::GzDecoder::new(&wire[..])),
        "zstd" => Box::new(
            zstd::stream::read::Decoder::new(&wire[..])
                .map_err(|e| GatewayError::BadRequest(format!("invalid zstd body: {e}")))?,
        ),
        _ => return Ok(wire),
    };
    let mut out = Vec::with_capacity(wire.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| GatewayError::BadRequest(format!("invalid {encoding} body: {e}")))?;
    if out.len() > limit {
        return Err(GatewayError::PayloadTooLarge {
            limit,
            decompressed: true,
        });
    }
    Ok(Bytes::from(out))
}

fn success(format: Format, accepted: &Accepted) -> Response {
    let response = ExportTraceServiceResponse {
        partial_success: (accepted.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(accepted.rejected_spans).unwrap_or(i64::MAX),
            error_message: accepted.message.clone(),
        }),
    };
    let (content_type, body) = match format {
        Format::Protobuf => (PROTOBUF, response.encode_to_vec()),
        Format::Json => (JSON, json::encode(&response)),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn failure(format: Format, error: &GatewayError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(error = %error, "export refused");
    } else {
        tracing::debug!(error = %error, "export refused");
    }
    let rpc = RpcStatus {
        code: error.grpc_code() as i32,
        message: error.to_string(),
    };
    let (content_type, body) = match format {
        Format::Protobuf => (PROTOBUF, rpc.encode_to_vec()),
        Format::Json => (JSON, serde_json::to_vec(&rpc).expect("status serializes")),
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], body).into_response();
    if let Some(secs) = error.retry_after_secs() {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_str(&secs.to_string()).expect("digits are a valid header"),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_keys_are_read_from_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert_eq!(format_of(&headers).ok(), Some(Format::Json));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(
            matches!(format_of(&headers), Err(GatewayError::UnsupportedMediaType(t)) if t == "text/plain")
        );
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer spk_1_2"),
        );
        assert_eq!(api_key(&headers), Some("spk_1_2"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static("spk_3_4"));
        assert_eq!(api_key(&headers), Some("spk_3_4"));
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0_u8; 10 << 20]).expect("gzip");
        let bomb = Bytes::from(gz.finish().expect("gzip"));
        assert!(bomb.len() < 20_000);
        assert!(matches!(
            decompress("gzip", bomb.clone(), 1 << 20),
            Err(GatewayError::PayloadTooLarge {
                decompressed: true,
                ..
            })
        ));
        assert_eq!(
            decompress("gzip", bomb, 11 << 20).map(|b| b.len()).ok(),
            Some(10 << 20)
        );
        assert!(matches!(
            decompress("gzip", Bytes::from_static(b"not gzip"), 100),
            Err(GatewayError::BadRequest(m)) if m.starts_with("invalid gzip body")
        ));
    }
}
