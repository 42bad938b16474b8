//! The gateway's errors and their one mapping to HTTP statuses and gRPC codes.

use spindle_platform::api_keys::AuthError;
use spindle_platform::entitlements::LimitError;

/// Why an export was not accepted. Nothing was written when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("unsupported content type `{0}`: send `application/x-protobuf` or `application/json`")]
    UnsupportedMediaType(String),
    #[error("unsupported content encoding `{0}`: send `gzip`, `zstd` or no encoding")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body over the limit of {limit} bytes{}", if *.decompressed { " after decompression" } else { "" })]
    PayloadTooLarge { limit: usize, decompressed: bool },
    #[error("{0}")]
    Auth(AuthError),
    #[error("{0}")]
    Limit(LimitError),
    #[error(
        "the gateway is at its in-flight limit of {limit_bytes} bytes; retry in {retry_after_secs} s"
    )]
    Overloaded {
        limit_bytes: usize,
        retry_after_secs: u64,
    },
    #[error("{what} is unavailable, nothing was accepted: {reason}")]
    Unavailable { what: &'static str, reason: String },
}

impl GatewayError {
    /// The HTTP status this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            GatewayError::UnsupportedMediaType(_) | GatewayError::UnsupportedEncoding(_) => 415,
            GatewayError::BadRequest(_) => 400,
            GatewayError::PayloadTooLarge { .. } => 413,
            GatewayError::Auth(AuthError::Revoked { .. } | AuthError::MissingScope { .. }) => 403,
            GatewayError::Auth(AuthError::Unavailable(_)) => 503,
            GatewayError::Auth(_) => 401,
            GatewayError::Limit(LimitError::Unavailable(_)) => 503,
            GatewayError::Limit(_) => 429,
            GatewayError::Overloaded { .. } | GatewayError::Unavailable { .. } => 503,
        }
    }

    /// The gRPC code this error is answered with (OTLP/gRPC: only UNAVAILABLE and
    /// RESOURCE_EXHAUSTED are retried by clients).
    pub fn grpc_code(&self) -> tonic::Code {
        if let GatewayError::UnsupportedEncoding(_) = self {
            // What gRPC specifies for a compression the server does not support.
            return tonic::Code::Unimplemented;
        }
        match self.http_status() {
            400 | 413 | 415 => tonic::Code::InvalidArgument,
            401 => tonic::Code::Unauthenticated,
            403 => tonic::Code::PermissionDenied,
            429 => tonic::Code::ResourceExhausted,
            _ => tonic::Code::Unavailable,
        }
    }

    /// Seconds a client should wait before retrying, for retryable errors.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            GatewayError::Limit(LimitError::RateLimited {
                retry_after_secs, ..
            })
            | GatewayError::Limit(LimitError::QuotaExhausted {
                retry_after_secs, ..
            })
            | GatewayError::Overloaded {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            GatewayError::Unavailable { .. }
            | GatewayError::Auth(AuthError::Unavailable(_))
            | GatewayError::Limit(LimitError::Unavailable(_)) => Some(1),
            _ => None,
        }
    }

    /// The metric label for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            GatewayError::UnsupportedMediaType(_) => "unsupported_media_type",
            GatewayError::UnsupportedEncoding(_) => "unsupported_encoding",
            GatewayError::BadRequest(_) => "bad_request",
            GatewayError::PayloadTooLarge { .. } => "too_large",
            GatewayError::Auth(AuthError::Unavailable(_)) => "auth_unavailable",
            GatewayError::Auth(_) => "unauthorized",
            GatewayError::Limit(LimitError::RateLimited { .. }) => "rate_limited",
            GatewayError::Limit(LimitError::QuotaExhausted { .. }) => "quota_exhausted",
            GatewayError::Limit(LimitError::Unavailable(_)) => "limits_unavailable",
            GatewayError::Overloaded { .. } => "overloaded",
            GatewayError::Unavailable { .. } => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_otlp() {
        let revoked = GatewayError::Auth(AuthError::Revoked {
            key_prefix: "spk_1".into(),
        });
        assert_eq!(revoked.http_status(), 403);
        assert_eq!(revoked.grpc_code(), tonic::Code::PermissionDenied);
        assert_eq!(GatewayError::Auth(AuthError::Missing).http_status(), 401);
        let quota = GatewayError::Limit(LimitError::QuotaExhausted {
            project_id: "p".into(),
            quota: 10,
            used: 10,
            resets_on: "2026-12-01".into(),
            retry_after_secs: 60,
        });
        assert_eq!(quota.http_status(), 429);
        assert_eq!(quota.retry_after_secs(), Some(60));
        assert!(quota.to_string().contains("monthly quota of 10 spans"));
        let down = GatewayError::Unavailable {
            what: "kafka",
            reason: "timed out".into(),
        };
        assert_eq!(
            (down.http_status(), down.retry_after_secs()),
            (503, Some(1))
        );
        assert_eq!(down.grpc_code(), tonic::Code::Unavailable);
        let brotli = GatewayError::UnsupportedEncoding("br".into());
        assert_eq!(
            (brotli.http_status(), brotli.grpc_code()),
            (415, tonic::Code::Unimplemented)
        );
        let big = GatewayError::PayloadTooLarge {
            limit: 10,
            decompressed: true,
        };
        assert_eq!(
            big.to_string(),
            "request body over the limit of 10 bytes after decompression"
        );
    }
}
