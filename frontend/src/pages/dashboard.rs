//! `/dashboard` (`?window=30d` for a month by day; the last 24 hours by hour otherwise):
//! cost, tokens, latency percentiles and error rate over time from `metrics`, and cost and
//! tokens by model from `metrics(groupBy: MODEL)`.

use std::collections::{BTreeMap, HashMap};

use yew::prelude::*;
use yew_router::prelude::*;

use crate::api::{self, Metrics};
use crate::app::Route;
use crate::components::charts::{Category, CategoryChart, Series, TickFormat, TimeChart};
use crate::components::load::{ErrorBox, Load, Loading, use_load};
use crate::datetime;
use crate::format;
use crate::model::MetricPoint;
use crate::pages::{PageProps, query_pairs};
use crate::query::DashboardWindow;

#[function_component(Dashboard)]
pub fn dashboard(props: &PageProps) -> Html {
    let location = use_location();
    let navigator = use_navigator();
    let window = DashboardWindow::from_pairs(&query_pairs(location.as_ref()));
    let refresh = use_state(|| 0_u32);
    let account = props.account.clone();
    let data = use_load((window, *refresh), move |(window, _)| async move {
        let now = api::now_ms();
        let metrics = api::metrics(&account.key, &account.project_id, window, now).await?;
        Ok((window.buckets(now), metrics))
    });
    let choose = |target: DashboardWindow, label: &'static str, id: &'static str| {
        let navigator = navigator.clone();
        let onclick = Callback::from(move |_: MouseEvent| {
            if let Some(navigator) = &navigator {
                let _ = navigator.push_with_query(&Route::Dashboard, &target.to_pairs());
            }
        });
        html! {
            <button class={classes!("tab", (window == target).then_some("active"))} data-testid={id} {onclick}>
                { label }
            </button>
        }
    };
    let on_refresh = {
        let refresh = refresh.clone();
        Callback::from(move |_: MouseEvent| refresh.set(*refresh + 1))
    };
    let body = match &*data {
        Load::Loading => html! { <Loading /> },
        Load::Failed(error) => html! { <ErrorBox error={error.clone()} /> },
        Load::Loaded((buckets, metrics)) => charts(window, buckets, metrics),
    };
    html! {
        <section class="page dashboard">
            <div class="title-row">
                <h1>{ "Dashboard" }</h1>
                { choose(DashboardWindow::Day, "Last 24 hours", "window-24h") }
                { choose(DashboardWindow::Month, "Last 30 days", "window-30d") }
                <button onclick={on_refresh}>{ "Refresh" }</button>
            </div>
            { body }
        </section>
    }
}

fn charts(window: DashboardWindow, buckets: &[i64], metrics: &Metrics) -> Html {
    let by_time: HashMap<i64, &MetricPoint> = metrics
        .overall
        .iter()
        .filter_map(|p| Some((datetime::parse_nanos(&p.time)? / 1_000_000, p)))
        .collect();
    let points: Vec<Option<&MetricPoint>> =
        buckets.iter().map(|b| by_time.get(b).copied()).collect();
    let days = window == DashboardWindow::Month;
    // Days are UTC days; hours read in the browser's zone.
    let offset = if days { 0 } else { api::utc_offset_minutes() };
    let labels: Vec<String> = buckets
        .iter()
        .map(|b| datetime::axis(b * 1_000_000, offset, days))
        .collect();
    let x_label = if days {
        "day (UTC)"
    } else {
        "hour (local time)"
    }
    .to_owned();
    let series =
        |name: &str, color: &'static str, value: &dyn Fn(&MetricPoint) -> Option<f64>| Series {
            name: name.to_owned(),
            color,
            values: points.iter().map(|p| p.and_then(value)).collect(),
        };
    let spans: i64 = metrics.overall.iter().map(|p| p.span_count).sum();
    let errors: i64 = metrics.overall.iter().map(|p| p.error_count).sum();
    let tokens: i64 = metrics.overall.iter().map(|p| p.tokens.total).sum();
    let cost = format::sum(metrics.overall.iter().map(|p| p.total_cost.as_str()));
    let unpriced: i64 = metrics.overall.iter().map(|p| p.unknown_cost_spans).sum();

    html! {
        <>
            <div class="kpis" data-testid="kpis">
                <div><span>{ "Spans" }</span><strong>{ format::count(spans) }</strong></div>
                <div><span>{ "Cost" }</span><strong data-testid="kpi-cost">{ format::dollars(Some(&cost)) }</strong>
                    if unpriced > 0 { <em>{ format!("+{unpriced} unpriced spans") }</em> }</div>
                <div><span>{ "Tokens" }</span><strong>{ format::count(tokens) }</strong></div>
                <div><span>{ "Errors" }</span><strong>{ format::count(errors) }</strong>
                    if spans > 0 { <em>{ format::percent(errors as f64 / spans as f64) }</em> }</div>
            </div>
            if spans == 0 {
                <p class="notice" data-testid="empty">{ "No spans in this window yet." }</p>
            }
            <div class="chart-grid">
                <TimeChart title="Cost" testid="chart-cost" labels={labels.clone()} bars=true
                    series={vec![series("cost", "#2f9e44", &|p| Some(format::dollars_value(&p.total_cost)))]}
                    y_label="USD" x_label={x_label.clone()} />
                <TimeChart title="Tokens" testid="chart-tokens" labels={labels.clone()} bars=true
                    series={vec![series("tokens", "#4c6ef5", &|p| Some(p.tokens.total as f64))]}
                    y_label="tokens" x_label={x_label.clone()} />
                <TimeChart title="Latency" testid="chart-latency" labels={labels.clone()}
                    series={vec![
                        series("p50", "#4c6ef5", &|p| (p.span_count > 0).then_some(p.latency_p50_ms)),
                        series("p95", "#f59f00", &|p| (p.span_count > 0).then_some(p.latency_p95_ms)),
                        series("p99", "#e03131", &|p| (p.span_count > 0).then_some(p.latency_p99_ms)),
                    ]}
                    y_label="ms" x_label={x_label.clone()} />
                <TimeChart title="Error rate" testid="chart-errors" labels={labels}
                    series={vec![series("error rate", "#e03131", &|p| (p.span_count > 0).then_some(p.error_rate * 100.0))]}
                    y_label="% of spans" x_label={x_label} format={TickFormat::Percent} />
            </div>
            { by_model(&metrics.by_model) }
        </>
    }
}

/// Totals per model over the window, most expensive first.
fn by_model(points: &[MetricPoint]) -> Html {
    #[derive(Default)]
    struct Totals<'a> {
        costs: Vec<&'a str>,
        tokens: i64,
        spans: i64,
        errors: i64,
        unpriced: i64,
    }
    let mut models: BTreeMap<&str, Totals<'_>> = BTreeMap::new();
    for point in points {
        let totals = models.entry(point.group.as_str()).or_default();
        totals.costs.push(&point.total_cost);
        totals.tokens += point.tokens.total;
        totals.spans += point.span_count;
        totals.errors += point.error_count;
        totals.unpriced += point.unknown_cost_spans;
    }
    let mut rows: Vec<(&str, String, Totals<'_>)> = models
        .into_iter()
        .map(|(model, totals)| (model, format::sum(totals.costs.iter().copied()), totals))
        .collect();
    rows.sort_by(|a, b| {
        format::nanos(&b.1)
            .cmp(&format::nanos(&a.1))
            .then(b.2.tokens.cmp(&a.2.tokens))
    });
    if rows.is_empty() {
        return html! {};
    }
    let name = |model: &str| {
        if model.is_empty() {
            "(no model)".to_owned()
        } else {
            model.to_owned()
        }
    };
    let cost_items: Vec<Category> = rows
        .iter()
        .map(|(model, cost, _)| Category {
            name: name(model),
            value: format::dollars_value(cost),
            label: format::dollars(Some(cost)),
        })
        .collect();
    let token_items: Vec<Category> = rows
        .iter()
        .map(|(model, _, totals)| Category {
            name: name(model),
            value: totals.tokens as f64,
            label: format::count(totals.tokens),
        })
        .collect();
    html! {
        <>
            <h2>{ "By model" }</h2>
            <div class="chart-grid">
                <CategoryChart title="Cost by model" testid="chart-cost-by-model" items={cost_items}
                    color="#2f9e44" x_label="USD" />
                <CategoryChart title="Tokens by model" testid="chart-tokens-by-model" items={token_items}
                    color="#4c6ef5" x_label="tokens" />
            </div>
            <table class="grid" data-testid="models-table">
                <thead><tr><th>{ "Model" }</th><th>{ "LLM spans" }</th><th>{ "Errors" }</th>
                    <th>{ "Tokens" }</th><th>{ "Cost" }</th><th>{ "Unpriced spans" }</th></tr></thead>
                <tbody>
                    { for rows.iter().map(|(model, cost, totals)| html! {
                        <tr data-testid="model-row">
                            <td>{ name(model) }</td>
                            <td class="num">{ format::count(totals.spans) }</td>
                            <td class="num">{ format::count(totals.errors) }</td>
                            <td class="num">{ format::count(totals.tokens) }</td>
                            <td class="num">{ format::dollars(Some(cost)) }</td>
                            <td class="num">{ format::count(totals.unpriced) }</td>
                        </tr>
                    }) }
                </tbody>
            </table>
        </>
    }
}
