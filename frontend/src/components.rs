//! Pieces the pages share: loading and error states, pagers, the SVG charts, the span tree
//! with its waterfall, the span detail panel and the conversation view.

pub mod charts;
pub mod conversation;
pub mod load;
pub mod span_detail;
pub mod span_tree;
