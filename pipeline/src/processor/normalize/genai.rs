//! OpenTelemetry GenAI semantic conventions: messages and tool calls.
//!
//! Current names: `gen_ai.system_instructions`, `gen_ai.input.messages`,
//! `gen_ai.output.messages` (JSON with `parts`), on the span or on a
//! `gen_ai.client.inference.operation.details` event; `gen_ai.tool.name`,
//! `gen_ai.tool.call.id`, `gen_ai.tool.call.arguments` and `gen_ai.tool.call.result` on
//! `execute_tool` spans. Older instrumentations put the content in span events instead:
//! `gen_ai.content.prompt` / `gen_ai.content.completion` (a JSON list in `gen_ai.prompt` /
//! `gen_ai.completion`), or one event per message (`gen_ai.{system,user,assistant,tool}.message`
//! with `content`, `tool_calls` and `id`) and per choice (`gen_ai.choice` with `message`).

use opentelemetry_proto::tonic::trace::v1::span::Event;
use serde_json::{Map, Value as Json};

use super::attrs::Attrs;
use super::messages::{Message, from_json, non_empty};

/// The event that carries the current conventions' content when not on the span.
const DETAILS_EVENT: &str = "gen_ai.client.inference.operation.details";

/// Event names whose attributes carry message content.
pub(super) const MESSAGE_EVENTS: &[&str] = &[
    DETAILS_EVENT,
    "gen_ai.content.prompt",
    "gen_ai.content.completion",
    "gen_ai.system.message",
    "gen_ai.user.message",
    "gen_ai.assistant.message",
    "gen_ai.tool.message",
    "gen_ai.choice",
];

/// The content attributes of [`MESSAGE_EVENTS`], dropped from the canonical events.
pub(super) const MESSAGE_EVENT_KEYS: &[&str] = &[
    "gen_ai.prompt",
    "gen_ai.completion",
    "gen_ai.event.content",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.system_instructions",
    "content",
    "message",
    "tool_calls",
];

pub(super) fn input(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    let mut messages = Vec::new();
    if let Some(instructions) = attrs.json("gen_ai.system_instructions") {
        messages.extend(system(&instructions));
    }
    if let Some(input) = attrs.json("gen_ai.input.messages") {
        messages.extend(from_json(&input, "user"));
    }
    non_empty(messages)
}

pub(super) fn output(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    non_empty(from_json(
        &attrs.json("gen_ai.output.messages")?,
        "assistant",
    ))
}

/// Input messages from span events, in event order.
pub(super) fn input_from_events(events: &[Event]) -> Option<Vec<Message>> {
    let mut messages = Vec::new();
    for event in events {
        let attrs = Attrs::new(&event.attributes);
        match event.name.as_str() {
            DETAILS_EVENT => messages.extend(input(&attrs).unwrap_or_default()),
            "gen_ai.content.prompt" => {
                if let Some(prompt) = attrs.json("gen_ai.prompt") {
                    messages.extend(from_json(&prompt, "user"));
                }
            }
            "gen_ai.system.message" => messages.extend(event_message(&attrs, "system")),
            "gen_ai.user.message" => messages.extend(event_message(&attrs, "user")),
            "gen_ai.assistant.message" => messages.extend(event_message(&attrs, "assistant")),
            "gen_ai.tool.message" => messages.extend(event_message(&attrs, "tool")),
            _ => {}
        }
    }
    non_empty(messages)
}

/// Output messages from span events, in event order.
pub(super) fn output_from_events(events: &[Event]) -> Option<Vec<Message>> {
    let mut messages = Vec::new();
    for event in events {
        let attrs = Attrs::new(&event.attributes);
        match event.name.as_str() {
            DETAILS_EVENT => messages.extend(output(&attrs).unwrap_or_default()),
            "gen_ai.content.completion" => {
                if let Some(completion) = attrs.json("gen_ai.completion") {
                    messages.extend(from_json(&unwrap_choices(completion), "assistant"));
                }
            }
            "gen_ai.choice" => {
                let body = attrs.json("gen_ai.event.content");
                let message = attrs
                    .json("message")
                    .or_else(|| body.and_then(|b| b.get("message").cloned()));
                match message {
                    Some(message) => messages.extend(from_json(&message, "assistant")),
                    None => messages.extend(event_message(&attrs, "assistant")),
                }
            }
            _ => {}
        }
    }
    non_empty(messages)
}

/// The tool fields of an `execute_tool` span: name, call id, arguments.
pub(super) fn tool(attrs: &Attrs<'_>) -> [Option<String>; 3] {
    [
        attrs.text("gen_ai.tool.name"),
        attrs.text("gen_ai.tool.call.id"),
        attrs.text("gen_ai.tool.call.arguments"),
    ]
}

pub(super) fn tool_result(attrs: &Attrs<'_>) -> Option<String> {
    attrs.text("gen_ai.tool.call.result")
}

/// `gen_ai.system_instructions`: a list of parts, or plain text.
fn system(instructions: &Json) -> Vec<Message> {
    match instructions {
        Json::String(text) => vec![Message::text("system", text.clone())],
        parts => {
            let mut message = Map::new();
            message.insert("role".into(), Json::from("system"));
            message.insert("parts".into(), parts.clone());
            from_json(&Json::Object(message), "system")
        }
    }
}

/// One message from a per-message event: its attributes, or the JSON body some
/// instrumentations put in `gen_ai.event.content`.
fn event_message(attrs: &Attrs<'_>, role: &str) -> Vec<Message> {
    let mut message = match attrs.json("gen_ai.event.content") {
        Some(Json::Object(body)) => body,
        _ => Map::new(),
    };
    if let Some(content) = attrs.get("content") {
        let content = match attrs.json("content") {
            Some(parsed @ (Json::Array(_) | Json::Object(_))) => parsed,
            _ => super::attrs::to_json(content),
        };
        message.insert("content".into(), content);
    }
    if let Some(calls) = attrs.json("tool_calls") {
        message.insert("tool_calls".into(), calls);
    }
    if let Some(id) = attrs.text("id") {
        message.insert("tool_call_id".into(), Json::from(id));
    }
    let role = attrs.str("role").unwrap_or(role);
    message.entry("role").or_insert_with(|| Json::from(role));
    from_json(&Json::Object(message), role)
}

/// Legacy completions are lists of choices (`{"message": {...}, "finish_reason"}`) or of
/// messages.
fn unwrap_choices(completion: Json) -> Json {
    match completion {
        Json::Array(items) => Json::Array(
            items
                .into_iter()
                .map(|item| match item.get("message") {
                    Some(message @ Json::Object(_)) => message.clone(),
                    _ => item,
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::s;
    use serde_json::json;

    fn event(
        name: &str,
        attributes: Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
    ) -> Event {
        Event {
            name: name.into(),
            attributes,
            ..Default::default()
        }
    }

    fn json_of(messages: Option<Vec<Message>>) -> Json {
        serde_json::to_value(messages.unwrap_or_default()).expect("serializes")
    }

    #[test]
    fn reads_current_attributes_with_system_instructions() {
        let attributes = [
            s(
                "gen_ai.system_instructions",
                r#"[{"type":"text","content":"You are terse."}]"#,
            ),
            s(
                "gen_ai.input.messages",
                r#"[{"role":"user","parts":[{"type":"text","content":"Weather?"}]}]"#,
            ),
            s(
                "gen_ai.output.messages",
                r#"[{"role":"assistant","parts":[{"type":"text","content":"Sunny."}],"finish_reason":"stop"}]"#,
            ),
        ];
        let attrs = Attrs::new(&attributes);
        assert_eq!(
            json_of(input(&attrs)),
            json!([{"role":"system","content":"You are terse."},{"role":"user","content":"Weather?"}])
        );
        assert_eq!(
            json_of(output(&attrs)),
            json!([{"role":"assistant","content":"Sunny."}])
        );
    }

    #[test]
    fn reads_legacy_prompt_and_completion_events() {
        let events = [
            event(
                "gen_ai.content.prompt",
                vec![s("gen_ai.prompt", r#"[{"role":"user","content":"2+2?"}]"#)],
            ),
            event(
                "gen_ai.content.completion",
                vec![s(
                    "gen_ai.completion",
                    r#"[{"role":"assistant","content":"4"}]"#,
                )],
            ),
        ];
        assert_eq!(
            json_of(input_from_events(&events)),
            json!([{"role":"user","content":"2+2?"}])
        );
        assert_eq!(
            json_of(output_from_events(&events)),
            json!([{"role":"assistant","content":"4"}])
        );
    }

    #[test]
    fn reads_per_message_events_and_choices() {
        let events = [
            event("gen_ai.system.message", vec![s("content", "Be nice.")]),
            event("gen_ai.user.message", vec![s("content", "Hi")]),
            event(
                "gen_ai.assistant.message",
                vec![s(
                    "tool_calls",
                    r#"[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]"#,
                )],
            ),
            event(
                "gen_ai.tool.message",
                vec![s("content", "result"), s("id", "c1")],
            ),
            event(
                "gen_ai.choice",
                vec![s("message", r#"{"role":"assistant","content":"Done."}"#)],
            ),
        ];
        assert_eq!(
            json_of(input_from_events(&events)),
            json!([
                {"role":"system","content":"Be nice."},
                {"role":"user","content":"Hi"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c1","name":"f","arguments":"{}"}]},
                {"role":"tool","content":"result","tool_call_id":"c1"}
            ])
        );
        assert_eq!(
            json_of(output_from_events(&events)),
            json!([{"role":"assistant","content":"Done."}])
        );
    }
}
