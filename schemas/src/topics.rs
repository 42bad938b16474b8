//! Kafka topics: the boundaries between Spindle's roles.
//!
//! Every topic is keyed so that all records of one trace land in one partition
//! (`<project_id>/<trace_id>`), which is what lets consumers scale by partitions while keeping a
//! trace's records in order.

/// One Kafka topic Spindle owns, with the facts the local stack needs to create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// The topic name on the broker.
    pub name: &'static str,
    /// What flows through it, for operators.
    pub purpose: &'static str,
}

/// Raw OTLP span batches as the gateway acknowledged them.
pub const SPANS_RAW: Topic = Topic {
    name: "spans.raw",
    purpose: "raw span batches from the gateway: a request's traces that share a partition (key: project/trace of the first)",
};

/// Canonical, LLM-aware span records produced by the processor.
pub const SPANS_ENRICHED: Topic = Topic {
    name: "spans.enriched",
    purpose: "enriched span records from the processor (key: project/trace)",
};

/// Trace lifecycle events: `trace.completed` (processor) and `trace.persisted` (sink).
pub const TRACES_EVENTS: Topic = Topic {
    name: "traces.events",
    purpose: "trace lifecycle events: completed, persisted (key: project/trace)",
};

/// Records that can never be processed, with the reason; they never block a partition.
pub const SPANS_DLQ: Topic = Topic {
    name: "spans.dlq",
    purpose: "poison records with the reason they were rejected",
};

/// The platform's system of record: workspace, project, member and API key events.
pub const PLATFORM_EVENTS: Topic = Topic {
    name: "platform.events",
    purpose: "platform commands as events, the system of record (key: aggregate id)",
};

/// Every topic Spindle needs, in creation order.
pub const ALL: [Topic; 5] = [
    SPANS_RAW,
    SPANS_ENRICHED,
    TRACES_EVENTS,
    SPANS_DLQ,
    PLATFORM_EVENTS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_unique_and_valid_kafka_names() {
        let mut names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "duplicate topic name");
        for topic in ALL {
            assert!(topic.name.len() <= 249, "{} is too long", topic.name);
            assert!(
                topic
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
                "{} has a character Kafka rejects",
                topic.name
            );
        }
    }
}
