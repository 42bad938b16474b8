//! Messages drawn as a conversation: one bubble per message with its role; tool calls and
//! tool results drawn apart from the dialogue.

use yew::prelude::*;

use crate::conversation::{Message, Part};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct ConversationProps {
    pub messages: Vec<Message>,
}

#[function_component(Conversation)]
pub fn conversation(props: &ConversationProps) -> Html {
    html! {
        <div class="conversation">
            { for props.messages.iter().map(message) }
        </div>
    }
}

/// One message (`data-testid="message"`, its role in `data-role`).
pub fn message(message: &Message) -> Html {
    let role = message.role.to_lowercase();
    let kind = if message.is_tool_result() {
        "tool-result-message"
    } else {
        "dialogue"
    };
    html! {
        <div class={classes!("message", format!("role-{role}"), kind)} data-testid="message"
            data-role={role.clone()}>
            <div class="role">{ &message.role }</div>
            { for message.parts.iter().map(part) }
        </div>
    }
}

fn part(part: &Part) -> Html {
    match part {
        Part::Text(text) => html! { <div class="content">{ text }</div> },
        Part::ToolCall {
            id,
            name,
            arguments,
        } => html! {
            <div class="tool-call" data-testid="tool-call">
                <div class="tool-head">
                    <span class="tool-icon">{ "⚙" }</span>
                    { "calls " }<code>{ name }</code>
                    if !id.is_empty() { <span class="muted">{ format!(" · {id}") }</span> }
                </div>
                if !arguments.is_empty() { <pre>{ arguments }</pre> }
            </div>
        },
        Part::ToolResult { call_id, content } => html! {
            <div class="tool-result" data-testid="tool-result">
                <div class="tool-head">
                    <span class="tool-icon">{ "↩" }</span>
                    { "result of " }<code>{ call_id }</code>
                </div>
                <pre>{ content }</pre>
            </div>
        },
    }
}
