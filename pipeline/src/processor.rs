//! The processor: `spans.raw` → LLM-aware `spans.enriched`.
//!
//! [`normalize`] is the pure core: one OTLP span and its batch to the canonical
//! [`EnrichedSpan`](spindle_schemas::canonical::EnrichedSpan). [`stream`] is the consumer loop
//! around it (at least once; poison records to `spans.dlq`; `trace.completed` events from the
//! [`completion`] table).

pub mod completion;
pub mod normalize;
pub mod stream;
