//! Live traces: `traceUpdates` (one trace's spans as they arrive, then `COMPLETED` and
//! `PERSISTED`) and `liveTraces` (summaries of a project's traces as their spans arrive), fed
//! by the in-process [`Hub`](crate::live::Hub). Every stream has bounded state, tells a
//! subscriber that fell behind how much it missed, and sends heartbeats when idle.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::{Context, Enum, InputObject, SimpleObject, Subscription as SubscriptionRoot};
use futures::{Stream, StreamExt};
use spindle_schemas::canonical::EnrichedSpan;
use spindle_schemas::trace_events::TraceEventKind;

use super::State;
use super::span::SpanNode;
use super::traces::normalize_id;
use super::types::{DateTime, Decimal, SpanKind, Tokens};
use crate::auth;
use crate::error::ApiError;
use crate::live::LiveEvent;

/// Traces one `liveTraces` subscription keeps summaries of (the oldest are forgotten first).
const LIVE_TRACES_TRACKED: usize = 1_000;

/// The subscriptions of one WebSocket connection, counted against its cap.
#[derive(Debug, Default)]
pub struct ConnectionSubscriptions(Arc<AtomicUsize>);

/// Holds one slot of the connection's cap; freed when the stream ends or is dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn take_slot(ctx: &Context<'_>, max: usize) -> Result<Option<Slot>, ApiError> {
    let Some(counter) = ctx.data_opt::<ConnectionSubscriptions>() else {
        return Ok(None);
    };
    let taken = counter.0.fetch_add(1, Ordering::AcqRel) + 1;
    let slot = Slot(counter.0.clone());
    if taken > max {
        return Err(ApiError::LimitExceeded(format!(
            "at most {max} subscriptions per connection"
        )));
    }
    Ok(Some(slot))
}

/// What happened to the watched trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum TraceUpdateKind {
    /// A span arrived (stored spans first, then live ones).
    Span,
    /// The trace looks finished: root span ended and quiet, or old enough.
    Completed,
    /// Every span is stored: `trace(...)` now returns them all. The stream ends.
    Persisted,
    /// This subscriber fell behind; `missed` events were dropped.
    Lagged,
    /// Nothing happened for a while; the stream is alive.
    Heartbeat,
}

#[derive(SimpleObject)]
pub struct TraceUpdate {
    pub kind: TraceUpdateKind,
    pub span: Option<SpanNode>,
    /// With `COMPLETED`/`PERSISTED`: the spans the trace has.
    pub span_count: Option<i64>,
    pub missed: Option<i64>,
}

impl TraceUpdate {
    fn of(kind: TraceUpdateKind) -> Self {
        Self {
            kind,
            span: None,
            span_count: None,
            missed: None,
        }
    }
}

/// Narrows `liveTraces`: a trace shows once any of its spans matches every given condition.
#[derive(Debug, Clone, Default, InputObject)]
pub struct LiveTraceFilter {
    pub models: Option<Vec<String>>,
    pub kinds: Option<Vec<SpanKind>>,
    pub name_contains: Option<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// Only spans that failed.
    pub errors_only: Option<bool>,
}

impl LiveTraceFilter {
    fn matches(&self, span: &EnrichedSpan) -> bool {
        let kind = SpanKind::from_canonical(span.kind);
        self.models.as_ref().is_none_or(|m| m.contains(&span.model))
            && self.kinds.as_ref().is_none_or(|k| k.contains(&kind))
            && self
                .name_contains
                .as_ref()
                .is_none_or(|n| span.name.to_lowercase().contains(&n.to_lowercase()))
            && self
                .session_id
                .as_ref()
                .is_none_or(|s| *s == span.session_id)
            && self.user_id.as_ref().is_none_or(|u| *u == span.user_id)
            && (self.errors_only != Some(true)
                || span.status_code == spindle_schemas::canonical::StatusCode::Error as i32)
    }
}

/// Where a live trace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum LiveTraceStatus {
    Active,
    Completed,
    Persisted,
}

/// A trace summary built from the spans this subscription saw.
#[derive(Debug, Clone, SimpleObject)]
pub struct LiveTrace {
    pub trace_id: String,
    /// The root span's name, once it arrived.
    pub name: Option<String>,
    pub service: String,
    pub start_time: DateTime,
    pub end_time: DateTime,
    pub latency_ms: f64,
    /// Spans seen by this subscription (`COMPLETED` gives the trace's own count).
    pub span_count: i64,
    pub error_count: i64,
    pub tokens: Tokens,
    /// Known costs of the spans seen.
    pub total_cost: Decimal,
    pub models: Vec<String>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub status: LiveTraceStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum LiveTraceEventKind {
    /// A trace appeared or changed.
    Update,
    Lagged,
    Heartbeat,
}

#[derive(SimpleObject)]
pub struct LiveTraceEvent {
    pub kind: LiveTraceEventKind,
    pub trace: Option<LiveTrace>,
    pub missed: Option<i64>,
}

/// Running totals of one trace.
#[derive(Debug, Clone, Default)]
struct Running {
    name: Option<String>,
    service: String,
    start: u64,
    end: u64,
    spans: HashSet<String>,
    errors: i64,
    tokens: [u64; 5],
    cost_nanos: i64,
    models: Vec<String>,
    session: String,
    user: String,
    status: Option<LiveTraceStatus>,
}

impl Running {
    fn add(&mut self, span: &EnrichedSpan) -> bool {
        if !self.spans.insert(span.span_id.clone()) {
            return false; // a redelivery
        }
        if span.parent_span_id.is_empty() {
            self.name = Some(span.name.clone());
            self.service = span.service.clone();
        } else if self.service.is_empty() {
            self.service = span.service.clone();
        }
        self.start = if self.start == 0 {
            span.start_time_unix_nano
        } else {
            self.start.min(span.start_time_unix_nano)
        };
        self.end = self.end.max(span.end_time_unix_nano);
        if span.status_code == spindle_schemas::canonical::StatusCode::Error as i32 {
            self.errors += 1;
        }
        for (slot, n) in self.tokens.iter_mut().zip([
            span.input_tokens,
            span.output_tokens,
            span.cache_read_tokens,
            span.cache_write_tokens,
            span.reasoning_tokens,
        ]) {
            *slot += n;
        }
        self.cost_nanos += span.total_cost_nanos.unwrap_or(0);
        if !span.model.is_empty() && !self.models.contains(&span.model) {
            self.models.push(span.model.clone());
        }
        if self.session.is_empty() {
            self.session.clone_from(&span.session_id);
        }
        if self.user.is_empty() {
            self.user.clone_from(&span.user_id);
        }
        true
    }

    fn view(&self, trace_id: &str, span_count: Option<u64>) -> LiveTrace {
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        LiveTrace {
            trace_id: trace_id.to_owned(),
            name: self.name.clone(),
            service: self.service.clone(),
            start_time: DateTime(signed(self.start)),
            end_time: DateTime(signed(self.end)),
            latency_ms: self.end.saturating_sub(self.start) as f64 / 1e6,
            span_count: signed(span_count.unwrap_or(self.spans.len() as u64)),
            error_count: self.errors,
            tokens: Tokens::new(
                signed(self.tokens[0]),
                signed(self.tokens[1]),
                signed(self.tokens[2]),
                signed(self.tokens[3]),
                signed(self.tokens[4]),
            ),
            total_cost: Decimal::from_nanos(self.cost_nanos),
            models: self.models.clone(),
            session_id: Some(self.session.clone()).filter(|s| !s.is_empty()),
            user_id: Some(self.user.clone()).filter(|s| !s.is_empty()),
            status: self.status.unwrap_or(LiveTraceStatus::Active),
        }
    }
}

/// The traces one `liveTraces` subscription follows, oldest forgotten first.
#[derive(Default)]
struct Tracked {
    traces: HashMap<String, Running>,
    order: VecDeque<String>,
}

impl Tracked {
    fn entry(&mut self, trace_id: &str) -> &mut Running {
        if !self.traces.contains_key(trace_id) {
            if self.order.len() >= LIVE_TRACES_TRACKED
                && let Some(oldest) = self.order.pop_front()
            {
                self.traces.remove(&oldest);
            }
            self.order.push_back(trace_id.to_owned());
        }
        self.traces.entry(trace_id.to_owned()).or_default()
    }
}

pub struct Subscription;

#[SubscriptionRoot]
impl Subscription {
    /// One trace as it happens: its stored spans, then each new span, then `COMPLETED` and
    /// `PERSISTED` (after which the stream ends). Subscribing after persistence yields the
    /// stored spans and `PERSISTED` at once.
    async fn trace_updates(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        trace_id: String,
    ) -> Result<impl Stream<Item = TraceUpdate> + use<>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>().clone();
        let slot = take_slot(ctx, state.limits.max_subscriptions_per_connection)?;
        let trace_id = normalize_id(&trace_id, 32, "trace")?;
        // Subscribe before reading the store: a span stored in between arrives twice (and is
        // deduplicated below) rather than not at all.
        let mut feed = state.hub.subscribe(&project_id);
        let stored = crate::store::spans::skeletons(
            &state.store,
            &project_id,
            &trace_id,
            state.limits.max_trace_spans,
        )
        .await?;
        let persisted =
            crate::store::traces::persisted(&state.store, &project_id, &trace_id).await?;
        let heartbeat = state.limits.heartbeat;
        let cap = state.limits.max_trace_spans;
        Ok(async_stream::stream! {
            let _slot = slot;
            let mut seen: HashSet<String> = HashSet::new();
            for span in stored {
                seen.insert(span.span_id.clone());
                yield TraceUpdate {
                    span: Some(SpanNode { full: false, ..SpanNode::full(Arc::new(span)) }),
                    ..TraceUpdate::of(TraceUpdateKind::Span)
                };
            }
            if let Some(count) = persisted {
                yield TraceUpdate {
                    span_count: Some(i64::try_from(count).unwrap_or(i64::MAX)),
                    ..TraceUpdate::of(TraceUpdateKind::Persisted)
                };
                return;
            }
            let mut ticks = tokio::time::interval(heartbeat);
            ticks.reset();
            loop {
                let event = tokio::select! {
                    event = feed.next() => event,
                    _ = ticks.tick() => {
                        yield TraceUpdate::of(TraceUpdateKind::Heartbeat);
                        continue;
                    }
                };
                ticks.reset();
                match event {
                    None => return,
                    Some(LiveEvent::Span(span)) if span.trace_id == trace_id => {
                        let fresh = if seen.len() < cap {
                            seen.insert(span.span_id.clone())
                        } else {
                            !seen.contains(&span.span_id)
                        };
                        if fresh {
                            yield TraceUpdate {
                                span: Some(SpanNode::full(span)),
                                ..TraceUpdate::of(TraceUpdateKind::Span)
                            };
                        }
                    }
                    Some(LiveEvent::Trace(event)) if event.trace_id == trace_id => {
                        let count = Some(i64::try_from(event.span_count).unwrap_or(i64::MAX));
                        if event.kind() == TraceEventKind::Persisted {
                            yield TraceUpdate { span_count: count, ..TraceUpdate::of(TraceUpdateKind::Persisted) };
                            return;
                        }
                        yield TraceUpdate { span_count: count, ..TraceUpdate::of(TraceUpdateKind::Completed) };
                    }
                    Some(LiveEvent::Lagged { missed }) => {
                        yield TraceUpdate {
                            missed: Some(i64::try_from(missed).unwrap_or(i64::MAX)),
                            ..TraceUpdate::of(TraceUpdateKind::Lagged)
                        };
                    }
                    Some(_) => {}
                }
            }
        })
    }

    /// The project's traces as their spans arrive: an `UPDATE` with the trace's running
    /// summary for each new span (and when it completes or is persisted).
    async fn live_traces(
        &self,
        ctx: &Context<'_>,
        project_id: String,
        filter: Option<LiveTraceFilter>,
    ) -> Result<impl Stream<Item = LiveTraceEvent> + use<>, ApiError> {
        auth::project(ctx, &project_id)?;
        let state = ctx.data_unchecked::<State>().clone();
        let slot = take_slot(ctx, state.limits.max_subscriptions_per_connection)?;
        let filter = filter.unwrap_or_default();
        let mut feed = state.hub.subscribe(&project_id);
        let heartbeat = state.limits.heartbeat;
        Ok(async_stream::stream! {
            let _slot = slot;
            let mut tracked = Tracked::default();
            let mut ticks = tokio::time::interval(heartbeat);
            ticks.reset();
            loop {
                let event = tokio::select! {
                    event = feed.next() => event,
                    _ = ticks.tick() => {
                        yield LiveTraceEvent { kind: LiveTraceEventKind::Heartbeat, trace: None, missed: None };
                        continue;
                    }
                };
                ticks.reset();
                match event {
                    None => return,
                    Some(LiveEvent::Span(span)) => {
                        let followed = tracked.traces.contains_key(&span.trace_id);
                        if !followed && !filter.matches(&span) {
                            continue;
                        }
                        let running = tracked.entry(&span.trace_id);
                        if running.add(&span) {
                            let view = running.view(&span.trace_id, None);
                            yield LiveTraceEvent { kind: LiveTraceEventKind::Update, trace: Some(view), missed: None };
                        }
                    }
                    Some(LiveEvent::Trace(event)) => {
                        let Some(running) = tracked.traces.get_mut(&event.trace_id) else { continue };
                        running.status = Some(if event.kind() == TraceEventKind::Persisted {
                            LiveTraceStatus::Persisted
                        } else {
                            LiveTraceStatus::Completed
                        });
                        let view = running.view(&event.trace_id, Some(event.span_count));
                        yield LiveTraceEvent { kind: LiveTraceEventKind::Update, trace: Some(view), missed: None };
                    }
                    Some(LiveEvent::Lagged { missed }) => {
                        yield LiveTraceEvent {
                            kind: LiveTraceEventKind::Lagged,
                            trace: None,
                            missed: Some(i64::try_from(missed).unwrap_or(i64::MAX)),
                        };
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: &str, id: &str, parent: &str) -> EnrichedSpan {
        EnrichedSpan {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: format!("span {id}"),
            model: "gpt-4o".into(),
            input_tokens: 10,
            total_cost_nanos: Some(5),
            start_time_unix_nano: 100,
            end_time_unix_nano: 200,
            ..EnrichedSpan::default()
        }
    }

    #[test]
    fn running_summaries_ignore_redeliveries() {
        let mut running = Running::default();
        assert!(running.add(&span("t", "a", "")));
        assert!(running.add(&span("t", "b", "a")));
        assert!(!running.add(&span("t", "b", "a")));
        let view = running.view("t", None);
        assert_eq!(view.span_count, 2);
        assert_eq!(view.tokens.input, 20);
        assert_eq!(view.total_cost.0, "0.00000001");
        assert_eq!(view.name.as_deref(), Some("span a"));
    }

    #[test]
    fn tracked_traces_are_bounded() {
        let mut tracked = Tracked::default();
        for n in 0..LIVE_TRACES_TRACKED + 10 {
            tracked.entry(&n.to_string());
        }
        assert_eq!(tracked.traces.len(), LIVE_TRACES_TRACKED);
        assert!(!tracked.traces.contains_key("0"));
    }

    #[test]
    fn live_filters_match_spans() {
        let filter = LiveTraceFilter {
            models: Some(vec!["gpt-4o".into()]),
            name_contains: Some("SPAN".into()),
            ..LiveTraceFilter::default()
        };
        assert!(filter.matches(&span("t", "a", "")));
        let filter = LiveTraceFilter {
            errors_only: Some(true),
            ..LiveTraceFilter::default()
        };
        assert!(!filter.matches(&span("t", "a", "")));
    }
}
