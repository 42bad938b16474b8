//! OpenInference (Arize Phoenix and its instrumentations): messages and tool calls.
//!
//! Flattened messages: `llm.input_messages.<i>.message.role`, `.message.content` or
//! `.message.contents.<j>.message_content.{type,text}`, `.message.tool_calls.<k>.tool_call.{id,
//! function.name,function.arguments}`, `.message.tool_call_id`; the same under
//! `llm.output_messages`. Embedding spans list their texts in
//! `embedding.embeddings.<i>.embedding.text`. Tool spans name the tool in `tool.name` and the
//! call in `tool_call.id` / `tool_call.function.arguments`; their arguments are otherwise the
//! span's `input.value` (`tool.parameters` is the tool's parameter schema, the last resort).
//! The generic `input.value` / `output.value` are read by the caller as a fallback.

use super::attrs::Attrs;
use super::messages::{Message, ToolCall, non_empty};

pub(super) fn input(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    flattened(attrs, "llm.input_messages.").or_else(|| embeddings(attrs))
}

pub(super) fn output(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    flattened(attrs, "llm.output_messages.")
}

/// The tool fields of a TOOL span: name, call id, arguments.
pub(super) fn tool(attrs: &Attrs<'_>) -> [Option<String>; 3] {
    [
        attrs.first_text(&["tool.name", "tool_call.function.name"]),
        attrs.first_text(&["tool_call.id", "tool.id"]),
        attrs.first_text(&[
            "tool_call.function.arguments",
            "input.value",
            "tool.parameters",
        ]),
    ]
}

fn flattened(attrs: &Attrs<'_>, prefix: &str) -> Option<Vec<Message>> {
    let messages = attrs
        .indexed(prefix)
        .values()
        .map(|fields| message(fields))
        .collect();
    non_empty(messages)
}

fn message(fields: &Attrs<'_>) -> Message {
    let role = fields.str("message.role").unwrap_or("user");
    let mut content = fields.text("message.content");
    if content.is_none() {
        let parts: Vec<String> = fields
            .indexed("message.contents.")
            .values()
            .filter_map(
                |part| match part.str("message_content.type").unwrap_or("text") {
                    "text" => part.text("message_content.text"),
                    other => Some(format!("[{other}]")),
                },
            )
            .collect();
        content = (!parts.is_empty()).then(|| parts.join("\n"));
    }
    let tool_calls = fields
        .indexed("message.tool_calls.")
        .values()
        .map(|call| ToolCall {
            id: call.text("tool_call.id").unwrap_or_default(),
            name: call.text("tool_call.function.name").unwrap_or_default(),
            arguments: call
                .text("tool_call.function.arguments")
                .unwrap_or_default(),
        })
        .collect();
    Message {
        role: role.to_owned(),
        content,
        tool_calls,
        tool_call_id: fields.text("message.tool_call_id"),
    }
}

fn embeddings(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    let texts = attrs
        .indexed("embedding.embeddings.")
        .values()
        .filter_map(|e| e.text("embedding.text"))
        .map(|text| Message::text("user", text))
        .collect();
    non_empty(texts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::s;
    use serde_json::json;

    #[test]
    fn reads_flattened_messages_with_parts_and_tool_calls() {
        let attributes = [
            s("llm.input_messages.0.message.role", "system"),
            s(
                "llm.input_messages.0.message.content",
                "Answer from the docs.",
            ),
            s("llm.input_messages.1.message.role", "user"),
            s(
                "llm.input_messages.1.message.contents.0.message_content.type",
                "text",
            ),
            s(
                "llm.input_messages.1.message.contents.0.message_content.text",
                "What is RAG?",
            ),
            s(
                "llm.input_messages.1.message.contents.1.message_content.type",
                "image",
            ),
            s("llm.output_messages.0.message.role", "assistant"),
            s(
                "llm.output_messages.0.message.tool_calls.0.tool_call.id",
                "call_9",
            ),
            s(
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
                "search",
            ),
            s(
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
                r#"{"q":"rag"}"#,
            ),
        ];
        let attrs = Attrs::new(&attributes);
        assert_eq!(
            serde_json::to_value(input(&attrs)).expect("serializes"),
            json!([
                {"role":"system","content":"Answer from the docs."},
                {"role":"user","content":"What is RAG?\n[image]"}
            ])
        );
        assert_eq!(
            serde_json::to_value(output(&attrs)).expect("serializes"),
            json!([{"role":"assistant","content":null,
                "tool_calls":[{"id":"call_9","name":"search","arguments":"{\"q\":\"rag\"}"}]}])
        );
    }

    #[test]
    fn embedding_texts_are_the_input() {
        let attributes = [
            s("embedding.embeddings.0.embedding.text", "alpha"),
            s("embedding.embeddings.1.embedding.text", "beta"),
        ];
        let messages = input(&Attrs::new(&attributes)).expect("texts");
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].content.as_deref(), Some("beta"));
    }

    #[test]
    fn tool_arguments_prefer_the_call_then_the_input() {
        let attributes = [s("tool.name", "search"), s("input.value", r#"{"q":"x"}"#)];
        let [name, id, arguments] = tool(&Attrs::new(&attributes));
        assert_eq!(name.as_deref(), Some("search"));
        assert_eq!(id, None);
        assert_eq!(arguments.as_deref(), Some(r#"{"q":"x"}"#));
    }
}
