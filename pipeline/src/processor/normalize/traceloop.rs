//! Traceloop / OpenLLMetry: messages and tool calls.
//!
//! Model spans flatten messages as `gen_ai.prompt.<i>.{role,content,tool_call_id}` with
//! `gen_ai.prompt.<i>.tool_calls.<k>.{id,name,arguments}`, and the answer as
//! `gen_ai.completion.<i>.{role,content,finish_reason}` with the same `tool_calls` (older
//! versions: `function_call.{name,arguments}`). A `content` holding a JSON part list (how
//! OpenLLMetry writes multi-part content) is read as parts. Workflow, task, agent and tool spans
//! (`traceloop.span.kind`) carry `traceloop.entity.name` and JSON `traceloop.entity.input` /
//! `traceloop.entity.output`, read by the caller.

use serde_json::{Map, Value as Json};

use super::attrs::Attrs;
use super::messages::{Message, from_json, non_empty};

pub(super) fn input(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    flattened(attrs, "gen_ai.prompt.", "user")
}

pub(super) fn output(attrs: &Attrs<'_>) -> Option<Vec<Message>> {
    flattened(attrs, "gen_ai.completion.", "assistant")
}

/// The tool fields of a `tool` entity span: name, call id (none), arguments.
pub(super) fn tool(attrs: &Attrs<'_>) -> [Option<String>; 3] {
    if attrs.str("traceloop.span.kind") != Some("tool") {
        return [None, None, None];
    }
    [
        attrs.text("traceloop.entity.name"),
        None,
        attrs.text("traceloop.entity.input"),
    ]
}

fn flattened(attrs: &Attrs<'_>, prefix: &str, default_role: &str) -> Option<Vec<Message>> {
    let mut messages = Vec::new();
    for fields in attrs.indexed(prefix).values() {
        let mut message = Map::new();
        let role = fields.str("role").unwrap_or(default_role);
        message.insert("role".into(), Json::from(role));
        if let Some(content) = fields.text("content") {
            let parts = serde_json::from_str::<Json>(&content)
                .ok()
                .filter(Json::is_array);
            message.insert("content".into(), parts.unwrap_or(Json::String(content)));
        }
        let mut calls: Vec<Json> = fields
            .indexed("tool_calls.")
            .values()
            .map(|call| {
                serde_json::json!({
                    "id": call.text("id").unwrap_or_default(),
                    "name": call.text("name").unwrap_or_default(),
                    "arguments": call.text("arguments").unwrap_or_default(),
                })
            })
            .collect();
        if let Some(name) = fields.text("function_call.name") {
            calls.push(serde_json::json!({
                "name": name,
                "arguments": fields.text("function_call.arguments").unwrap_or_default(),
            }));
        }
        if !calls.is_empty() {
            message.insert("tool_calls".into(), Json::Array(calls));
        }
        if let Some(id) = fields.text("tool_call_id") {
            message.insert("tool_call_id".into(), Json::from(id));
        }
        messages.extend(from_json(&Json::Object(message), default_role));
    }
    non_empty(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::s;
    use serde_json::json;

    #[test]
    fn reads_flattened_prompts_and_completions() {
        let attributes = [
            s("gen_ai.prompt.0.role", "user"),
            s(
                "gen_ai.prompt.0.content",
                r#"[{"type":"text","text":"Describe"},{"type":"image_url","image_url":{"url":"u"}}]"#,
            ),
            s("gen_ai.prompt.1.role", "tool"),
            s("gen_ai.prompt.1.content", "72F"),
            s("gen_ai.prompt.1.tool_call_id", "call_1"),
            s("gen_ai.completion.0.role", "assistant"),
            s("gen_ai.completion.0.finish_reason", "tool_calls"),
            s("gen_ai.completion.0.tool_calls.0.id", "call_2"),
            s("gen_ai.completion.0.tool_calls.0.name", "lookup"),
            s("gen_ai.completion.0.tool_calls.0.arguments", r#"{"id":7}"#),
        ];
        let attrs = Attrs::new(&attributes);
        assert_eq!(
            serde_json::to_value(input(&attrs)).expect("serializes"),
            json!([
                {"role":"user","content":"Describe\n[image_url]"},
                {"role":"tool","content":"72F","tool_call_id":"call_1"}
            ])
        );
        assert_eq!(
            serde_json::to_value(output(&attrs)).expect("serializes"),
            json!([{"role":"assistant","content":null,
                "tool_calls":[{"id":"call_2","name":"lookup","arguments":"{\"id\":7}"}]}])
        );
    }

    #[test]
    fn tool_entities_name_the_tool() {
        let attributes = [
            s("traceloop.span.kind", "tool"),
            s("traceloop.entity.name", "get_weather"),
            s(
                "traceloop.entity.input",
                r#"{"args":["Paris"],"kwargs":{}}"#,
            ),
        ];
        let [name, id, arguments] = tool(&Attrs::new(&attributes));
        assert_eq!(name.as_deref(), Some("get_weather"));
        assert_eq!(id, None);
        assert_eq!(
            arguments.as_deref(),
            Some(r#"{"args":["Paris"],"kwargs":{}}"#)
        );
    }
}
