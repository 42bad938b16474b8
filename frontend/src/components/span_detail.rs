//! The selected span in full: what it is, its messages as a conversation, tokens per bucket,
//! cost with its status, attributes and events. The full span loads on selection; a live span
//! not stored yet shows its skeleton until it is.

use yew::prelude::*;

use crate::account::Account;
use crate::api;
use crate::components::conversation::Conversation;
use crate::components::load::{ErrorBox, Load, Loading, use_load};
use crate::conversation::messages;
use crate::datetime;
use crate::format;
use crate::model::{KeyValue, Span};

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct SpanDetailProps {
    pub account: Account,
    pub trace_id: String,
    pub span_id: String,
    /// The tree's copy of the span, shown while the full one loads or is not stored yet.
    pub skeleton: Option<Span>,
    /// Changes when the trace was reloaded (after `PERSISTED`), to load the span again.
    pub reload: u32,
}

#[function_component(SpanDetail)]
pub fn span_detail(props: &SpanDetailProps) -> Html {
    let account = props.account.clone();
    let deps = (props.trace_id.clone(), props.span_id.clone(), props.reload);
    let full = use_load(deps, move |(trace_id, span_id, _)| async move {
        api::span(&account.key, &account.project_id, &trace_id, &span_id).await
    });
    let body = match (&*full, &props.skeleton) {
        (Load::Loaded(Some(span)), _) => detail(span, true),
        (Load::Loaded(None), Some(skeleton)) => html! {
            <>
                <p class="notice">{ "This span is not stored yet: its messages, attributes and \
                    events show once it is." }</p>
                { detail(skeleton, false) }
            </>
        },
        (Load::Loaded(None), None) => html! { <p>{ "No such span in this trace." }</p> },
        (Load::Failed(error), _) => html! { <ErrorBox error={error.clone()} /> },
        (Load::Loading, Some(skeleton)) => detail(skeleton, false),
        (Load::Loading, None) => html! { <Loading /> },
    };
    html! { <aside class="span-detail" data-testid="span-detail" data-span-id={props.span_id.clone()}>{ body }</aside> }
}

fn detail(span: &Span, full: bool) -> Html {
    let offset = api::utc_offset_minutes();
    let start = datetime::parse_nanos(&span.start_time).unwrap_or_default();
    let input = span
        .input_messages
        .as_ref()
        .map(messages)
        .unwrap_or_default();
    let output = span
        .output_messages
        .as_ref()
        .map(messages)
        .unwrap_or_default();
    let failed = span.status.code == "ERROR";
    html! {
        <>
            <h2 data-testid="span-name">{ &span.name }</h2>
            <div class="facts">
                <span class={classes!("kind", format!("kind-{}", span.kind.to_lowercase()))}>{ &span.kind }</span>
                <span class={classes!("badge", if failed { "error" } else { "ok" })}>
                    { &span.status.code }
                </span>
                <span>{ format::latency(span.latency_ms) }</span>
                <span class="muted">{ datetime::long(start, offset) }</span>
                <span class="muted">{ &span.service }</span>
            </div>
            if failed && !span.status.message.is_empty() {
                <div class="error"><span class="message">{ &span.status.message }</span></div>
            }
            <dl class="pairs">
                if let Some(model) = &span.model { <dt>{ "Model" }</dt><dd>{ model }</dd> }
                if let Some(provider) = &span.provider { <dt>{ "Provider" }</dt><dd>{ provider }</dd> }
                if let Some(tool) = &span.tool_name { <dt>{ "Tool" }</dt><dd><code>{ tool }</code></dd> }
                if let Some(call) = &span.tool_call_id { <dt>{ "Tool call" }</dt><dd><code>{ call }</code></dd> }
                if let Some(session) = &span.session_id { <dt>{ "Session" }</dt><dd>{ session }</dd> }
                if let Some(user) = &span.user_id { <dt>{ "User" }</dt><dd>{ user }</dd> }
                <dt>{ "Span id" }</dt><dd><code>{ &span.span_id }</code></dd>
            </dl>
            if !span.cost.status.is_empty() && (span.tokens.total > 0 || span.cost.status != "NO_USAGE") {
                <div class="usage">
                    { tokens(span) }
                    { cost(span) }
                </div>
            }
            if let Some(arguments) = &span.tool_arguments {
                <h3>{ "Tool arguments" }</h3>
                <div class="tool-call" data-testid="tool-arguments"><pre>{ pretty(arguments) }</pre></div>
            }
            if !input.is_empty() {
                <h3>{ "Input" }</h3>
                <Conversation messages={input} />
            }
            if !output.is_empty() {
                <h3>{ "Output" }</h3>
                <Conversation messages={output} />
            }
            if span.messages_truncated {
                <p class="notice">{ "Messages were cut to fit the store; the archive holds them whole" }
                    if let Some(pointer) = &span.raw_pointer { { " (" }<code>{ pointer }</code>{ ")" } }
                    { "." }</p>
            }
            if full {
                { pairs("Attributes", &span.attributes) }
                { pairs("Resource", &span.resource_attributes) }
                if !span.events.is_empty() {
                    <h3>{ "Events" }</h3>
                    <ul class="events">
                        { for span.events.iter().map(|event| {
                            let at = datetime::parse_nanos(&event.time).unwrap_or_default();
                            html! {
                                <li>
                                    <span class="muted">{ format!("+{}", format::latency((at - start) as f64 / 1e6)) }</span>
                                    { " " }<strong>{ &event.name }</strong>
                                    { pairs("", &event.attributes) }
                                </li>
                            }
                        }) }
                    </ul>
                }
            }
        </>
    }
}

fn tokens(span: &Span) -> Html {
    let t = &span.tokens;
    let rows = [
        ("Input", t.input),
        ("Output", t.output),
        ("Cache read", t.cache_read),
        ("Cache write", t.cache_write),
        ("Reasoning", t.reasoning),
        ("Total", t.total),
    ];
    html! {
        <table class="mini" data-testid="tokens">
            <caption>{ "Tokens" }</caption>
            { for rows.iter().map(|(label, n)| html! {
                <tr><th>{ *label }</th><td class="num">{ format::count(*n) }</td></tr>
            }) }
        </table>
    }
}

fn cost(span: &Span) -> Html {
    let c = &span.cost;
    let status = match c.status.as_str() {
        "COMPUTED" => "tokens × the price table",
        "PROVIDER_REPORTED" => "reported by the producer",
        "UNKNOWN_MODEL" => "no price for this model: unknown, not zero",
        "NO_USAGE" => "no token usage",
        other => other,
    };
    html! {
        <table class="mini" data-testid="cost">
            <caption>{ "Cost (USD)" }</caption>
            <tr><th>{ "Input" }</th><td class="num">{ format::dollars(c.input.as_deref()) }</td></tr>
            <tr><th>{ "Output" }</th><td class="num">{ format::dollars(c.output.as_deref()) }</td></tr>
            <tr><th>{ "Total" }</th><td class="num">{ format::dollars(c.total.as_deref()) }</td></tr>
            <tr><th>{ "Status" }</th><td><code>{ &c.status }</code><div class="muted">{ status }</div></td></tr>
        </table>
    }
}

fn pairs(title: &'static str, items: &[KeyValue]) -> Html {
    if items.is_empty() {
        return html! {};
    }
    html! {
        <>
            if !title.is_empty() { <h3>{ title }</h3> }
            <table class="kv">
                { for items.iter().map(|kv| html! {
                    <tr><th>{ &kv.key }</th><td>{ &kv.value }</td></tr>
                }) }
            </table>
        </>
    }
}

/// JSON text pretty-printed when it parses.
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}
