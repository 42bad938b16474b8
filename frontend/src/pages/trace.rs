//! `/traces/:trace_id` (selected span in `?span=`): the span tree with its waterfall and the
//! selected span's detail. The stored tree loads in pages of 1,000. A trace that is not stored
//! yet, or whose last span ended within the last hour, is also watched with `traceUpdates`:
//! spans the tree lacks are added live (with a Live badge) until `PERSISTED`, when the stored
//! trace is loaded again and the badge goes. (An older trace is not watched: the subscription
//! would first replay every stored span, and the processor completes a trace after at most
//! `processor.trace_max_age_ms`, ten minutes by default.)

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use yew::prelude::*;
use yew_router::prelude::*;

use crate::account::Account;
use crate::api::{self, ApiError, SubscriptionEvent};
use crate::app::Route;
use crate::components::load::{ErrorBox, Loading};
use crate::components::span_detail::SpanDetail;
use crate::components::span_tree::{SpanTree, TimeAxis, Tree};
use crate::format;
use crate::model::{Span, SpanRow, TraceSummary, TraceUpdate, add_live_span, time_range};
use crate::pages::query_pairs;

/// Spans per page: 1,000 × the tree's 18 fields stays under the API's default complexity
/// limit (20,000); 2,000 would not.
const PAGE_SIZE: usize = 1000;
/// How recent a trace's end must be for the page to watch it live.
const WATCH_WINDOW_NS: i64 = 3_600 * 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct TraceProps {
    pub account: Account,
    pub trace_id: String,
}

#[function_component(TraceView)]
pub fn trace_view(props: &TraceProps) -> Html {
    let location = use_location();
    let navigator = use_navigator();
    let selected = query_pairs(location.as_ref())
        .into_iter()
        .find(|(key, _)| key == "span")
        .map(|(_, value)| value);
    let state = use_reducer(TraceState::default);
    let generation = use_mut_ref(|| 0_u64);

    // The stored trace, page by page; again after PERSISTED.
    {
        let dispatcher = state.dispatcher();
        let account = props.account.clone();
        use_effect_with(
            (props.trace_id.clone(), state.reload),
            move |(trace_id, _)| {
                *generation.borrow_mut() += 1;
                let mine = *generation.borrow();
                dispatcher.dispatch(Action::Begin(mine));
                let trace_id = trace_id.clone();
                let generation = generation.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let mut after: Option<String> = None;
                    loop {
                        if *generation.borrow() != mine {
                            return;
                        }
                        let page = api::trace_page(
                            &account.key,
                            &account.project_id,
                            &trace_id,
                            after.as_deref(),
                            PAGE_SIZE,
                        )
                        .await;
                        let trace = match page {
                            Ok(Some(trace)) => trace,
                            Ok(None) => return dispatcher.dispatch(Action::NotFound(mine)),
                            Err(error) => return dispatcher.dispatch(Action::Failed(mine, error)),
                        };
                        let info = trace.spans.page_info.clone();
                        dispatcher.dispatch(Action::Page {
                            generation: mine,
                            first: after.is_none(),
                            summary: Box::new(trace.summary),
                            truncated: trace.truncated,
                            total: trace.spans.total_count,
                            spans: trace.spans.edges.into_iter().map(|e| e.node).collect(),
                            now_ms: api::now_ms(),
                        });
                        match (info.has_next_page, info.end_cursor) {
                            (true, Some(cursor)) => after = Some(cursor),
                            _ => return dispatcher.dispatch(Action::Done(mine)),
                        }
                    }
                });
            },
        );
    }

    // Live updates, once the first page said the trace may still be open; spans that arrive
    // while the other pages load wait in `pending`.
    {
        let dispatcher = state.dispatcher();
        let account = props.account.clone();
        use_effect_with(
            (props.trace_id.clone(), state.watch),
            move |(trace_id, watch)| {
                let subscription = watch.then(|| {
                    api::subscribe(
                        &account.key,
                        api::trace_updates_subscription(),
                        serde_json::json!({"p": account.project_id, "t": trace_id}),
                        Callback::from(move |event| match event {
                            SubscriptionEvent::Data(data) => {
                                if let Ok(update) = serde_json::from_value::<TraceUpdate>(
                                    data.get("traceUpdates").cloned().unwrap_or_default(),
                                ) {
                                    dispatcher.dispatch(Action::Update(Box::new(update)));
                                }
                            }
                            SubscriptionEvent::Failed(error) => {
                                dispatcher.dispatch(Action::LiveFailed(error))
                            }
                            SubscriptionEvent::Connected | SubscriptionEvent::Completed => {}
                        }),
                    )
                });
                move || drop(subscription)
            },
        );
    }

    let on_select = {
        let (navigator, trace_id) = (navigator.clone(), props.trace_id.clone());
        Callback::from(move |span_id: String| {
            if let Some(navigator) = &navigator {
                let route = Route::Trace {
                    trace_id: trace_id.clone(),
                };
                let _ = navigator.push_with_query(&route, &[("span", span_id)]);
            }
        })
    };

    let rows = state.tree.rows.borrow();
    let (mut start, mut end) = time_range(&rows);
    if let Some(summary) = &state.summary {
        let parse = |t: &str| crate::datetime::parse_nanos(t);
        if let (Some(s), Some(e)) = (parse(&summary.start_time), parse(&summary.end_time)) {
            (start, end) = (start.min(s), end.max(e));
        }
    }
    let skeleton = selected
        .as_ref()
        .and_then(|id| rows.iter().find(|r| &r.span.span_id == id))
        .map(|r| r.span.clone());
    let loaded = rows.len();
    drop(rows);
    let live = state.is_live();

    html! {
        <section class="page trace">
            <div class="title-row">
                <Link<Route> to={Route::Traces} classes="back">{ "← Traces" }</Link<Route>>
                <h1 data-testid="trace-name">{ state.summary.as_ref().map(|s| s.name.clone())
                    .filter(|n| !n.is_empty()).unwrap_or_else(|| props.trace_id.clone()) }</h1>
                if live {
                    <span class="badge live" data-testid="live-badge"
                        title="Not persisted yet: spans are added as they arrive">{ "● Live" }</span>
                }
            </div>
            <div class="facts muted"><code>{ &props.trace_id }</code></div>
            if let Some(summary) = &state.summary { { summary_facts(summary) } }
            if let Some(error) = &state.error { <ErrorBox error={error.clone()} /> }
            if let Some(error) = &state.live_error { <ErrorBox error={error.clone()} /> }
            if state.truncated {
                <p class="notice">{ "This trace has more spans than the server builds a tree for; \
                    only the first ones by start time are shown." }</p>
            }
            if state.loading && loaded > 0 {
                <p class="muted" data-testid="progress">{ format!("Loaded {} of {} spans…",
                    format::count(loaded as i64), format::count(state.total.unwrap_or(0))) }</p>
            }
            if state.not_found && loaded == 0 {
                <p class="notice" data-testid="waiting">{ "No span of this trace is stored yet. \
                    Spans show here as they arrive." }</p>
            }
            if state.loading && loaded == 0 && state.error.is_none() { <Loading /> }
            if loaded > 0 {
                <div class="trace-body">
                    <div class="tree-pane">
                        <TimeAxis duration_ms={(end - start) as f64 / 1e6} />
                        <SpanTree tree={state.tree.clone()} range={(start, end)}
                            selected={selected.clone()} {on_select} />
                    </div>
                    if let Some(span_id) = selected {
                        <SpanDetail account={props.account.clone()} trace_id={props.trace_id.clone()}
                            {span_id} {skeleton} reload={state.reload} />
                    } else {
                        <aside class="span-detail empty-detail">{ "Select a span to see its messages, tokens, cost, attributes and events." }</aside>
                    }
                </div>
            }
        </section>
    }
}

fn summary_facts(summary: &TraceSummary) -> Html {
    html! {
        <div class="facts" data-testid="trace-summary">
            <span>{ format::counted(summary.span_count, "span") }</span>
            <span>{ format::latency(summary.latency_ms) }</span>
            <span>{ format::counted(summary.tokens.total, "token") }</span>
            <span>{ format::dollars(Some(&summary.total_cost)) }</span>
            if summary.unknown_cost_spans > 0 {
                <span class="muted">{ format!("(+{} unpriced)", summary.unknown_cost_spans) }</span>
            }
            if summary.error_count > 0 {
                <span class="badge error">{ format::counted(summary.error_count, "error") }</span>
            }
            if !summary.models.is_empty() { <span>{ summary.models.join(", ") }</span> }
            if let Some(session) = &summary.session_id {
                <Link<Route> to={Route::Session { session_id: session.clone() }}>{ format!("session {session}") }</Link<Route>>
            }
            if let Some(user) = &summary.user_id { <span>{ format!("user {user}") }</span> }
        </div>
    }
}

/// The trace being shown: stored pages, then live spans.
#[derive(Debug, Clone, PartialEq, Default)]
struct TraceState {
    generation: u64,
    tree: Tree,
    /// Span ids in the tree, so a repeated span is dropped in constant time.
    ids: Rc<RefCell<HashSet<String>>>,
    /// Live spans that arrived while pages were still loading.
    pending: Rc<RefCell<Vec<Span>>>,
    summary: Option<TraceSummary>,
    total: Option<i64>,
    truncated: bool,
    loading: bool,
    loaded_once: bool,
    /// Whether the trace is watched with `traceUpdates` (it stays so once set).
    watch: bool,
    not_found: bool,
    error: Option<ApiError>,
    live_error: Option<ApiError>,
    /// Spans added by the subscription, not by a stored page.
    live_added: usize,
    /// A heartbeat or COMPLETED came: the trace is not persisted.
    live_signal: bool,
    persisted: bool,
    /// Bumped to load the stored trace again.
    reload: u32,
    /// PERSISTED came while pages loaded, after spans the pages may lack: load again after.
    reload_after_load: bool,
}

impl TraceState {
    fn is_live(&self) -> bool {
        self.loaded_once
            && self.watch
            && !self.persisted
            && self.live_error.is_none()
            && (self.not_found || self.live_added > 0 || self.live_signal)
    }

    fn add_live(&mut self, span: Span) -> bool {
        if !self.ids.borrow_mut().insert(span.span_id.clone()) {
            return false;
        }
        add_live_span(&mut self.tree.rows.borrow_mut(), span);
        self.tree.version += 1;
        self.live_added += 1;
        true
    }
}

enum Action {
    Begin(u64),
    Page {
        generation: u64,
        first: bool,
        summary: Box<Option<TraceSummary>>,
        truncated: bool,
        total: Option<i64>,
        spans: Vec<Span>,
        now_ms: i64,
    },
    Done(u64),
    NotFound(u64),
    Failed(u64, ApiError),
    Update(Box<TraceUpdate>),
    LiveFailed(ApiError),
}

impl Reducible for TraceState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::Begin(generation) => {
                next.generation = generation;
                next.loading = true;
                next.error = None;
            }
            Action::Page {
                generation,
                first,
                summary,
                truncated,
                total,
                spans,
                now_ms,
            } if generation == next.generation => {
                if first {
                    let end = (*summary)
                        .as_ref()
                        .and_then(|s| crate::datetime::parse_nanos(&s.end_time));
                    let recent = end.is_none_or(|end| end > now_ms * 1_000_000 - WATCH_WINDOW_NS);
                    next.watch = next.watch || recent;
                    // A new tree (the old one stays on screen until now).
                    next.tree = Tree::default();
                    next.ids = Rc::default();
                    next.summary = *summary;
                    next.truncated = truncated;
                    next.live_added = 0;
                    next.not_found = false;
                }
                next.total = total;
                {
                    let mut ids = next.ids.borrow_mut();
                    let mut rows = next.tree.rows.borrow_mut();
                    for span in spans {
                        if ids.insert(span.span_id.clone()) {
                            rows.push(SpanRow::stored(span));
                        }
                    }
                }
                next.tree.version += 1;
            }
            Action::Done(generation) | Action::NotFound(generation)
                if generation == next.generation =>
            {
                if matches!(action, Action::NotFound(_)) {
                    next.not_found = true;
                    next.watch = true;
                    next.tree = Tree::default();
                    next.ids = Rc::default();
                }
                next.loading = false;
                next.loaded_once = true;
                let pending: Vec<Span> = next.pending.borrow_mut().drain(..).collect();
                for span in pending {
                    next.add_live(span);
                }
                if std::mem::take(&mut next.reload_after_load) && next.live_added > 0 {
                    next.reload += 1;
                }
            }
            Action::Failed(generation, error) if generation == next.generation => {
                next.loading = false;
                next.error = Some(error);
            }
            Action::Page { .. } | Action::Done(_) | Action::NotFound(_) | Action::Failed(..) => {
                return self;
            }
            Action::Update(update) => match update.kind.as_str() {
                "SPAN" => {
                    let Some(span) = update.span else {
                        return self;
                    };
                    if next.loading {
                        self.pending.borrow_mut().push(span);
                        return self;
                    }
                    if !next.add_live(span) {
                        return self;
                    }
                }
                "PERSISTED" => {
                    next.persisted = true;
                    // Spans that came live (or arrived while pages loaded) are reloaded as
                    // stored; a trace whose pages are still loading is read whole anyway.
                    let pending = !next.pending.borrow().is_empty();
                    if !next.loading && (next.live_added > 0 || next.not_found || pending) {
                        next.reload += 1;
                    } else if next.loading && pending {
                        next.reload_after_load = true;
                    }
                }
                "COMPLETED" | "HEARTBEAT" | "LAGGED" => {
                    if next.live_signal {
                        return self;
                    }
                    next.live_signal = true;
                }
                _ => return self,
            },
            Action::LiveFailed(error) => next.live_error = Some(error),
        }
        Rc::new(next)
    }
}
