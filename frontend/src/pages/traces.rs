//! `/traces`: the trace list. Filters, sort, page and live mode live in the URL
//! ([`TraceListQuery`]); live mode subscribes to `liveTraces` and writes the running summaries
//! into the table as they arrive.

use std::rc::Rc;

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;
use yew_router::prelude::*;

use crate::account::Account;
use crate::api::{self, ApiError, Subscription, SubscriptionEvent};
use crate::app::Route;
use crate::components::load::{ErrorBox, Load, Loading, Pager, use_load};
use crate::datetime;
use crate::format;
use crate::model::{Connection, LiveTraceEvent, PageInfo, TraceRow, TraceSummary, merge_live};
use crate::pages::{PageProps, query_pairs};
use crate::query::{ErrorFilter, SortField, TimePreset, TraceListQuery};

const PAGE_SIZE: usize = 50;
/// Rows kept when live updates keep adding traces.
const LIVE_CAP: usize = 500;

#[function_component(Traces)]
pub fn traces(props: &PageProps) -> Html {
    let location = use_location();
    let navigator = use_navigator();
    let query = TraceListQuery::from_pairs(&query_pairs(location.as_ref()));
    let table = use_reducer(Table::default);
    let generation = use_mut_ref(|| 0_u64);
    let refresh = use_state(|| 0_u32);

    // The stored page, whenever the view (or the refresh counter) changes.
    {
        let table = table.dispatcher();
        let account = props.account.clone();
        use_effect_with((query.clone(), *refresh), move |(query, _)| {
            *generation.borrow_mut() += 1;
            let mine = *generation.borrow();
            table.dispatch(TableAction::Fetch(mine));
            let query = query.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let answer = api::traces(
                    &account.key,
                    &account.project_id,
                    &query,
                    PAGE_SIZE,
                    api::now_ms(),
                )
                .await;
                table.dispatch(match answer {
                    Ok(page) => TableAction::Loaded(mine, page),
                    Err(error) => TableAction::Failed(mine, error),
                });
            });
        });
    }

    // Live mode: new traces go on top when the page shows the newest first.
    {
        let table = table.dispatcher();
        let account = props.account.clone();
        let prepend =
            query.cursors.is_empty() && query.sort == SortField::StartTime && !query.ascending;
        let deps = (query.live, query.live_filter(), prepend);
        use_effect_with(deps, move |(live, filter, prepend)| {
            let subscription: Option<Subscription> = live.then(|| {
                table.dispatch(TableAction::Live(LiveState::Connecting));
                let prepend = *prepend;
                let table = table.clone();
                api::subscribe(
                    &account.key,
                    api::live_traces_subscription(),
                    serde_json::json!({"p": account.project_id, "f": filter}),
                    Callback::from(move |event| match event {
                        SubscriptionEvent::Connected => {
                            table.dispatch(TableAction::Live(LiveState::On))
                        }
                        SubscriptionEvent::Data(data) => {
                            let Ok(event) = serde_json::from_value::<LiveTraceEvent>(
                                data.get("liveTraces").cloned().unwrap_or_default(),
                            ) else {
                                return;
                            };
                            if let (true, Some(trace)) = (event.kind == "UPDATE", &event.trace) {
                                table.dispatch(TableAction::Row(TraceRow::from(trace), prepend));
                            }
                        }
                        SubscriptionEvent::Failed(error) => {
                            table.dispatch(TableAction::Live(LiveState::Failed(error)))
                        }
                        SubscriptionEvent::Completed => {
                            table.dispatch(TableAction::Live(LiveState::Off))
                        }
                    }),
                )
            });
            if !*live {
                table.dispatch(TableAction::Live(LiveState::Off));
            }
            move || drop(subscription)
        });
    }

    let go = {
        let navigator = navigator.clone();
        Callback::from(move |next: TraceListQuery| {
            if let Some(navigator) = &navigator {
                let _ = navigator.push_with_query(&Route::Traces, &next.to_pairs());
            }
        })
    };

    let body = match &table.status {
        Load::Loading => html! { <Loading /> },
        Load::Failed(error) => html! { <ErrorBox error={error.clone()} /> },
        Load::Loaded(()) if table.rows.is_empty() => empty(&query, &props.account, &go),
        Load::Loaded(()) => rows_table(&table.rows, &query, &go, navigator.clone()),
    };
    let pager = {
        let (previous, next) = (query.previous_page(), table.page_info.end_cursor.clone());
        let next_query = next.map(|cursor| query.next_page(&cursor));
        let on_previous = go.reform(move |_| previous.clone());
        let has_next = table.page_info.has_next_page && next_query.is_some();
        let on_next = {
            let go = go.clone();
            Callback::from(move |_| {
                if let Some(next) = &next_query {
                    go.emit(next.clone());
                }
            })
        };
        html! { <Pager has_previous={!query.cursors.is_empty()} {has_next} {on_previous} {on_next} /> }
    };
    let on_refresh = {
        let refresh = refresh.clone();
        Callback::from(move |_: MouseEvent| refresh.set(*refresh + 1))
    };

    html! {
        <section class="page traces">
            <div class="title-row">
                <h1>{ "Traces" }</h1>
                <LiveToggle query={query.clone()} state={table.live.clone()} go={go.clone()} />
                <button onclick={on_refresh} data-testid="refresh">{ "Refresh" }</button>
            </div>
            <Filters query={query.clone()} go={go.clone()} account={props.account.clone()} />
            { body }
            { pager }
        </section>
    }
}

/// The table's data, live state included; answers to an older request are dropped.
#[derive(Debug, Clone, PartialEq)]
struct Table {
    generation: u64,
    status: Load<()>,
    rows: Vec<TraceRow>,
    page_info: PageInfo,
    live: LiveState,
}

impl Default for Table {
    fn default() -> Table {
        Table {
            generation: 0,
            status: Load::Loading,
            rows: Vec::new(),
            page_info: PageInfo::default(),
            live: LiveState::Off,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum LiveState {
    Off,
    Connecting,
    On,
    Failed(ApiError),
}

enum TableAction {
    Fetch(u64),
    Loaded(u64, Connection<TraceSummary>),
    Failed(u64, ApiError),
    Row(TraceRow, bool),
    Live(LiveState),
}

impl Reducible for Table {
    type Action = TableAction;

    fn reduce(self: Rc<Self>, action: TableAction) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            TableAction::Fetch(generation) => {
                next.generation = generation;
                next.status = Load::Loading;
            }
            TableAction::Loaded(generation, page) if generation == next.generation => {
                next.rows = page.edges.iter().map(|e| TraceRow::from(&e.node)).collect();
                next.page_info = page.page_info;
                next.status = Load::Loaded(());
            }
            TableAction::Failed(generation, error) if generation == next.generation => {
                next.status = Load::Failed(error);
            }
            TableAction::Loaded(..) | TableAction::Failed(..) => return self,
            TableAction::Row(row, prepend) => {
                if !prepend && !next.rows.iter().any(|r| r.trace_id == row.trace_id) {
                    return self;
                }
                merge_live(&mut next.rows, row, LIVE_CAP);
                if matches!(next.status, Load::Loading) {
                    return self;
                }
            }
            TableAction::Live(state) => next.live = state,
        }
        Rc::new(next)
    }
}

fn rows_table(
    rows: &[TraceRow],
    query: &TraceListQuery,
    go: &Callback<TraceListQuery>,
    navigator: Option<Navigator>,
) -> Html {
    let offset = api::utc_offset_minutes();
    let header = |field: Option<SortField>, label: &'static str| -> Html {
        let Some(field) = field else {
            return html! { <th>{ label }</th> };
        };
        let active = query.sort == field;
        let arrow = match (active, query.ascending) {
            (true, true) => " ▲",
            (true, false) => " ▼",
            (false, _) => "",
        };
        let next = query.refined(|q| {
            q.ascending = active && !q.ascending;
            q.sort = field;
        });
        let onclick = go.reform(move |_: MouseEvent| next.clone());
        html! {
            <th class={classes!("sortable", active.then_some("sorted"))}
                data-testid={format!("sort-{}", field.code())} {onclick}>
                { label }{ arrow }
            </th>
        }
    };
    html! {
        <table class="grid" data-testid="traces-table">
            <thead><tr>
                { header(Some(SortField::StartTime), "Time") }
                { header(None, "Name") }
                { header(Some(SortField::Latency), "Latency") }
                { header(Some(SortField::Tokens), "Tokens") }
                { header(Some(SortField::Cost), "Cost") }
                { header(None, "Models") }
                { header(None, "Status") }
                { header(None, "Session") }
                { header(None, "User") }
            </tr></thead>
            <tbody>
                { for rows.iter().map(|row| trace_row(row, offset, navigator.clone())) }
            </tbody>
        </table>
    }
}

fn trace_row(row: &TraceRow, offset: i64, navigator: Option<Navigator>) -> Html {
    let route = Route::Trace {
        trace_id: row.trace_id.clone(),
    };
    let onclick = {
        let route = route.clone();
        Callback::from(move |event: MouseEvent| {
            // Links inside the row (session, user) navigate by themselves.
            let on_link = event
                .target_dyn_into::<web_sys::Element>()
                .and_then(|e| e.closest("a").ok().flatten())
                .is_some();
            if let (false, Some(navigator)) = (on_link, &navigator) {
                navigator.push(&route);
            }
        })
    };
    let name = if row.name.is_empty() {
        html! { <span class="muted">{ "(root span not yet seen)" }</span> }
    } else {
        html! { { &row.name } }
    };
    let user_query = row
        .user_id
        .as_ref()
        .map(|user| TraceListQuery::default().refined(|q| q.user = user.clone()));
    html! {
        <tr data-testid="trace-row" data-trace-id={row.trace_id.clone()}
            class={classes!("clickable", row.live.is_some().then_some("live-row"))} {onclick}>
            <td class="time">{ datetime::short(row.start_ns, offset) }</td>
            <td class="name"><Link<Route> to={route}>{ name }</Link<Route>></td>
            <td class="num">{ format::latency(row.latency_ms) }</td>
            <td class="num">{ format::count(row.tokens) }</td>
            <td class="num">{ format::dollars(Some(&row.cost)) }</td>
            <td class="models">{ row.models.join(", ") }</td>
            <td>
                if row.error_count > 0 {
                    <span class="badge error" data-testid="error-count">
                        { format::counted(row.error_count, "error") }
                    </span>
                } else {
                    <span class="badge ok">{ "ok" }</span>
                }
                if let Some(status) = &row.live {
                    <span class="badge live-status">{ status.to_lowercase() }</span>
                }
            </td>
            <td>
                if let Some(session) = &row.session_id {
                    <Link<Route> to={Route::Session { session_id: session.clone() }}>{ session }</Link<Route>>
                }
            </td>
            <td>
                if let (Some(user), Some(query)) = (&row.user_id, user_query) {
                    <Link<Route, Vec<(String, String)>> to={Route::Traces} query={Some(query.to_pairs())}>
                        { user }
                    </Link<Route, Vec<(String, String)>>>
                }
            </td>
        </tr>
    }
}

/// No rows: say why, and how to send a first trace when nothing narrows the list.
fn empty(query: &TraceListQuery, account: &Account, go: &Callback<TraceListQuery>) -> Html {
    let filtered = query.refined(|q| {
        q.live = false;
        q.sort = SortField::default();
        q.ascending = false;
        q.range = TimePreset::default();
    }) != TraceListQuery::default();
    if filtered || !query.cursors.is_empty() {
        let cleared = TraceListQuery {
            range: query.range,
            live: query.live,
            ..TraceListQuery::default()
        };
        let onclick = go.reform(move |_: MouseEvent| cleared.clone());
        return html! {
            <div class="empty" data-testid="empty">
                <h2>{ "No trace matches these filters" }</h2>
                <button {onclick}>{ "Clear the filters" }</button>
            </div>
        };
    }
    let host = web_sys::window()
        .and_then(|w| w.location().hostname().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let endpoint = format!("http://{host}:4318");
    let key = format!("{}_…", account.key_prefix);
    html! {
        <div class="empty" data-testid="empty">
            <h2>{ format!("No traces in the {}", query.range.label().to_lowercase()) }</h2>
            <p>{ "Send OpenTelemetry traces to the OTLP endpoint " }<code>{ &endpoint }</code>
               { " (HTTP: " }<code>{ "POST /v1/traces" }</code>{ ", protobuf or JSON; gRPC on port 4317) with your API key in the " }
               <code>{ "x-api-key" }</code>{ " header (or " }<code>{ "Authorization: Bearer" }</code>{ ")." }</p>
            <pre class="snippet">{ format!(
                "export OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}\nexport OTEL_EXPORTER_OTLP_HEADERS=x-api-key={key}\n# then run your instrumented app; traces of project `{}` show here",
                account.project_id
            ) }</pre>
            <p class="muted">{ "Turn on Live to watch them arrive." }</p>
        </div>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct FilterProps {
    query: TraceListQuery,
    go: Callback<TraceListQuery>,
    account: Account,
}

/// The filter bar: each control writes the URL, which reloads the list from its first page.
#[function_component(Filters)]
fn filters(props: &FilterProps) -> Html {
    let account = props.account.clone();
    let models = use_load((), move |()| async move {
        api::models(&account.key, &account.project_id).await
    });
    let query = &props.query;
    let text = |id: &'static str,
                placeholder: &'static str,
                value: &str,
                set: fn(&mut TraceListQuery, String)| {
        let (query, go) = (query.clone(), props.go.clone());
        let onchange = Callback::from(move |event: Event| {
            if let Some(input) = event.target_dyn_into::<HtmlInputElement>() {
                let value = input.value().trim().to_owned();
                go.emit(query.refined(|q| set(q, value)));
            }
        });
        html! {
            <input type="search" id={id} data-testid={id} {placeholder} value={value.to_owned()} {onchange}
                list={(id == "filter-model").then_some("model-options")} />
        }
    };
    let select = |id: &'static str,
                  options: Vec<(&'static str, &'static str)>,
                  current: &'static str,
                  set: fn(&mut TraceListQuery, &str)| {
        let (query, go) = (query.clone(), props.go.clone());
        let onchange = Callback::from(move |event: Event| {
            if let Some(select) = event.target_dyn_into::<HtmlSelectElement>() {
                let value = select.value();
                go.emit(query.refined(|q| set(q, &value)));
            }
        });
        html! {
            // Keyed by its value: a new value makes a new element, whose `selected` options
            // count (the user's last pick would otherwise stick through back/forward).
            <select key={current} id={id} data-testid={id} {onchange}>
                { for options.into_iter().map(|(value, label)| html! {
                    <option {value} selected={value == current}>{ label }</option>
                }) }
            </select>
        }
    };
    let errors = match query.errors {
        Some(ErrorFilter::Only) => "only",
        Some(ErrorFilter::Without) => "none",
        None => "",
    };
    html! {
        <div class="filters" data-testid="filters">
            { select("filter-range", TimePreset::ALL.iter().map(|p| (p.code(), p.label())).collect(),
                query.range.code(), |q, v| q.range = TimePreset::from_code(v).unwrap_or_default()) }
            { text("filter-name", "Name contains", &query.name_contains, |q, v| q.name_contains = v) }
            { text("filter-model", "Model", &query.model, |q, v| q.model = v) }
            <datalist id="model-options">
                if let Load::Loaded(models) = &*models {
                    { for models.iter().map(|m| html! { <option value={m.clone()} /> }) }
                }
            </datalist>
            { text("filter-user", "User id", &query.user, |q, v| q.user = v) }
            { text("filter-session", "Session id", &query.session, |q, v| q.session = v) }
            { select("filter-errors", vec![("", "Any status"), ("only", "With errors"), ("none", "Without errors")],
                errors, |q, v| q.errors = match v {
                    "only" => Some(ErrorFilter::Only),
                    "none" => Some(ErrorFilter::Without),
                    _ => None,
                }) }
            { text("filter-search", "Search messages", &query.search, |q, v| q.search = v) }
        </div>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
struct LiveProps {
    query: TraceListQuery,
    state: LiveState,
    go: Callback<TraceListQuery>,
}

#[function_component(LiveToggle)]
fn live_toggle(props: &LiveProps) -> Html {
    let next = props.query.refined(|q| q.live = !q.live);
    let onclick = props.go.reform(move |_: MouseEvent| next.clone());
    let (label, class) = match &props.state {
        LiveState::Off => ("Live: off", "off"),
        LiveState::Connecting => ("Live: connecting…", "connecting"),
        LiveState::On => ("Live: on", "on"),
        LiveState::Failed(_) => ("Live: failed", "failed"),
    };
    html! {
        <>
            <button class={classes!("live-toggle", class)} data-testid="live-toggle"
                aria-pressed={props.query.live.to_string()} {onclick}>
                <span class="dot" />{ label }
            </button>
            if let LiveState::Failed(error) = &props.state {
                <ErrorBox error={error.clone()} />
            }
        </>
    }
}
