//! The processor: `spans.raw` → LLM-aware `spans.enriched`.
//!
//! Today only its pure core, [`normalize`]: one OTLP span and its batch to the canonical
//! [`EnrichedSpan`](spindle_schemas::canonical::EnrichedSpan). The Kafka consumer loop, the
//! producer of `spans.enriched` and trace-completion tracking arrive later and call it.

pub mod normalize;
