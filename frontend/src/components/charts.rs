//! Inline SVG charts: values over time buckets (bars or lines) and values per category
//! (horizontal bars), with axis ticks and labels. The arithmetic is in [`crate::chart`].

use yew::prelude::*;

use crate::chart::{Scale, bar_slot, compact, line_path, ticks};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// One line (or the bars) of a chart; `None` where a bucket has no value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub color: &'static str,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct TimeChartProps {
    pub title: String,
    pub testid: String,
    /// The label of each bucket, oldest first.
    pub labels: Vec<String>,
    pub series: Vec<Series>,
    /// Bars (the first series) rather than lines.
    #[prop_or_default]
    pub bars: bool,
    pub y_label: String,
    pub x_label: String,
    /// How a tick value reads.
    #[prop_or_default]
    pub format: TickFormat,
}

/// How the values of a chart read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TickFormat {
    /// `1.5k`, `0.25`.
    #[default]
    Compact,
    /// `12.5%` of values already in percent.
    Percent,
}

impl TickFormat {
    fn apply(self, value: f64) -> String {
        match self {
            TickFormat::Compact => compact(value),
            TickFormat::Percent => format!("{}%", compact(value)),
        }
    }
}

#[function_component(TimeChart)]
pub fn time_chart(props: &TimeChartProps) -> Html {
    let count = props.labels.len().max(1);
    let (left, right, top, bottom) = (LEFT, WIDTH - RIGHT, TOP, HEIGHT - BOTTOM);
    let max = props
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0_f64, |a, b| a.max(*b));
    let ticks = ticks(max, 4);
    let axis_top = ticks.last().copied().unwrap_or(1.0);
    let y = Scale::new((0.0, axis_top), (bottom, top));
    let slot = (right - left) / count as f64;
    let center = |index: usize| left + (index as f64 + 0.5) * slot;
    let every = count.div_ceil(8).max(1);

    let marks = if props.bars {
        let series = props.series.first();
        html! {
            { for series.into_iter().flat_map(|s| s.values.iter().enumerate()).filter_map(|(i, v)| {
                let value = (*v)?;
                let (x, width) = bar_slot(i, count, left, right);
                let height = (bottom - y.map(value)).max(if value > 0.0 { 1.0 } else { 0.0 });
                Some(html! {
                    <rect x={format!("{x:.1}")} y={format!("{:.1}", bottom - height)}
                        width={format!("{width:.1}")} height={format!("{height:.1}")}
                        fill={series.map(|s| s.color).unwrap_or("#4c6ef5")}>
                        <title>{ format!("{}: {}", props.labels.get(i).cloned().unwrap_or_default(), props.format.apply(value)) }</title>
                    </rect>
                })
            }) }
        }
    } else {
        html! {
            { for props.series.iter().map(|s| {
                // One path per run of buckets that have a value.
                let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
                for (i, v) in s.values.iter().enumerate() {
                    match (v, runs.last_mut()) {
                        (Some(value), Some(run)) => run.push((center(i), y.map(*value))),
                        _ => runs.push(Vec::new()),
                    }
                }
                html! {
                    <g class="series">
                        { for runs.iter().filter(|r| !r.is_empty()).map(|run| html! {
                            <>
                                <path d={line_path(run)} fill="none" stroke={s.color} stroke-width="2" />
                                { for run.iter().map(|(cx, cy)| html! {
                                    <circle cx={format!("{cx:.1}")} cy={format!("{cy:.1}")} r="2.5" fill={s.color} />
                                }) }
                            </>
                        }) }
                    </g>
                }
            }) }
        }
    };

    html! {
        <figure class="chart" data-testid={props.testid.clone()}>
            <figcaption>
                { &props.title }
                if props.series.len() > 1 {
                    <span class="legend">
                        { for props.series.iter().map(|s| html! {
                            <span><i style={format!("background:{}", s.color)} />{ &s.name }</span>
                        }) }
                    </span>
                }
            </figcaption>
            <svg viewBox={format!("0 0 {WIDTH} {HEIGHT}")} role="img" aria-label={props.title.clone()}>
                // Grid lines and y tick labels.
                { for ticks.iter().map(|t| {
                    let ty = y.map(*t);
                    html! {
                        <g class="tick">
                            <line x1={left.to_string()} x2={right.to_string()} y1={format!("{ty:.1}")} y2={format!("{ty:.1}")} />
                            <text x={(left - 6.0).to_string()} y={format!("{:.1}", ty + 4.0)} text-anchor="end">{ props.format.apply(*t) }</text>
                        </g>
                    }
                }) }
                // X labels.
                { for props.labels.iter().enumerate().filter(|(i, _)| i % every == 0 || *i + 1 == count).map(|(i, label)| html! {
                    <text class="x-label" x={format!("{:.1}", center(i))} y={(bottom + 16.0).to_string()} text-anchor="middle">{ label }</text>
                }) }
                <line class="axis" x1={left.to_string()} x2={right.to_string()} y1={bottom.to_string()} y2={bottom.to_string()} />
                <line class="axis" x1={left.to_string()} x2={left.to_string()} y1={top.to_string()} y2={bottom.to_string()} />
                { marks }
                <text class="axis-label" x={format!("{:.1}", (left + right) / 2.0)} y={(HEIGHT - 4.0).to_string()} text-anchor="middle">{ &props.x_label }</text>
                <text class="axis-label" transform={format!("translate(12 {:.1}) rotate(-90)", (top + bottom) / 2.0)} text-anchor="middle">{ &props.y_label }</text>
            </svg>
        </figure>
    }
}

/// A labelled value of a category chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub name: String,
    pub value: f64,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct CategoryChartProps {
    pub title: String,
    pub testid: String,
    pub items: Vec<Category>,
    pub color: &'static str,
    pub x_label: String,
}

/// Horizontal bars, one per category, with the category on the left and the value at the
/// bar's end.
#[function_component(CategoryChart)]
pub fn category_chart(props: &CategoryChartProps) -> Html {
    const ROW: f64 = 24.0;
    const LABEL: f64 = 180.0;
    let height = TOP + ROW * props.items.len().max(1) as f64 + BOTTOM;
    let max = props.items.iter().fold(0.0_f64, |a, c| a.max(c.value));
    let ticks = ticks(max, 4);
    let axis_top = ticks.last().copied().unwrap_or(1.0);
    let (left, right) = (LABEL, WIDTH - 70.0);
    let x = Scale::new((0.0, axis_top), (left, right));
    let bottom = height - BOTTOM;
    html! {
        <figure class="chart" data-testid={props.testid.clone()}>
            <figcaption>{ &props.title }</figcaption>
            <svg viewBox={format!("0 0 {WIDTH} {height}")} role="img" aria-label={props.title.clone()}>
                { for ticks.iter().map(|t| {
                    let tx = x.map(*t);
                    html! {
                        <g class="tick">
                            <line x1={format!("{tx:.1}")} x2={format!("{tx:.1}")} y1={TOP.to_string()} y2={bottom.to_string()} />
                            <text x={format!("{tx:.1}")} y={(bottom + 16.0).to_string()} text-anchor="middle">{ compact(*t) }</text>
                        </g>
                    }
                }) }
                { for props.items.iter().enumerate().map(|(i, c)| {
                    let row_top = TOP + i as f64 * ROW;
                    let width = (x.map(c.value) - left).max(if c.value > 0.0 { 1.0 } else { 0.0 });
                    html! {
                        <g class="category">
                            <text x={(left - 8.0).to_string()} y={format!("{:.1}", row_top + ROW * 0.65)} text-anchor="end">{ truncate(&c.name, 26) }</text>
                            <rect x={left.to_string()} y={format!("{:.1}", row_top + 4.0)} width={format!("{width:.1}")}
                                height={(ROW - 8.0).to_string()} fill={props.color}>
                                <title>{ format!("{}: {}", c.name, c.label) }</title>
                            </rect>
                            <text class="value" x={format!("{:.1}", left + width + 6.0)} y={format!("{:.1}", row_top + ROW * 0.65)}>{ &c.label }</text>
                        </g>
                    }
                }) }
                <line class="axis" x1={left.to_string()} x2={left.to_string()} y1={TOP.to_string()} y2={bottom.to_string()} />
                <text class="axis-label" x={format!("{:.1}", (left + right) / 2.0)} y={(height - 4.0).to_string()} text-anchor="middle">{ &props.x_label }</text>
            </svg>
        </figure>
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}
