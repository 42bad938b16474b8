//! The canonical message list, read from every convention's message shapes.
//!
//! Canonical JSON: `[{"role": …, "content": …, "tool_calls"?: [{"id", "name", "arguments"}],
//! "tool_call_id"?: …}]`. `content` is text (text parts joined by a newline, other parts as a
//! `[<type>]` placeholder) or `null` when a message only calls tools; `arguments` is the call's
//! arguments as JSON text. Each tool result becomes its own `tool` message. Reasoning parts are
//! left out (the raw payload keeps them).
//!
//! [`from_json`] reads the message shapes the conventions carry: OpenAI chat messages (string or
//! part-list content, `tool_calls`), OpenTelemetry GenAI `parts`, Vercel AI SDK parts
//! (`tool-call`, `tool-result`), Anthropic blocks (`tool_use`, `tool_result`) and OpenAI
//! Responses items, alone, in a list, or under `messages` with an optional `system`/`prompt`.

use serde::Serialize;
use serde_json::{Map, Value as Json};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct Message {
    pub(super) role: String,
    pub(super) content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) tool_calls: Vec<ToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tool_call_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ToolCall {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) arguments: String,
}

impl Message {
    pub(super) fn text(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_owned(),
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    pub(super) fn tool_result(id: Option<String>, content: impl Into<String>) -> Message {
        Message {
            tool_call_id: id.filter(|id| !id.is_empty()),
            ..Message::text("tool", content)
        }
    }
}

/// Messages from any of the shapes in the module documentation; bare strings become one
/// message with `default_role`.
pub(super) fn from_json(value: &Json, default_role: &str) -> Vec<Message> {
    let mut out = Vec::new();
    match value {
        Json::Null => {}
        Json::Array(items) => {
            for item in items {
                match item {
                    Json::Object(object) => push_message(&mut out, object, default_role),
                    Json::String(s) => out.push(Message::text(default_role, s.clone())),
                    Json::Null => {}
                    other => out.push(Message::text(default_role, other.to_string())),
                }
            }
        }
        Json::Object(object) if object.get("choices").is_some_and(Json::is_array) => {
            // A chat completion response: each choice's message.
            let choices = object.get("choices").and_then(Json::as_array);
            for choice in choices.into_iter().flatten() {
                if let Some(message) = choice.get("message").and_then(Json::as_object) {
                    push_message(&mut out, message, default_role);
                }
            }
        }
        Json::Object(object)
            if object.contains_key("messages") || object.contains_key("prompt") =>
        {
            if let Some(system) = object.get("system").and_then(content_text) {
                out.push(Message::text("system", system));
            }
            if let Some(prompt) = object.get("prompt").filter(|p| !p.is_null()) {
                out.extend(from_json(prompt, "user"));
            }
            if let Some(messages) = object.get("messages") {
                out.extend(from_json(messages, default_role));
            }
        }
        Json::Object(object) => push_message(&mut out, object, default_role),
        Json::String(s) => out.push(Message::text(default_role, s.clone())),
        other => out.push(Message::text(default_role, other.to_string())),
    }
    out
}

/// `Some` unless there are no messages.
pub(super) fn non_empty(messages: Vec<Message>) -> Option<Vec<Message>> {
    (!messages.is_empty()).then_some(messages)
}

/// Messages from a payload as text: a JSON message list (or request/response body with
/// messages) is read as such, a JSON string is unquoted, and anything else is one
/// `default_role` message holding the text.
pub(super) fn from_text(text: &str, default_role: &str) -> Vec<Message> {
    match serde_json::from_str::<Json>(text) {
        Ok(value) if looks_like_messages(&value) => from_json(&value, default_role),
        Ok(Json::String(unquoted)) => vec![Message::text(default_role, unquoted)],
        _ => vec![Message::text(default_role, text)],
    }
}

fn looks_like_messages(value: &Json) -> bool {
    match value {
        Json::Array(items) => {
            !items.is_empty()
                && items
                    .iter()
                    .all(|item| item.get("role").is_some_and(Json::is_string))
        }
        Json::Object(object) => {
            object.get("role").is_some_and(Json::is_string)
                || object.get("messages").is_some_and(Json::is_array)
                || object.get("choices").is_some_and(Json::is_array)
        }
        _ => false,
    }
}

/// A JSON value as text: strings as they are, anything else as compact JSON.
pub(super) fn json_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Text of a content value: a string, or the text parts of a part list.
fn content_text(value: &Json) -> Option<String> {
    let mut message = empty("");
    let mut results = Vec::new();
    add_content(&mut message, &mut results, value);
    message.content
}

fn empty(role: &str) -> Message {
    Message {
        role: role.to_owned(),
        content: None,
        tool_calls: Vec::new(),
        tool_call_id: None,
    }
}

fn push_message(out: &mut Vec<Message>, object: &Map<String, Json>, default_role: &str) {
    // OpenAI Responses items are typed rather than roled.
    match str_field(object, "type") {
        Some("function_call") => {
            let mut message = empty("assistant");
            message.tool_calls.push(tool_call(object));
            out.push(message);
            return;
        }
        Some("function_call_output") => {
            let output = object.get("output").map(json_text).unwrap_or_default();
            out.push(Message::tool_result(id_field(object), output));
            return;
        }
        _ => {}
    }
    let role = str_field(object, "role").unwrap_or(default_role);
    let mut message = empty(role);
    let mut results = Vec::new();
    for key in ["content", "parts"] {
        if let Some(content) = object.get(key) {
            add_content(&mut message, &mut results, content);
        }
    }
    if let Some(Json::Array(calls)) = object.get("tool_calls") {
        message
            .tool_calls
            .extend(calls.iter().filter_map(Json::as_object).map(tool_call));
    }
    if let Some(Json::Object(call)) = object.get("function_call") {
        message.tool_calls.push(tool_call(call));
    }
    message.tool_call_id = str_field(object, "tool_call_id")
        .or_else(|| str_field(object, "toolCallId"))
        .map(str::to_owned);
    let keep = message.content.is_some() || !message.tool_calls.is_empty() || results.is_empty();
    if keep {
        out.push(message);
    }
    out.extend(results);
}

/// Adds a content value (string, part, or list of parts) to `message`; tool results go to
/// `results` as their own messages.
fn add_content(message: &mut Message, results: &mut Vec<Message>, content: &Json) {
    match content {
        Json::String(s) => append_text(message, s),
        Json::Array(parts) => {
            for part in parts {
                add_content(message, results, part);
            }
        }
        Json::Object(part) => add_part(message, results, part),
        Json::Null => {}
        other => append_text(message, &other.to_string()),
    }
}

fn add_part(message: &mut Message, results: &mut Vec<Message>, part: &Map<String, Json>) {
    let kind = str_field(part, "type").unwrap_or("text");
    match kind {
        "text" | "input_text" | "output_text" => {
            if let Some(text) = ["text", "content"]
                .iter()
                .find_map(|key| part.get(*key).filter(|v| !v.is_null()))
            {
                append_text(message, &json_text(text));
            }
        }
        "tool_call" | "tool-call" | "tool_use" | "function_call" => {
            message.tool_calls.push(tool_call(part));
        }
        "tool_call_response" | "tool-result" | "tool_result" | "function_call_output" => {
            let output = ["response", "result", "output", "content"]
                .iter()
                .find_map(|key| part.get(*key))
                .map(result_text)
                .unwrap_or_default();
            results.push(Message::tool_result(id_field(part), output));
        }
        "reasoning" | "thinking" | "redacted_thinking" => {}
        other => append_text(message, &format!("[{other}]")),
    }
}

/// A tool result as text. Anthropic wraps results in content blocks, the Vercel AI SDK 5 in
/// `{"type": "json" | "text" | "error-…", "value"}`.
fn result_text(value: &Json) -> String {
    match value {
        Json::Array(_) => content_text(value).unwrap_or_else(|| value.to_string()),
        Json::Object(object)
            if object.contains_key("value")
                && matches!(
                    str_field(object, "type"),
                    Some("json" | "text" | "error-json" | "error-text")
                ) =>
        {
            object.get("value").map(json_text).unwrap_or_default()
        }
        other => json_text(other),
    }
}

fn append_text(message: &mut Message, text: &str) {
    match &mut message.content {
        Some(content) => {
            content.push('\n');
            content.push_str(text);
        }
        None => message.content = Some(text.to_owned()),
    }
}

fn tool_call(object: &Map<String, Json>) -> ToolCall {
    let function = object.get("function").and_then(Json::as_object);
    let field = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| {
                function
                    .and_then(|f| f.get(*key))
                    .or_else(|| object.get(*key))
                    .filter(|v| !v.is_null())
            })
            .map(json_text)
            .unwrap_or_default()
    };
    ToolCall {
        id: id_field(object).unwrap_or_default(),
        name: field(&["name", "toolName"]),
        arguments: field(&["arguments", "args", "input"]),
    }
}

fn id_field(object: &Map<String, Json>) -> Option<String> {
    ["id", "call_id", "toolCallId", "tool_use_id", "tool_call_id"]
        .iter()
        .find_map(|key| str_field(object, key))
        .map(str::to_owned)
}

fn str_field<'a>(object: &'a Map<String, Json>, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Json::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canonical(value: Json) -> Json {
        serde_json::to_value(from_json(&value, "user")).expect("serializes")
    }

    #[test]
    fn reads_openai_chat_messages() {
        let value = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "42"}
        ]);
        assert_eq!(
            canonical(value),
            json!([
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi\n[image_url]"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "name": "f", "arguments": "{\"a\":1}"}]},
                {"role": "tool", "content": "42", "tool_call_id": "call_1"}
            ])
        );
    }

    #[test]
    fn reads_genai_parts_and_vercel_parts() {
        let genai = json!([
            {"role": "assistant", "parts": [
                {"type": "reasoning", "content": "hmm"},
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "sunny"}]}
        ]);
        assert_eq!(
            canonical(genai),
            json!([
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"}]},
                {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
            ])
        );
        let vercel = json!({"system": "sys", "messages": [
            {"role": "tool", "content": [
                {"type": "tool-result", "toolCallId": "a", "toolName": "t", "result": {"ok": true}},
                {"type": "tool-result", "toolCallId": "b", "toolName": "t", "output": {"type": "text", "value": "v"}}]}
        ]});
        assert_eq!(
            canonical(vercel),
            json!([
                {"role": "system", "content": "sys"},
                {"role": "tool", "content": "{\"ok\":true}", "tool_call_id": "a"},
                {"role": "tool", "content": "v", "tool_call_id": "b"}
            ])
        );
    }

    #[test]
    fn reads_anthropic_blocks_and_bare_strings() {
        let value = json!([
            {"role": "assistant", "content": [{"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "tu1", "name": "search", "input": {"q": "x"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu1",
                "content": [{"type": "text", "text": "found"}]}]},
            "plain"
        ]);
        assert_eq!(
            canonical(value),
            json!([
                {"role": "assistant", "content": "let me look", "tool_calls": [{"id": "tu1", "name": "search", "arguments": "{\"q\":\"x\"}"}]},
                {"role": "tool", "content": "found", "tool_call_id": "tu1"},
                {"role": "user", "content": "plain"}
            ])
        );
    }

    #[test]
    fn reads_payload_text_as_messages_a_string_or_plain_text() {
        assert_eq!(
            from_text(r#"[{"role":"user","content":"a"}]"#, "user"),
            vec![Message::text("user", "a")]
        );
        assert_eq!(
            from_text(
                r#"{"choices":[{"message":{"role":"assistant","content":"b"}}]}"#,
                "assistant"
            ),
            vec![Message::text("assistant", "b")]
        );
        assert_eq!(
            from_text(r#""quoted""#, "assistant"),
            vec![Message::text("assistant", "quoted")]
        );
        assert_eq!(
            from_text(r#"{"args":[1]}"#, "user"),
            vec![Message::text("user", r#"{"args":[1]}"#)]
        );
        assert_eq!(
            from_text("plain", "user"),
            vec![Message::text("user", "plain")]
        );
    }
}
