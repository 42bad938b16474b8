//! Canonical message JSON (`[{role, content, tool_calls?: [{id, name, arguments}],
//! tool_call_id?}]`, as the API's `inputMessages`/`outputMessages` give it) turned into the
//! parts a conversation view draws: text, tool calls and tool results. Pure.

use serde_json::Value;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub parts: Vec<Part>,
}

/// What a message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// The model asks for a tool; `arguments` as pretty JSON when they parse.
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    /// A tool's answer to the call `call_id`.
    ToolResult {
        call_id: String,
        content: String,
    },
}

impl Message {
    /// Whether this message answers a tool call (drawn apart from the dialogue).
    pub fn is_tool_result(&self) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::ToolResult { .. }))
    }
}

/// The messages of a message field: an array of canonical messages, or that array as JSON
/// text. Anything else (a bare string, an object) becomes one message of role `raw`, so
/// nothing the producer sent is hidden.
pub fn messages(value: &Value) -> Vec<Message> {
    match value {
        Value::Null => Vec::new(),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed @ Value::Array(_)) => messages(&parsed),
            _ if text.is_empty() => Vec::new(),
            _ => vec![raw(text.clone())],
        },
        Value::Array(items) => items.iter().map(message).collect(),
        other => vec![raw(pretty(other))],
    }
}

/// The part of `next` that is new after `seen`: an LLM call's input usually repeats the
/// conversation so far, so a session shows each turn's input from where the last one ended.
pub fn continuation<'a>(seen: &[Message], next: &'a [Message]) -> &'a [Message] {
    if !seen.is_empty() && next.len() >= seen.len() && next[..seen.len()] == *seen {
        &next[seen.len()..]
    } else {
        next
    }
}

fn message(item: &Value) -> Message {
    let Value::Object(fields) = item else {
        return raw(text_of(item));
    };
    let role = fields
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let content = fields.get("content").map(text_of).filter(|c| !c.is_empty());
    let call_id = fields
        .get("tool_call_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let mut parts = Vec::new();
    match (call_id, content) {
        (Some(call_id), content) => parts.push(Part::ToolResult {
            call_id: call_id.to_owned(),
            content: content.unwrap_or_default(),
        }),
        (None, Some(content)) => parts.push(Part::Text(content)),
        (None, None) => {}
    }
    if let Some(Value::Array(calls)) = fields.get("tool_calls") {
        for call in calls {
            let field = |key: &str| call.get(key).and_then(Value::as_str).unwrap_or_default();
            let arguments = match call.get("arguments") {
                Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                    Ok(parsed) => pretty(&parsed),
                    Err(_) => text.clone(),
                },
                Some(Value::Null) | None => String::new(),
                Some(other) => pretty(other),
            };
            parts.push(Part::ToolCall {
                id: field("id").to_owned(),
                name: field("name").to_owned(),
                arguments,
            });
        }
    }
    Message { role, parts }
}

fn raw(text: String) -> Message {
    Message {
        role: "raw".into(),
        parts: vec![Part::Text(text)],
    }
}

/// Text content as is; structured content (a list of parts) as pretty JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => pretty(other),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_tool_using_exchange() {
        let value = json!([
            {"role": "system", "content": "Be concise."},
            {"role": "user", "content": "Weather in Tokyo?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}
            ]},
            {"role": "tool", "content": "18°C", "tool_call_id": "c1"},
            {"role": "assistant", "content": "18°C in Tokyo."},
        ]);
        let parsed = messages(&value);
        assert_eq!(parsed.len(), 5);
        assert_eq!(parsed[0].role, "system");
        assert_eq!(
            parsed[2].parts,
            vec![
                Part::Text("Checking.".into()),
                Part::ToolCall {
                    id: "c1".into(),
                    name: "get_weather".into(),
                    arguments: "{\n  \"city\": \"Tokyo\"\n}".into(),
                },
            ]
        );
        assert_eq!(
            parsed[3].parts,
            vec![Part::ToolResult {
                call_id: "c1".into(),
                content: "18°C".into()
            }]
        );
        assert!(parsed[3].is_tool_result());
        assert!(!parsed[4].is_tool_result());
    }

    #[test]
    fn a_session_shows_only_what_is_new_in_each_turn() {
        let first = messages(&json!([
            {"role": "user", "content": "hi"},
        ]));
        let answer = messages(&json!([{"role": "assistant", "content": "hello"}]));
        let mut seen = first.clone();
        seen.extend(answer);
        let second = messages(&json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"},
        ]));
        assert_eq!(continuation(&seen, &second), &second[2..]);
        // A turn that does not repeat the history is shown whole.
        let fresh = messages(&json!([{"role": "user", "content": "other"}]));
        assert_eq!(continuation(&seen, &fresh), &fresh[..]);
        assert_eq!(continuation(&[], &fresh), &fresh[..]);
    }

    #[test]
    fn json_text_and_odd_shapes() {
        let text = Value::String(r#"[{"role":"user","content":"hi"}]"#.into());
        assert_eq!(
            messages(&text),
            vec![Message {
                role: "user".into(),
                parts: vec![Part::Text("hi".into())]
            }]
        );
        assert!(messages(&Value::Null).is_empty());
        assert_eq!(messages(&json!("plain words"))[0].role, "raw");
        // A tool call without content, with unparsable arguments, and list content.
        let odd = messages(&json!([
            {"role": "assistant", "content": null,
             "tool_calls": [{"id": "x", "name": "t", "arguments": "not json"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}]},
        ]));
        assert_eq!(
            odd[0].parts,
            vec![Part::ToolCall {
                id: "x".into(),
                name: "t".into(),
                arguments: "not json".into()
            }]
        );
        assert!(matches!(&odd[1].parts[0], Part::Text(t) if t.contains("\"text\": \"a\"")));
    }
}
