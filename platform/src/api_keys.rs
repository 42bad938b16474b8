//! API keys: `spk_<key_id>_<secret>`, shown once, stored as a SHA-256.
//!
//! The resolver looks a key up in the Redis projection behind a bounded in-process cache whose
//! entries live `ttl`; a revocation is visible once the cached entry expires.

use std::collections::HashMap;
use std::time::Duration;

use rand::RngCore;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use spindle_schemas::platform::ApiKeyScope;

use crate::cache::TtlCache;

const KEY_PREFIX: &str = "spk_";

/// A freshly issued key. `secret` is the only copy of the full key.
#[derive(Clone)]
pub struct IssuedKey {
    pub key_id: String,
    /// The visible part, safe to log: `spk_<key_id>`.
    pub prefix: String,
    pub hash: String,
    secret: String,
}

impl IssuedKey {
    /// Generates a random key: 6 bytes of id and 24 bytes of secret, hex encoded.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut id = [0_u8; 6];
        let mut secret = [0_u8; 24];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let key_id = hex::encode(id);
        let full = format!("{KEY_PREFIX}{key_id}_{}", hex::encode(secret));
        Self {
            prefix: format!("{KEY_PREFIX}{key_id}"),
            hash: hash(&full),
            key_id,
            secret: full,
        }
    }

    /// The full key, to show its owner once.
    pub fn reveal(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Lowercase hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The visible prefix of a presented key, if it has Spindle's shape.
pub fn prefix_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hexish = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(id) && hexish(secret)).then(|| &key[..KEY_PREFIX.len() + id.len()])
}

/// Who a key speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub workspace_id: String,
    pub project_id: String,
    pub key_prefix: String,
    pub scopes: Vec<ApiKeyScope>,
}

impl Principal {
    pub fn can(&self, scope: ApiKeyScope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    Missing,
    #[error("malformed API key: Spindle keys look like `spk_<id>_<secret>`")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("API key `{key_prefix}` was revoked")]
    Revoked { key_prefix: String },
    #[error("API key `{key_prefix}` lacks the `{scope}` scope")]
    MissingScope {
        key_prefix: String,
        scope: &'static str,
    },
    #[error("cannot check API keys right now: {0}")]
    Unavailable(String),
}

type Cached = Result<Principal, AuthError>;

/// Resolves presented keys through Redis with a bounded TTL cache.
#[derive(Clone)]
pub struct Resolver {
    redis: ConnectionManager,
    cache: TtlCache<Cached>,
}

impl Resolver {
    pub fn new(redis: ConnectionManager, ttl: Duration, capacity: usize) -> Self {
        Self {
            redis,
            cache: TtlCache::new(ttl, capacity),
        }
    }

    /// Resolves a key and checks it carries `scope`.
    pub async fn authorize(&self, key: &str, scope: ApiKeyScope) -> Result<Principal, AuthError> {
        let principal = self.resolve(key).await?;
        if principal.can(scope) {
            Ok(principal)
        } else {
            Err(AuthError::MissingScope {
                key_prefix: principal.key_prefix,
                scope: scope.as_str(),
            })
        }
    }

    /// Resolves a key to its principal.
    pub async fn resolve(&self, key: &str) -> Result<Principal, AuthError> {
        let key = key.trim();
        if key.is_empty() {
            return Err(AuthError::Missing);
        }
        let prefix = prefix_of(key).ok_or(AuthError::Malformed)?.to_owned();
        let hash = hash(key);
        if let Some(hit) = self.cache.get(&hash) {
            return hit;
        }
        let fields: HashMap<String, String> = self
            .redis
            .clone()
            .hgetall(crate::keys::api_key(&hash))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let result = principal_from(&fields, prefix);
        self.cache.insert(&hash, result.clone());
        result
    }
}

fn principal_from(fields: &HashMap<String, String>, prefix: String) -> Cached {
    if fields.is_empty() {
        return Err(AuthError::Unknown);
    }
    if fields.get("revoked").map(String::as_str) == Some("1") {
        return Err(AuthError::Revoked { key_prefix: prefix });
    }
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    Ok(Principal {
        workspace_id: field("workspace_id"),
        project_id: field("project_id"),
        key_prefix: prefix,
        scopes: field("scopes")
            .split(',')
            .filter_map(ApiKeyScope::parse)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash() {
        let key = IssuedKey::generate();
        assert_eq!(prefix_of(key.reveal()), Some(key.prefix.as_str()));
        assert_eq!(hash(key.reveal()), key.hash);
        assert_eq!(key.hash.len(), 64);
        assert!(!format!("{key:?}").contains(key.reveal()));
        assert_ne!(IssuedKey::generate().reveal(), key.reveal());
    }

    #[test]
    fn malformed_keys_have_no_prefix() {
        for bad in [
            "",
            "spk_",
            "spk_abc",
            "spk__def",
            "sk_abc_def",
            "spk_xyz_123",
            "spk_ab_cd_ef",
        ] {
            assert_eq!(prefix_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn projection_fields_become_a_principal() {
        let fields: HashMap<String, String> = [
            ("workspace_id", "w"),
            ("project_id", "p"),
            ("scopes", "ingest,read"),
            ("revoked", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let principal = principal_from(&fields, "spk_ab".into()).expect("valid");
        assert!(principal.can(ApiKeyScope::Ingest) && principal.can(ApiKeyScope::Read));
        let mut revoked = fields.clone();
        revoked.insert("revoked".into(), "1".into());
        assert_eq!(
            principal_from(&revoked, "spk_ab".into()),
            Err(AuthError::Revoked {
                key_prefix: "spk_ab".into()
            })
        );
        assert_eq!(
            principal_from(&HashMap::new(), "spk_ab".into()),
            Err(AuthError::Unknown)
        );
    }
}
