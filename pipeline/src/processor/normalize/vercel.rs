//! Vercel AI SDK (`experimental_telemetry`): messages and tool calls.
//!
//! Model-call spans (`ai.generateText.doGenerate`, `ai.streamText.doStream`, …) carry the prompt
//! as JSON in `ai.prompt.messages`; the outer spans carry `ai.prompt` (`{"system", "prompt",
//! "messages"}`). The answer is `ai.response.text` plus `ai.response.toolCalls` (a JSON list of
//! `{toolCallId, toolName, args | input}`) or `ai.response.object` (`ai.result.*` before SDK
//! 4.0). Embedding spans carry `ai.value` / `ai.values`. Tool spans (`ai.toolCall`) carry
//! `ai.toolCall.{name,id,args | input,result | output}`.

use serde_json::Value as Json;

use super::attrs::Attrs;
use super::messages::{Message, from_json, json_text, non_empty};

pub(super) fn input(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    if let Some(messages) = attrs.json("ai.prompt.messages") {
        return non_empty(from_json(&messages, "user"));
    }
    if let Some(prompt) = attrs.json("ai.prompt") {
        return non_empty(from_json(&prompt, "user"));
    }
    if let Some(Json::Array(values)) = attrs.json("ai.values") {
        // Each value is itself JSON text (`"\"a text\""`).
        let texts = values
            .iter()
            .map(|value| match value {
                Json::String(s) => match serde_json::from_str(s) {
                    Ok(Json::String(text)) => Message::text("user", text),
                    _ => Message::text("user", s.clone()),
                },
                other => Message::text("user", other.to_string()),
            })
            .collect();
        return non_empty(texts);
    }
    let value = attrs.get("ai.value")?;
    let text = match attrs.json("ai.value") {
        Some(Json::String(s)) => s,
        _ => super::attrs::text(value)?,
    };
    Some(vec![Message::text("user", text)])
}

pub(super) fn output(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    let text = attrs.first_text(&["ai.response.text", "ai.result.text"]);
    let object = attrs.first_text(&["ai.response.object", "ai.result.object"]);
    let calls = attrs
        .json("ai.response.toolCalls")
        .or_else(|| attrs.json("ai.result.toolCalls"));
    if text.is_none() && object.is_none() && calls.is_none() {
        return None;
    }
    let mut message = serde_json::Map::new();
    message.insert("role".into(), Json::from("assistant"));
    if let Some(content) = text.or(object) {
        message.insert("content".into(), Json::from(content));
    }
    if let Some(Json::Array(calls)) = calls {
        let calls = calls
            .into_iter()
            .map(|mut call| {
                // `args` is JSON text in SDK 4, an object (`input`) in SDK 5.
                if let Some(args) = call.get("args").filter(|a| !a.is_string()).cloned()
                    && let Some(object) = call.as_object_mut()
                {
                    object.insert("args".into(), Json::from(json_text(&args)));
                }
                call
            })
            .collect();
        message.insert("tool_calls".into(), Json::Array(calls));
    }
    non_empty(from_json(&Json::Object(message), "assistant"))
}

/// The tool fields of an `ai.toolCall` span: name, call id, arguments.
pub(super) fn tool(attrs: &Attrs<'_>) -> [Option<String>; 3] {
    [
        attrs.text("ai.toolCall.name"),
        attrs.text("ai.toolCall.id"),
        attrs.first_text(&["ai.toolCall.args", "ai.toolCall.input"]),
    ]
}

pub(super) fn tool_result(attrs: &Attrs<'_>) -> Option<String> {
    attrs.first_text(&["ai.toolCall.result", "ai.toolCall.output"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::s;
    use serde_json::json;

    #[test]
    fn reads_prompt_messages_and_the_response() {
        let attributes = [
            s(
                "ai.prompt.messages",
                r#"[{"role":"system","content":"Be helpful."},{"role":"user","content":[{"type":"text","text":"Weather in Paris?"}]}]"#,
            ),
            s("ai.response.text", ""),
            s(
                "ai.response.toolCalls",
                r#"[{"toolCallType":"function","toolCallId":"call_1","toolName":"weather","args":"{\"city\":\"Paris\"}"}]"#,
            ),
        ];
        let attrs = Attrs::new(&attributes);
        assert_eq!(
            serde_json::to_value(input(&attrs)).expect("serializes"),
            json!([{"role":"system","content":"Be helpful."},{"role":"user","content":"Weather in Paris?"}])
        );
        assert_eq!(
            serde_json::to_value(output(&attrs)).expect("serializes"),
            json!([{"role":"assistant","content":null,
                "tool_calls":[{"id":"call_1","name":"weather","arguments":"{\"city\":\"Paris\"}"}]}])
        );
    }

    #[test]
    fn reads_the_outer_prompt_and_sdk5_tool_inputs() {
        let attributes = [
            s("ai.prompt", r#"{"system":"S","prompt":"Tell me a joke"}"#),
            s(
                "ai.response.toolCalls",
                r#"[{"toolCallId":"c","toolName":"t","input":{"a":1}}]"#,
            ),
        ];
        let attrs = Attrs::new(&attributes);
        assert_eq!(
            serde_json::to_value(input(&attrs)).expect("serializes"),
            json!([{"role":"system","content":"S"},{"role":"user","content":"Tell me a joke"}])
        );
        assert_eq!(
            serde_json::to_value(output(&attrs)).expect("serializes"),
            json!([{"role":"assistant","content":null,
                "tool_calls":[{"id":"c","name":"t","arguments":"{\"a\":1}"}]}])
        );
    }

    #[test]
    fn embedding_values_are_the_input() {
        let attributes = [s("ai.values", r#"["\"a\"","b"]"#)];
        let texts = input(&Attrs::new(&attributes)).expect("values");
        assert_eq!(
            texts,
            vec![Message::text("user", "a"), Message::text("user", "b")]
        );
        let single = [s("ai.value", r#""sunny day""#)];
        assert_eq!(
            input(&Attrs::new(&single)).and_then(|m| m[0].content.clone()),
            Some("sunny day".to_owned())
        );
    }
}
