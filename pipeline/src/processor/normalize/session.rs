//! Session, user and tags from the common keys, on the span first, then on its resource.

use serde_json::Value as Json;

use super::attrs::Attrs;

const SESSION_KEYS: &[&str] = &[
    "session.id",
    "gen_ai.conversation.id",
    "langfuse.session.id",
    "traceroot.trace.session_id",
    "ai.telemetry.metadata.sessionId",
    "ai.telemetry.metadata.session_id",
    "traceloop.association.properties.session_id",
];

const USER_KEYS: &[&str] = &[
    "user.id",
    "enduser.id",
    "langfuse.user.id",
    "traceroot.trace.user_id",
    "session.user_id",
    "ai.telemetry.metadata.userId",
    "ai.telemetry.metadata.user_id",
    "traceloop.association.properties.user_id",
];

const TAG_KEYS: &[&str] = &[
    "langfuse.trace.tags",
    "langfuse.tags",
    "tag.tags",
    "traceroot.trace.tags",
    "traceroot.span.tags",
    "ai.telemetry.metadata.tags",
    "traceloop.association.properties.tags",
];

pub(super) fn session_id(span: &Attrs<'_>, resource: &Attrs<'_>) -> String {
    first_text(span, resource, SESSION_KEYS)
}

pub(super) fn user_id(span: &Attrs<'_>, resource: &Attrs<'_>) -> String {
    first_text(span, resource, USER_KEYS)
}

/// Tags from every tag key present (a list, a JSON list in a string, or one string), in order,
/// without duplicates.
pub(super) fn tags(span: &Attrs<'_>, resource: &Attrs<'_>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for attrs in [span, resource] {
        for key in TAG_KEYS {
            let values = match attrs.get(key).map(super::attrs::to_json) {
                Some(Json::String(s)) => match serde_json::from_str::<Json>(&s) {
                    Ok(Json::Array(items)) => items,
                    _ => vec![Json::String(s)],
                },
                Some(Json::Array(items)) => items,
                _ => continue,
            };
            for value in values {
                let tag = match value {
                    Json::String(s) => s,
                    Json::Null => continue,
                    other => other.to_string(),
                };
                let tag = tag.trim();
                if !tag.is_empty() && !tags.iter().any(|t| t == tag) {
                    tags.push(tag.to_owned());
                }
            }
        }
    }
    tags
}

fn first_text(span: &Attrs<'_>, resource: &Attrs<'_>, keys: &[&str]) -> String {
    span.first_text(keys)
        .or_else(|| resource.first_text(keys))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::{i, kv, s};
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue};

    #[test]
    fn reads_ids_from_span_then_resource() {
        let span = [s("langfuse.session.id", "s-1"), i("user.id", 42)];
        let resource = [s("session.id", "resource-session"), s("enduser.id", "u")];
        let (span, resource) = (Attrs::new(&span), Attrs::new(&resource));
        assert_eq!(session_id(&span, &resource), "s-1");
        assert_eq!(user_id(&span, &resource), "42");
        let empty = Attrs::new(&[]);
        assert_eq!(session_id(&empty, &resource), "resource-session");
        assert_eq!(user_id(&empty, &empty), "");
    }

    #[test]
    fn collects_tags_from_lists_json_and_strings() {
        let list = Value::ArrayValue(ArrayValue {
            values: ["prod", "beta"]
                .into_iter()
                .map(|t| AnyValue {
                    value: Some(Value::StringValue(t.into())),
                })
                .collect(),
        });
        let span = [
            kv("tag.tags", list),
            s("langfuse.tags", r#"["beta","checkout"]"#),
            s("ai.telemetry.metadata.tags", "single"),
        ];
        let tags = tags(&Attrs::new(&span), &Attrs::new(&[]));
        assert_eq!(tags, vec!["beta", "checkout", "prod", "single"]);
    }
}
