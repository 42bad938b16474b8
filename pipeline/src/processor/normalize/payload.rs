//! The span's content — input and output messages, tool name, call id and arguments — from
//! whichever convention carries it, and which attributes that content came from (they leave the
//! attribute map: the message columns hold them, capped, and S3 holds them whole).
//!
//! Precedence, the first non-empty wins, separately for input and output: GenAI attributes,
//! OpenInference messages, Traceloop prompts/completions, Vercel AI SDK, GenAI span events, then
//! the generic payloads (`input.value`/`output.value`, `traceloop.entity.*`,
//! `traceroot.span.*`), which become messages when they hold a message list and one text
//! message otherwise. For tool spans the input is the tool call's arguments and the output one
//! `tool` message with the result.

use opentelemetry_proto::tonic::trace::v1::span::Event;
use spindle_schemas::canonical::SpanKind;

use super::attrs::Attrs;
use super::messages::{Message, from_text};
use super::{genai, openinference, traceloop, vercel};

#[derive(Debug, Default)]
pub(super) struct Payload {
    pub(super) input: Vec<Message>,
    pub(super) output: Vec<Message>,
    pub(super) tool_name: String,
    pub(super) tool_call_id: String,
    pub(super) tool_arguments: String,
}

const INPUT_VALUES: &[&str] = &[
    "input.value",
    "traceloop.entity.input",
    "traceroot.span.input",
];
const OUTPUT_VALUES: &[&str] = &[
    "output.value",
    "traceloop.entity.output",
    "traceroot.span.output",
];

/// Attributes whose content the payload columns carry.
const PAYLOAD_KEYS: &[&str] = &[
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
    "input.value",
    "output.value",
    "tool_call.function.arguments",
    "traceloop.entity.input",
    "traceloop.entity.output",
    "traceroot.span.input",
    "traceroot.span.output",
    "ai.prompt",
    "ai.prompt.messages",
    "ai.response.text",
    "ai.response.toolCalls",
    "ai.response.object",
    "ai.result.text",
    "ai.result.toolCalls",
    "ai.result.object",
    "ai.toolCall.args",
    "ai.toolCall.input",
    "ai.toolCall.result",
    "ai.toolCall.output",
    "ai.value",
    "ai.values",
    "ai.embedding",
    "ai.embeddings",
];

const PAYLOAD_PREFIXES: &[&str] = &[
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "embedding.embeddings.",
];

pub(super) fn extract(attrs: &Attrs<'_>, events: &[Event], kind: SpanKind) -> Payload {
    if kind == SpanKind::Tool {
        return tool(attrs);
    }
    let input = genai::input(attrs)
        .or_else(|| openinference::input(attrs))
        .or_else(|| traceloop::input(attrs))
        .or_else(|| vercel::input(attrs))
        .or_else(|| genai::input_from_events(events))
        .or_else(|| generic(attrs, INPUT_VALUES, "user"))
        .unwrap_or_default();
    let output = genai::output(attrs)
        .or_else(|| openinference::output(attrs))
        .or_else(|| traceloop::output(attrs))
        .or_else(|| vercel::output(attrs))
        .or_else(|| genai::output_from_events(events))
        .or_else(|| generic(attrs, OUTPUT_VALUES, "assistant"))
        .unwrap_or_default();
    Payload {
        input,
        output,
        ..Payload::default()
    }
}

/// Whether an attribute's content is carried by the payload columns.
pub(super) fn is_payload_key(key: &str) -> bool {
    PAYLOAD_KEYS.contains(&key) || PAYLOAD_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Whether an event attribute's content is carried by the payload columns.
pub(super) fn is_payload_event_key(event_name: &str, key: &str) -> bool {
    genai::MESSAGE_EVENTS.contains(&event_name) && genai::MESSAGE_EVENT_KEYS.contains(&key)
}

fn tool(attrs: &Attrs<'_>) -> Payload {
    let sources = [
        genai::tool(attrs),
        vercel::tool(attrs),
        traceloop::tool(attrs),
        openinference::tool(attrs),
        [None, None, attrs.text("traceroot.span.input")],
    ];
    let field = |n: usize| {
        sources
            .iter()
            .find_map(|source| source[n].clone())
            .unwrap_or_default()
    };
    let tool_call_id = field(1);
    let result = genai::tool_result(attrs)
        .or_else(|| vercel::tool_result(attrs))
        .or_else(|| attrs.first_text(OUTPUT_VALUES));
    let output = result
        .map(|result| vec![Message::tool_result(Some(tool_call_id.clone()), result)])
        .unwrap_or_default();
    Payload {
        input: Vec::new(),
        output,
        tool_name: field(0),
        tool_call_id,
        tool_arguments: field(2),
    }
}

fn generic(attrs: &Attrs<'_>, keys: &[&str], role: &str) -> Option<Vec<Message>> {
    attrs.first_text(keys).map(|text| from_text(&text, role))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::s;

    #[test]
    fn tool_spans_take_arguments_and_result_from_any_convention() {
        let attributes = [
            s("ai.toolCall.name", "weather"),
            s("ai.toolCall.id", "call_1"),
            s("ai.toolCall.args", r#"{"city":"Paris"}"#),
            s("ai.toolCall.result", r#"{"temp":21}"#),
        ];
        let payload = extract(&Attrs::new(&attributes), &[], SpanKind::Tool);
        assert_eq!(payload.tool_name, "weather");
        assert_eq!(payload.tool_call_id, "call_1");
        assert_eq!(payload.tool_arguments, r#"{"city":"Paris"}"#);
        assert_eq!(
            payload.output,
            vec![Message::tool_result(
                Some("call_1".into()),
                r#"{"temp":21}"#
            )]
        );
        assert!(payload.input.is_empty());
    }

    #[test]
    fn generic_values_become_messages_or_text() {
        let attributes = [
            s(
                "input.value",
                r#"{"messages":[{"role":"user","content":"hi"}],"model":"m"}"#,
            ),
            s("output.value", r#"{"answer": 42}"#),
        ];
        let payload = extract(&Attrs::new(&attributes), &[], SpanKind::Chain);
        assert_eq!(payload.input, vec![Message::text("user", "hi")]);
        assert_eq!(
            payload.output,
            vec![Message::text("assistant", r#"{"answer": 42}"#)]
        );
    }

    #[test]
    fn payload_keys_leave_the_attribute_map() {
        assert!(is_payload_key("gen_ai.prompt.0.content"));
        assert!(is_payload_key("llm.input_messages.3.message.role"));
        assert!(is_payload_key("ai.prompt.messages"));
        assert!(!is_payload_key("ai.prompt.tools"));
        assert!(!is_payload_key("gen_ai.usage.input_tokens"));
        assert!(is_payload_event_key("gen_ai.choice", "message"));
        assert!(!is_payload_event_key("gen_ai.choice", "finish_reason"));
        assert!(!is_payload_event_key("exception", "message"));
    }
}
