//! Who is asking. A request carries a read-scoped API key in `Authorization: Bearer <key>` or
//! `x-api-key` (HTTP headers, or the WebSocket `connection_init` payload); every resolver asks
//! [`project`] for access to the project it reads, and a key of another project is an error,
//! never an empty answer.

use async_graphql::Context;
use axum::http::HeaderMap;
use spindle_platform::api_keys::{AuthError, Principal, Resolver};
use spindle_schemas::platform::ApiKeyScope;

use crate::error::ApiError;

/// The outcome of authenticating a request, stored in its data.
#[derive(Debug, Clone)]
pub struct Auth(pub Result<Principal, ApiError>);

/// The key presented in HTTP headers, if any.
pub fn key_from_headers(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(|k| k.trim().to_owned())
}

/// The key in a WebSocket `connection_init` payload: `{"Authorization": "Bearer …"}`,
/// `{"x-api-key": "…"}` or `{"apiKey": "…"}`.
pub fn key_from_init(payload: &serde_json::Value) -> Option<String> {
    let field = |name: &str| {
        payload
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    field("authorization")
        .map(|v| {
            v.trim_start_matches("Bearer ")
                .trim_start_matches("bearer ")
        })
        .or_else(|| field("x-api-key"))
        .or_else(|| field("apiKey"))
        .map(|k| k.trim().to_owned())
}

/// Resolves a presented key to a principal that may read.
pub async fn authenticate(resolver: &Resolver, key: Option<&str>) -> Auth {
    let Some(key) = key else {
        return Auth(Err(ApiError::Unauthenticated(
            "missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>` with a \
             read-scoped key"
                .into(),
        )));
    };
    Auth(
        resolver
            .authorize(key, ApiKeyScope::Read)
            .await
            .map_err(|e| match e {
                AuthError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
                AuthError::MissingScope { .. } => ApiError::Forbidden(e.to_string()),
                _ => ApiError::Unauthenticated(e.to_string()),
            }),
    )
}

/// The request's principal, if it may read `project_id`.
pub fn project<'c>(ctx: &'c Context<'_>, project_id: &str) -> Result<&'c Principal, ApiError> {
    let auth = ctx
        .data_opt::<Auth>()
        .ok_or_else(|| ApiError::Unauthenticated("no credentials were presented".into()))?;
    let principal = auth.0.as_ref().map_err(Clone::clone)?;
    if principal.project_id != project_id {
        return Err(ApiError::Forbidden(format!(
            "project `{project_id}` is not accessible with key `{}`",
            principal.key_prefix
        )));
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_either_header_or_the_init_payload() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer spk_a_b".parse().expect("header"));
        assert_eq!(key_from_headers(&headers).as_deref(), Some("spk_a_b"));
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "spk_c_d".parse().expect("header"));
        assert_eq!(key_from_headers(&headers).as_deref(), Some("spk_c_d"));
        assert_eq!(key_from_headers(&HeaderMap::new()), None);

        let init = serde_json::json!({"Authorization": "Bearer spk_e_f"});
        assert_eq!(key_from_init(&init).as_deref(), Some("spk_e_f"));
        let init = serde_json::json!({"x-api-key": "spk_g_h"});
        assert_eq!(key_from_init(&init).as_deref(), Some("spk_g_h"));
        assert_eq!(key_from_init(&serde_json::json!({})), None);
    }
}
