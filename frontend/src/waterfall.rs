//! Geometry of the trace view: where each span's bar sits on the trace's timeline, which rows
//! of a long tree are in the scrolled window, and where a span that arrives live goes in the
//! tree. Pure.

/// A bar on the timeline, in percent of the trace's width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub left: f64,
    pub width: f64,
}

/// The narrowest bar drawn, in percent, so an instant span stays visible.
pub const MIN_WIDTH: f64 = 0.3;

/// The bar of a span from `start` to `end` on a trace from `trace_start` to `trace_end` (any
/// one unit). Out-of-range spans are clamped to the trace.
pub fn bar(trace_start: i64, trace_end: i64, start: i64, end: i64) -> Bar {
    let total = (trace_end - trace_start).max(1) as f64;
    let left = ((start - trace_start) as f64 / total * 100.0).clamp(0.0, 100.0);
    let width = ((end.max(start) - start) as f64 / total * 100.0).clamp(0.0, 100.0 - left);
    let width = width.max(MIN_WIDTH);
    Bar {
        left: left.min(100.0 - MIN_WIDTH),
        width,
    }
}

/// The rows to render out of `total` rows of `row_height` pixels, scrolled to `scroll_top`
/// in a viewport `viewport` pixels high, with `overscan` extra rows above and below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First row rendered.
    pub first: usize,
    /// One past the last row rendered.
    pub end: usize,
}

impl Window {
    pub fn new(
        total: usize,
        row_height: f64,
        scroll_top: f64,
        viewport: f64,
        overscan: usize,
    ) -> Window {
        if total == 0 || row_height <= 0.0 {
            return Window { first: 0, end: 0 };
        }
        let first_visible = (scroll_top.max(0.0) / row_height).floor() as usize;
        let visible = (viewport.max(0.0) / row_height).ceil() as usize + 1;
        let first = first_visible.saturating_sub(overscan).min(total);
        let end = (first_visible + visible + overscan).min(total);
        Window { first, end }
    }

    /// Height of the spacer above the rendered rows.
    pub fn top(&self, row_height: f64) -> f64 {
        self.first as f64 * row_height
    }

    /// Height of the spacer below the rendered rows.
    pub fn bottom(&self, total: usize, row_height: f64) -> f64 {
        total.saturating_sub(self.end) as f64 * row_height
    }
}

/// A row of the span tree: enough to place a span that arrives live.
pub trait TreeRow {
    fn span_id(&self) -> &str;
    fn depth(&self) -> usize;
    fn start(&self) -> i64;
}

/// Where a new span with `parent` and `start` goes in `rows` (tree order: depth first,
/// children by start time), and its depth. A span whose parent is not (yet) in the tree is
/// placed as a root, by start time among the roots.
pub fn insertion<R: TreeRow>(rows: &[R], parent: Option<&str>, start: i64) -> (usize, usize) {
    let Some(parent_index) = parent.and_then(|p| rows.iter().position(|row| row.span_id() == p))
    else {
        // Among the roots: before the first root that starts later.
        let index = rows
            .iter()
            .position(|row| row.depth() == 0 && row.start() > start)
            .unwrap_or(rows.len());
        return (index, 0);
    };
    let depth = rows[parent_index].depth() + 1;
    let mut index = parent_index + 1;
    while index < rows.len() && rows[index].depth() >= depth {
        if rows[index].depth() == depth && rows[index].start() > start {
            break;
        }
        index += 1;
    }
    (index, depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn bars_are_placed_on_the_trace_range() {
        assert_eq!(
            bar(100, 200, 100, 200),
            Bar {
                left: 0.0,
                width: 100.0
            }
        );
        assert_eq!(
            bar(100, 200, 150, 175),
            Bar {
                left: 50.0,
                width: 25.0
            }
        );
        // An instant span at the very end stays visible and inside the track.
        assert_eq!(
            bar(0, 1000, 1000, 1000),
            Bar {
                left: 100.0 - MIN_WIDTH,
                width: MIN_WIDTH
            }
        );
        // A span outside the range is clamped; an empty trace does not divide by zero.
        assert_eq!(
            bar(100, 200, 50, 300),
            Bar {
                left: 0.0,
                width: 100.0
            }
        );
        assert_eq!(bar(5, 5, 5, 5).left, 0.0);
    }

    #[test]
    fn the_window_covers_the_viewport_and_overscan() {
        let window = Window::new(10_000, 24.0, 2400.0, 480.0, 5);
        assert_eq!(
            window,
            Window {
                first: 95,
                end: 126
            }
        );
        assert_eq!(window.top(24.0), 95.0 * 24.0);
        assert_eq!(window.bottom(10_000, 24.0), (10_000.0 - 126.0) * 24.0);
        assert_eq!(
            Window::new(3, 24.0, 0.0, 480.0, 5),
            Window { first: 0, end: 3 }
        );
        assert_eq!(
            Window::new(0, 24.0, 0.0, 480.0, 5),
            Window { first: 0, end: 0 }
        );
        // Scrolled past the end (the list shrank): nothing out of bounds.
        let past = Window::new(10, 24.0, 10_000.0, 480.0, 5);
        assert!(past.first <= past.end && past.end <= 10);
    }

    struct Row(&'static str, usize, i64);

    impl TreeRow for Row {
        fn span_id(&self) -> &str {
            self.0
        }
        fn depth(&self) -> usize {
            self.1
        }
        fn start(&self) -> i64 {
            self.2
        }
    }

    #[test]
    fn live_spans_go_under_their_parent_by_start_time() {
        let rows = [
            Row("root", 0, 0),
            Row("a", 1, 10),
            Row("a1", 2, 11),
            Row("b", 1, 30),
        ];
        assert_eq!(
            insertion(&rows, Some("root"), 20),
            (3, 1),
            "between a's subtree and b"
        );
        assert_eq!(insertion(&rows, Some("root"), 40), (4, 1), "after b");
        assert_eq!(insertion(&rows, Some("a"), 5), (2, 2), "before a1");
        assert_eq!(insertion(&rows, Some("a1"), 12), (3, 3));
        assert_eq!(
            insertion(&rows, Some("unknown"), 5),
            (4, 0),
            "orphans are roots"
        );
        assert_eq!(insertion(&rows, None, -1), (0, 0));
        assert_eq!(insertion::<Row>(&[], None, 0), (0, 0));
    }
}
