//! The size cap on the message columns: the JSON stays valid, the cut is flagged, and the
//! archive keeps the whole payload.

use super::messages::{Message, ToolCall};

/// The JSON of `messages` in at most `max_bytes`, and whether anything was cut: contents and
/// arguments are shortened evenly (the longest first), and if that is not enough the oldest
/// messages after the leading system messages are dropped.
pub(super) fn encode_capped(messages: &[Message], max_bytes: usize) -> (String, bool) {
    if messages.is_empty() {
        return (String::new(), false);
    }
    let full = encode(messages);
    if full.len() <= max_bytes {
        return (full, false);
    }
    if let Some(json) = shortened_to_fit(messages, max_bytes) {
        return (json, true);
    }
    // Even empty strings do not fit: keep the system prompt and as many of the latest as fit.
    let head = messages.iter().take_while(|m| m.role == "system").count();
    let keep_last = |count: usize| -> Vec<Message> {
        let tail_start = messages.len().saturating_sub(count).max(head);
        messages[..head]
            .iter()
            .chain(&messages[tail_start..])
            .cloned()
            .collect()
    };
    let fits_empty = |count: usize| encode(&shortened(&keep_last(count), 0)).len() <= max_bytes;
    let (mut low, mut high) = (0, messages.len() - head);
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if fits_empty(mid) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    let json = shortened_to_fit(&keep_last(low), max_bytes).unwrap_or_else(|| "[]".to_owned());
    (json, true)
}

/// The JSON of `messages` with every string cut to the largest common length that fits.
fn shortened_to_fit(messages: &[Message], max_bytes: usize) -> Option<String> {
    let fits = |limit: usize| encode(&shortened(messages, limit)).len() <= max_bytes;
    if !fits(0) {
        return None;
    }
    let (mut low, mut high) = (0, max_bytes);
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if fits(mid) {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    Some(encode(&shortened(messages, low)))
}

/// `s` cut to at most `max_bytes` on a character boundary.
pub(super) fn cut(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn shortened(messages: &[Message], limit: usize) -> Vec<Message> {
    messages
        .iter()
        .map(|m| Message {
            role: m.role.clone(),
            content: m.content.as_deref().map(|c| cut(c, limit).to_owned()),
            tool_calls: m
                .tool_calls
                .iter()
                .map(|call| ToolCall {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    arguments: cut(&call.arguments, limit).to_owned(),
                })
                .collect(),
            tool_call_id: m.tool_call_id.clone(),
        })
        .collect()
}

fn encode(messages: &[Message]) -> String {
    serde_json::to_string(messages).expect("messages are plain strings and always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    #[test]
    fn small_payloads_are_not_touched() {
        let messages = vec![Message::text("user", "hello")];
        let (json, truncated) = encode_capped(&messages, 1024);
        assert_eq!(json, r#"[{"role":"user","content":"hello"}]"#);
        assert!(!truncated);
        assert_eq!(encode_capped(&[], 10), (String::new(), false));
    }

    #[test]
    fn large_contents_are_shortened_to_valid_json_within_the_cap() {
        let messages = vec![
            Message::text("system", "s".repeat(100)),
            Message::text("user", "é".repeat(5_000)),
        ];
        let (json, truncated) = encode_capped(&messages, 1_000);
        assert!(truncated);
        assert!(json.len() <= 1_000, "{}", json.len());
        let back: Json = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back[0]["content"], "s".repeat(100), "short strings survive");
        assert!(
            back[1]["content"]
                .as_str()
                .is_some_and(|c| c.starts_with('é'))
        );
    }

    #[test]
    fn too_many_messages_drop_the_oldest_after_the_system_prompt() {
        let mut messages = vec![Message::text("system", "sys")];
        messages.extend((0..100).map(|n| Message::text("user", format!("m{n}"))));
        let (json, truncated) = encode_capped(&messages, 200);
        assert!(truncated);
        assert!(json.len() <= 200);
        let back: Vec<Json> = serde_json::from_str(&json).expect("still JSON");
        assert_eq!(back[0]["role"], "system");
        assert_eq!(
            back.last().map(|m| m["content"].clone()),
            Some(json!("m99"))
        );
    }

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("hi", 10), "hi");
    }
}
