//! The API's error codes: one closed set, mapped to GraphQL `extensions.code` in one place.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ErrorExtensions as _, ServerError, ServerResult, ValidationResult, Variables};

/// Why a request failed, as clients see it in `extensions.code`.
///
/// Deliberately not `Display`: async-graphql turns anything displayable into an error without
/// a code, so `?` on an `ApiError` must go through the `From` below, which adds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No credentials, or credentials that are not a key.
    Unauthenticated(String),
    /// Valid credentials without access to what was asked.
    Forbidden(String),
    /// A well-formed request with a value out of bounds (page size, cursor, time range…).
    BadUserInput(String),
    NotFound(String),
    /// A per-connection or per-request cap was reached.
    LimitExceeded(String),
    /// ClickHouse or Redis did not answer; retrying later may work.
    Unavailable(String),
    /// The request ran longer than `graphql.request_timeout_ms`.
    Timeout(u64),
    /// A bug: the message is logged with an id; the client sees only the id.
    Internal(String),
}

impl ApiError {
    /// What the client reads.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::BadUserInput(m)
            | ApiError::NotFound(m)
            | ApiError::LimitExceeded(m)
            | ApiError::Unavailable(m) => m.clone(),
            ApiError::Timeout(ms) => format!("the request took longer than {ms} ms"),
            ApiError::Internal(id) => format!("internal error (id `{id}`)"),
        }
    }

    /// The `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::LimitExceeded(_) => "LIMIT_EXCEEDED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Timeout(_) => "TIMEOUT",
            ApiError::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// A store failure: logged here once with an id the client can quote.
    pub fn store(error: &clickhouse::error::Error) -> Self {
        let id = uuid::Uuid::now_v7().simple().to_string();
        tracing::error!(error_id = %id, %error, "clickhouse query failed");
        match error {
            clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
                ApiError::Unavailable(format!("the trace store is unavailable (id `{id}`)"))
            }
            _ => ApiError::Internal(id),
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        async_graphql::Error::new(error.message()).extend_with(|_, e| e.set("code", error.code()))
    }
}

/// Gives the errors async-graphql raises itself (parse, validation, depth and complexity
/// limits) a code too, so every error a client sees carries one.
pub(crate) struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|mut error| {
            set_code(&mut error, "GRAPHQL_PARSE_FAILED");
            error
        })
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|mut errors| {
            for error in &mut errors {
                set_code(error, validation_code(&error.message));
            }
            errors
        })
    }
}

fn validation_code(message: &str) -> &'static str {
    if message.contains("nested too deep") {
        "DEPTH_LIMIT_EXCEEDED"
    } else if message.contains("too complex") {
        "COMPLEXITY_LIMIT_EXCEEDED"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
    }
}

fn set_code(error: &mut ServerError, code: &'static str) {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_code() {
        let error: async_graphql::Error =
            ApiError::Forbidden("project `b` is not accessible".into()).into();
        let extensions = error.extensions.expect("extensions");
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("FORBIDDEN"))
        );
        assert_eq!(
            validation_code("Query is nested too deep."),
            "DEPTH_LIMIT_EXCEEDED"
        );
        assert_eq!(
            validation_code("Query is too complex."),
            "COMPLEXITY_LIMIT_EXCEEDED"
        );
        assert_eq!(
            validation_code("Unknown field \"x\" on type \"Query\"."),
            "GRAPHQL_VALIDATION_FAILED"
        );
    }
}
