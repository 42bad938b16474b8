//! The span tree with a waterfall bar per row. Rows have a fixed height and only the scrolled
//! window (plus some overscan) is rendered between two spacers, so a 10,000-span trace
//! scrolls as smoothly as a small one. Rows are not keyed: scrolling reuses the rendered row
//! elements in place and only patches their text, rather than building new ones.

use std::cell::RefCell;
use std::rc::Rc;

use web_sys::Element;
use yew::prelude::*;

use crate::format;
use crate::model::SpanRow;
use crate::waterfall::{Window, bar};

/// Height of one row in pixels (the stylesheet's `.span-row` uses the same).
pub const ROW_HEIGHT: f64 = 26.0;
const OVERSCAN: usize = 12;

/// The rows, shared and grown in place; `version` tells a change (comparing 10,000 rows on
/// every render would not do).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    pub rows: Rc<RefCell<Vec<SpanRow>>>,
    pub version: u64,
}

impl PartialEq for Tree {
    fn eq(&self, other: &Tree) -> bool {
        Rc::ptr_eq(&self.rows, &other.rows) && self.version == other.version
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct SpanTreeProps {
    pub tree: Tree,
    /// The timeline's start and end (Unix ns).
    pub range: (i64, i64),
    pub selected: Option<String>,
    pub on_select: Callback<String>,
}

#[function_component(SpanTree)]
pub fn span_tree(props: &SpanTreeProps) -> Html {
    let container = use_node_ref();
    // Scroll position and viewport height, set together so a scroll renders once.
    let view = use_state(|| (0.0_f64, 600.0_f64));

    // Measure the viewport once mounted, and bring a selected row (a shared link) into view.
    {
        let (container, view) = (container.clone(), view.clone());
        let index = props.selected.as_ref().and_then(|id| {
            props
                .tree
                .rows
                .borrow()
                .iter()
                .position(|row| &row.span.span_id == id)
        });
        use_effect_with(index, move |index| {
            if let Some(element) = container.cast::<Element>() {
                let height = f64::from(element.client_height()).max(ROW_HEIGHT);
                let mut top = f64::from(element.scroll_top());
                if let Some(index) = *index {
                    let row = index as f64 * ROW_HEIGHT;
                    if row < top || row + ROW_HEIGHT > top + height {
                        top = (row - height / 2.0).max(0.0);
                        element.set_scroll_top(top as i32);
                    }
                }
                view.set((top, height));
            }
        });
    }

    let onscroll = {
        let view = view.clone();
        Callback::from(move |event: Event| {
            let element: Element = event.target_unchecked_into();
            view.set((
                f64::from(element.scroll_top()),
                f64::from(element.client_height()),
            ));
        })
    };

    let rows = props.tree.rows.borrow();
    let (scroll_top, viewport) = *view;
    let window = Window::new(rows.len(), ROW_HEIGHT, scroll_top, viewport, OVERSCAN);
    let (start, end) = props.range;
    html! {
        <div class="span-tree" ref={container} {onscroll} data-testid="span-tree"
            data-rows={rows.len().to_string()}>
            <div class="spacer" style={format!("height:{}px", window.top(ROW_HEIGHT))} />
            { for rows[window.first..window.end].iter().map(|row| {
                let id = row.span.span_id.clone();
                let selected = props.selected.as_deref() == Some(id.as_str());
                let error = row.span.status.code == "ERROR";
                let geometry = bar(start, end, row.start_ns, row.end_ns);
                let kind = row.span.kind.to_lowercase();
                let onclick = {
                    let (on_select, id) = (props.on_select.clone(), id.clone());
                    Callback::from(move |_: MouseEvent| on_select.emit(id.clone()))
                };
                html! {
                    <div data-testid="span-row" data-span-id={id}
                        data-depth={row.depth.to_string()}
                        class={classes!("span-row", selected.then_some("selected"), error.then_some("failed"))}
                        {onclick}>
                        // Indent by depth, up to half the column; deeper rows say their depth.
                        <div class="span-name" style={format!("padding-left:min({}px, 50%)", 6 + row.depth * 14)}
                            title={row.span.name.clone()}>
                            if row.depth > 12 {
                                <span class="depth" title="depth">{ row.depth }</span>
                            }
                            <span class={classes!("kind", format!("kind-{kind}"))}>{ &row.span.kind }</span>
                            { &row.span.name }
                            if let Some(model) = &row.span.model {
                                <span class="muted">{ format!(" · {model}") }</span>
                            }
                        </div>
                        <div class="span-latency">{ format::latency(row.span.latency_ms) }</div>
                        <div class="track">
                            <div class={classes!("bar", format!("kind-{kind}"))}
                                style={format!("left:{:.3}%;width:{:.3}%", geometry.left, geometry.width)} />
                        </div>
                    </div>
                }
            }) }
            <div class="spacer" style={format!("height:{}px", window.bottom(rows.len(), ROW_HEIGHT))} />
        </div>
    }
}

#[derive(Debug, Clone, PartialEq, Properties)]
pub struct TimeAxisProps {
    /// Length of the timeline in milliseconds.
    pub duration_ms: f64,
}

/// The ruler above the waterfall: 0, ¼, ½, ¾ and the whole of the trace's duration.
#[function_component(TimeAxis)]
pub fn time_axis(props: &TimeAxisProps) -> Html {
    html! {
        <div class="span-axis">
            <div class="span-name">{ "Span" }</div>
            <div class="span-latency">{ "Latency" }</div>
            <div class="track ruler">
                { for (0..=4).map(|n| {
                    let percent = f64::from(n) * 25.0;
                    let label = format::latency(props.duration_ms * percent / 100.0);
                    let style = if n == 4 { "right:0".to_owned() } else { format!("left:{percent}%") };
                    html! { <span class="tick" {style}>{ label }</span> }
                }) }
            </div>
        </div>
    }
}
