//! `/sessions/:session_id`: one session's conversation across its traces — its LLM turns in
//! order, each showing what is new in its input and then its output.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::account::Account;
use crate::api;
use crate::app::Route;
use crate::components::conversation::message;
use crate::components::load::{ErrorBox, Load, Loading, use_load};
use crate::conversation::{Message, continuation, messages};
use crate::format;
use crate::model::Session;
use crate::pages::sessions::short;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct SessionProps {
    pub account: Account,
    pub session_id: String,
}

#[function_component(SessionView)]
pub fn session_view(props: &SessionProps) -> Html {
    let account = props.account.clone();
    let session = use_load(props.session_id.clone(), move |id| async move {
        api::session(&account.key, &account.project_id, &id, api::now_ms()).await
    });
    let body = match &*session {
        Load::Loading => html! { <Loading /> },
        Load::Failed(error) => html! { <ErrorBox error={error.clone()} /> },
        Load::Loaded(None) => html! {
            <div class="empty" data-testid="empty">
                <h2>{ "No trace of the last 30 days carries this session id" }</h2>
            </div>
        },
        Load::Loaded(Some(session)) => conversation(session),
    };
    html! {
        <section class="page session">
            <div class="title-row">
                <Link<Route> to={Route::Sessions} classes="back">{ "← Sessions" }</Link<Route>>
                <h1>{ format!("Session {}", props.session_id) }</h1>
            </div>
            { body }
        </section>
    }
}

fn conversation(session: &Session) -> Html {
    let offset = api::utc_offset_minutes();
    // What the reader has seen so far: each turn's input usually repeats it.
    let mut seen: Vec<Message> = Vec::new();
    let turns: Vec<Html> = session
        .turns
        .iter()
        .enumerate()
        .map(|(n, turn)| {
            let input = turn.input_messages.as_ref().map(messages).unwrap_or_default();
            let output = turn.output_messages.as_ref().map(messages).unwrap_or_default();
            let new_input = continuation(&seen, &input).to_vec();
            seen = input;
            seen.extend(output.iter().cloned());
            let route = Route::Trace { trace_id: turn.trace_id.clone() };
            let failed = turn.status.code == "ERROR";
            html! {
                <div class="turn" data-testid="turn" data-trace-id={turn.trace_id.clone()}>
                    <div class="turn-head">
                        <span class="muted">{ format!("#{} · {}", n + 1, short(&turn.start_time, offset)) }</span>
                        <span>{ turn.model.clone().unwrap_or_else(|| turn.name.clone()) }</span>
                        <span>{ format::latency(turn.latency_ms) }</span>
                        <span>{ format::counted(turn.tokens.total, "token") }</span>
                        <span>{ format::dollars(turn.cost.total.as_deref()) }</span>
                        if failed { <span class="badge error">{ "error" }</span> }
                        <Link<Route, Vec<(String, String)>> to={route}
                            query={Some(vec![("span".to_owned(), turn.span_id.clone())])}>
                            { "open trace" }
                        </Link<Route, Vec<(String, String)>>>
                    </div>
                    <div class="conversation">
                        { for new_input.iter().map(message) }
                        { for output.iter().map(message) }
                    </div>
                </div>
            }
        })
        .collect();
    html! {
        <>
            <div class="facts" data-testid="session-summary">
                if let Some(user) = &session.user_id { <span>{ format!("user {user}") }</span> }
                <span>{ format::counted(session.trace_count, "trace") }</span>
                <span>{ format::counted(session.span_count, "span") }</span>
                <span>{ format::counted(session.total_tokens, "token") }</span>
                <span>{ format::dollars(Some(&session.total_cost)) }</span>
                if session.error_count > 0 {
                    <span class="badge error">{ format::counted(session.error_count, "error") }</span>
                }
                <span class="muted">{ format!("{} → {}", short(&session.first_seen, offset), short(&session.last_seen, offset)) }</span>
            </div>
            if turns.is_empty() {
                <p class="notice">{ "This session has no LLM calls." }</p>
            }
            { for turns }
        </>
    }
}
