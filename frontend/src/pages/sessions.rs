//! `/sessions`: sessions active in a time range (URL `range`), most recent first, paged with
//! a cursor stack in the URL (`after`).

use yew::prelude::*;
use yew_router::prelude::*;

use crate::api;
use crate::app::Route;
use crate::components::load::{ErrorBox, Load, Loading, Pager, use_load};
use crate::datetime;
use crate::format;
use crate::pages::{PageProps, query_pairs};
use crate::query::{ListQuery, TimePreset};

#[function_component(Sessions)]
pub fn sessions(props: &PageProps) -> Html {
    let location = use_location();
    let navigator = use_navigator();
    let query = ListQuery::from_pairs(&query_pairs(location.as_ref()));
    let account = props.account.clone();
    let page = use_load(query.clone(), move |query| async move {
        api::sessions(&account.key, &account.project_id, &query, api::now_ms()).await
    });
    let go = list_navigation(navigator, Route::Sessions);
    let offset = api::utc_offset_minutes();
    let body = match &*page {
        Load::Loading => html! { <Loading /> },
        Load::Failed(error) => html! { <ErrorBox error={error.clone()} /> },
        Load::Loaded(list) if list.nodes.is_empty() => html! {
            <div class="empty" data-testid="empty">
                <h2>{ format!("No sessions in the {}", query.range.label().to_lowercase()) }</h2>
                <p>{ "A session groups the traces whose spans carry the same " }
                    <code>{ "session.id" }</code>{ " attribute." }</p>
            </div>
        },
        Load::Loaded(list) => html! {
            <>
                <table class="grid" data-testid="sessions-table">
                    <thead><tr>
                        <th>{ "Session" }</th><th>{ "User" }</th><th>{ "Traces" }</th>
                        <th>{ "Spans" }</th><th>{ "Errors" }</th><th>{ "Tokens" }</th>
                        <th>{ "Cost" }</th><th>{ "First seen" }</th><th>{ "Last seen" }</th>
                    </tr></thead>
                    <tbody>
                        { for list.nodes.iter().map(|s| html! {
                            <tr data-testid="session-row" data-session-id={s.id.clone()}>
                                <td><Link<Route> to={Route::Session { session_id: s.id.clone() }}>{ &s.id }</Link<Route>></td>
                                <td>{ s.user_id.clone().unwrap_or_default() }</td>
                                <td class="num">{ format::count(s.trace_count) }</td>
                                <td class="num">{ format::count(s.span_count) }</td>
                                <td class="num">{ format::count(s.error_count) }</td>
                                <td class="num">{ format::count(s.total_tokens) }</td>
                                <td class="num">{ format::dollars(Some(&s.total_cost)) }</td>
                                <td class="time">{ short(&s.first_seen, offset) }</td>
                                <td class="time">{ short(&s.last_seen, offset) }</td>
                            </tr>
                        }) }
                    </tbody>
                </table>
                { pager(&query, list.page_info.end_cursor.clone().filter(|_| list.page_info.has_next_page), &go) }
            </>
        },
    };
    html! {
        <section class="page sessions">
            <div class="title-row">
                <h1>{ "Sessions" }</h1>
                { range_select(&query, &go) }
            </div>
            { body }
        </section>
    }
}

/// A time shown in the browser's zone.
pub(crate) fn short(time: &str, offset: i64) -> String {
    datetime::parse_nanos(time)
        .map(|ns| datetime::short(ns, offset))
        .unwrap_or_default()
}

/// Navigates a list route to another view of it.
pub(crate) fn list_navigation(navigator: Option<Navigator>, route: Route) -> Callback<ListQuery> {
    Callback::from(move |next: ListQuery| {
        if let Some(navigator) = &navigator {
            let _ = navigator.push_with_query(&route, &next.to_pairs());
        }
    })
}

pub(crate) fn range_select(query: &ListQuery, go: &Callback<ListQuery>) -> Html {
    let query = query.clone();
    let current = query.range;
    let onchange = go.reform(move |event: Event| {
        let value = event
            .target_dyn_into::<web_sys::HtmlSelectElement>()
            .map(|s| s.value())
            .unwrap_or_default();
        query.with_range(TimePreset::from_code(&value).unwrap_or(TimePreset::Days7))
    });
    html! {
        <select key={current.code()} data-testid="range" {onchange}>
            { for TimePreset::ALL.iter().map(|p| html! {
                <option value={p.code()} selected={*p == current}>{ p.label() }</option>
            }) }
        </select>
    }
}

pub(crate) fn pager(query: &ListQuery, next: Option<String>, go: &Callback<ListQuery>) -> Html {
    let previous = query.previous_page();
    let on_previous = go.reform(move |()| previous.clone());
    let has_next = next.is_some();
    let next_query = next.map(|cursor| query.next_page(&cursor));
    let on_next = {
        let go = go.clone();
        Callback::from(move |()| {
            if let Some(next) = &next_query {
                go.emit(next.clone());
            }
        })
    };
    html! { <Pager has_previous={!query.cursors.is_empty()} {has_next} {on_previous} {on_next} /> }
}
