//! `viewer`: who the request's key speaks for, so a client can sign in with a key and learn
//! its project without guessing.

use async_graphql::{Context, Object, SimpleObject};

use crate::auth::Auth;
use crate::error::ApiError;

/// The principal of the request.
#[derive(SimpleObject)]
pub struct Viewer {
    pub workspace_id: String,
    /// The project this key reads.
    pub project_id: String,
    /// The visible part of the key (`spk_<id>`).
    pub key_prefix: String,
    /// `ingest`, `read`.
    pub scopes: Vec<String>,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// Who the presented key speaks for; `UNAUTHENTICATED` without a valid key.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Viewer, ApiError> {
        let auth = ctx
            .data_opt::<Auth>()
            .ok_or_else(|| ApiError::Unauthenticated("no credentials were presented".into()))?;
        let principal = auth.0.as_ref().map_err(Clone::clone)?;
        Ok(Viewer {
            workspace_id: principal.workspace_id.clone(),
            project_id: principal.project_id.clone(),
            key_prefix: principal.key_prefix.clone(),
            scopes: principal
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        })
    }
}
