//! Opaque page cursors: base64url of a small JSON document naming the ordering they belong to
//! and the sort key of the last item, so pages are keyset-cut (stable while new data arrives)
//! and a cursor used with another ordering is refused.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Where a page ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The ordering, e.g. `traces:START_TIME:DESC`.
    #[serde(rename = "o")]
    pub ordering: String,
    /// The sort value of the last item, as text.
    #[serde(rename = "v")]
    pub value: String,
    /// The tie-breaker (a trace id, a session id, an index).
    #[serde(rename = "k")]
    pub key: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes `text`, which must have been issued for `ordering`.
    pub fn decode(text: &str, ordering: &str) -> Result<Cursor, ApiError> {
        let bad = |why: &str| ApiError::BadUserInput(format!("invalid cursor `{text}`: {why}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| bad("not a cursor this API issued"))?;
        let cursor: Cursor =
            serde_json::from_slice(&bytes).map_err(|_| bad("not a cursor this API issued"))?;
        if cursor.ordering != ordering {
            return Err(bad(&format!(
                "it was issued for `{}`, not `{ordering}`",
                cursor.ordering
            )));
        }
        Ok(cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage_and_other_orderings() {
        let cursor = Cursor {
            ordering: "traces:START_TIME:DESC".into(),
            value: "1764230400000000000".into(),
            key: "ab".repeat(16),
        };
        let text = cursor.encode();
        assert_eq!(
            Cursor::decode(&text, "traces:START_TIME:DESC").expect("round trip"),
            cursor
        );
        let other = Cursor::decode(&text, "traces:COST:DESC").expect_err("other ordering");
        assert!(other.message().contains("issued for"), "{other:?}");
        let garbage = Cursor::decode("%%%", "traces:START_TIME:DESC").expect_err("garbage");
        assert_eq!(garbage.code(), "BAD_USER_INPUT");
    }
}
