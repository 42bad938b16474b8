//! `/users`: the people the application served in a time range, most recent first; each
//! links to the traces list filtered by that user.

use yew::prelude::*;
use yew_router::prelude::*;

use crate::api;
use crate::app::Route;
use crate::components::load::{ErrorBox, Load, Loading, use_load};
use crate::format;
use crate::pages::sessions::{list_navigation, pager, range_select, short};
use crate::pages::{PageProps, query_pairs};
use crate::query::{ListQuery, TraceListQuery};

#[function_component(Users)]
pub fn users(props: &PageProps) -> Html {
    let location = use_location();
    let navigator = use_navigator();
    let query = ListQuery::from_pairs(&query_pairs(location.as_ref()));
    let account = props.account.clone();
    let page = use_load(query.clone(), move |query| async move {
        api::users(&account.key, &account.project_id, &query, api::now_ms()).await
    });
    let go = list_navigation(navigator, Route::Users);
    let offset = api::utc_offset_minutes();
    let body = match &*page {
        Load::Loading => html! { <Loading /> },
        Load::Failed(error) => html! { <ErrorBox error={error.clone()} /> },
        Load::Loaded(list) if list.nodes.is_empty() => html! {
            <div class="empty" data-testid="empty">
                <h2>{ format!("No users in the {}", query.range.label().to_lowercase()) }</h2>
                <p>{ "Users come from the " }<code>{ "user.id" }</code>{ " attribute of spans." }</p>
            </div>
        },
        Load::Loaded(list) => html! {
            <>
                <table class="grid" data-testid="users-table">
                    <thead><tr>
                        <th>{ "User" }</th><th>{ "Traces" }</th><th>{ "Sessions" }</th>
                        <th>{ "Spans" }</th><th>{ "Errors" }</th><th>{ "Tokens" }</th>
                        <th>{ "Cost" }</th><th>{ "First seen" }</th><th>{ "Last seen" }</th>
                    </tr></thead>
                    <tbody>
                        { for list.nodes.iter().map(|u| {
                            let traces = TraceListQuery::default().refined(|q| {
                                q.user = u.id.clone();
                                q.range = query.range;
                            });
                            html! {
                                <tr data-testid="user-row" data-user-id={u.id.clone()}>
                                    <td><Link<Route, Vec<(String, String)>> to={Route::Traces} query={Some(traces.to_pairs())}>
                                        { &u.id }</Link<Route, Vec<(String, String)>>></td>
                                    <td class="num">{ format::count(u.trace_count) }</td>
                                    <td class="num">{ format::count(u.session_count) }</td>
                                    <td class="num">{ format::count(u.span_count) }</td>
                                    <td class="num">{ format::count(u.error_count) }</td>
                                    <td class="num">{ format::count(u.total_tokens) }</td>
                                    <td class="num">{ format::dollars(Some(&u.total_cost)) }</td>
                                    <td class="time">{ short(&u.first_seen, offset) }</td>
                                    <td class="time">{ short(&u.last_seen, offset) }</td>
                                </tr>
                            }
                        }) }
                    </tbody>
                </table>
                { pager(&query, list.page_info.end_cursor.clone().filter(|_| list.page_info.has_next_page), &go) }
            </>
        },
    };
    html! {
        <section class="page users">
            <div class="title-row">
                <h1>{ "Users" }</h1>
                { range_select(&query, &go) }
            </div>
            { body }
        </section>
    }
}
