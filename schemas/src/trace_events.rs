//! Events on `traces.events`: a trace's lifecycle, keyed `<project_id>/<trace_id>`.
//!
//! The processor emits `Completed` once a trace looks finished (its root span ended and no span
//! arrived for a quiet period, or it reached a maximum age); the sink emits `Persisted` once
//! every span the processor counted is in ClickHouse. Both may be delivered more than once.

/// The version written in every new [`TraceEvent`].
pub const TRACE_EVENT_VERSION: u32 = 1;

/// What happened to a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TraceEventKind {
    Unspecified = 0,
    Completed = 1,
    Persisted = 2,
}

/// One lifecycle event.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceEvent {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(enumeration = "TraceEventKind", tag = "2")]
    pub kind: i32,
    #[prost(string, tag = "3")]
    pub project_id: String,
    /// Lowercase hex.
    #[prost(string, tag = "4")]
    pub trace_id: String,
    /// Spans the processor saw for the trace.
    #[prost(uint64, tag = "5")]
    pub span_count: u64,
    /// Whether the root span was among them (false when completed by age alone).
    #[prost(bool, tag = "6")]
    pub root_seen: bool,
    #[prost(fixed64, tag = "7")]
    pub at_unix_nano: u64,
}

impl TraceEvent {
    /// The Kafka key, `<project_id>/<trace_id>`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.project_id, self.trace_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn round_trips() {
        let event = TraceEvent {
            version: TRACE_EVENT_VERSION,
            kind: TraceEventKind::Completed as i32,
            project_id: "p".into(),
            trace_id: "ab".into(),
            span_count: 3,
            root_seen: true,
            at_unix_nano: 7,
        };
        let back = TraceEvent::decode(event.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back, event);
        assert_eq!(back.kind(), TraceEventKind::Completed);
        assert_eq!(back.key(), "p/ab");
    }
}
