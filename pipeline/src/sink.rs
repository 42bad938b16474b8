//! The ClickHouse write side of the sink: canonical spans (`spans.enriched`) into the `spans`
//! table under the sign protocol, so that `spans FINAL`, `traces` and `usage_hourly` count
//! every span exactly once whatever is redelivered or replayed (ARCHITECTURE.md, "Why these
//! engines").
//!
//! [`row`] is the canonical ↔ row conversion, [`plan`] the protocol as pure functions, and
//! [`store`] the thin IO around them: one lookup of the stored rows, one `INSERT` with the
//! caller's insert deduplication token. [`stream`] is the consumer loop around them: it batches
//! records, commits offsets after the insert and routes rejected records to `spans.dlq`;
//! [`persisted`] answers `trace.completed` with `trace.persisted` once every span is stored.

pub mod persisted;
pub mod plan;
pub mod row;
pub mod store;
pub mod stream;

pub use plan::RejectedSpan;
pub use row::{RowError, SpanKey, SpanRow};
pub use store::{StoreError, StoreSettings, WriteOutcome, write};
