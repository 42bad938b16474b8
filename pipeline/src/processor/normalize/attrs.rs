//! A read-only view of OTLP attributes by key, and `AnyValue` conversions.

use std::collections::BTreeMap;
use std::ops::Bound;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde_json::Value as Json;

/// Attributes by key; for a repeated key the last value wins, as in the SDKs.
#[derive(Default)]
pub(super) struct Attrs<'a> {
    map: BTreeMap<&'a str, &'a AnyValue>,
}

impl<'a> Attrs<'a> {
    pub(super) fn new(attributes: &'a [KeyValue]) -> Self {
        let map = attributes
            .iter()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_ref()?)))
            .collect();
        Attrs { map }
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a AnyValue> {
        self.map.get(key).copied()
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A non-empty string value.
    pub(super) fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)?.value.as_ref()? {
            Value::StringValue(s) if !s.trim().is_empty() => Some(s.as_str()),
            _ => None,
        }
    }

    /// The first of `keys` with a non-empty string value.
    pub(super) fn first_str(&self, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|key| self.str(key))
    }

    /// Any scalar as text (arrays and maps as JSON); `None` when absent or empty.
    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.get(key)
            .and_then(text)
            .filter(|s| !s.trim().is_empty())
    }

    pub(super) fn first_text(&self, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|key| self.text(key))
    }

    /// A count: a non-negative integer, an integral double or a numeric string.
    pub(super) fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(as_u64)
    }

    pub(super) fn first_u64(&self, keys: &[&str]) -> Option<u64> {
        keys.iter().find_map(|key| self.u64(key))
    }

    /// The value parsed as JSON when it is a string holding JSON, else its JSON mapping.
    pub(super) fn json(&self, key: &str) -> Option<Json> {
        let value = self.get(key)?;
        match value.value.as_ref()? {
            Value::StringValue(s) => serde_json::from_str(s).ok(),
            _ => Some(to_json(value)),
        }
    }

    pub(super) fn has_prefix(&self, prefix: &str) -> bool {
        self.from(prefix)
            .next()
            .is_some_and(|(key, _)| key.starts_with(prefix))
    }

    /// Entries from the first key not before `start`, in key order.
    fn from(&self, start: &str) -> impl Iterator<Item = (&&'a str, &&'a AnyValue)> {
        self.map
            .range::<str, _>((Bound::Included(start), Bound::Unbounded))
    }

    /// Keys of the form `<prefix><N>.<rest>`, grouped by `N` (in numeric order) into views
    /// keyed by `<rest>`: `gen_ai.prompt.0.role` → `{0: {"role": …}}`.
    pub(super) fn indexed(&self, prefix: &str) -> BTreeMap<usize, Attrs<'a>> {
        let mut groups: BTreeMap<usize, Attrs<'a>> = BTreeMap::new();
        for (key, value) in self.from(prefix) {
            let Some(rest) = key.strip_prefix(prefix) else {
                break;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            if let Ok(index) = index.parse::<usize>() {
                groups.entry(index).or_default().map.insert(field, value);
            }
        }
        groups
    }
}

/// A scalar as text; arrays and maps as JSON; bytes as hex.
pub(super) fn text(value: &AnyValue) -> Option<String> {
    Some(match value.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => hex::encode(b),
        Value::ArrayValue(_) | Value::KvlistValue(_) => to_json(value).to_string(),
    })
}

pub(super) fn as_u64(value: &AnyValue) -> Option<u64> {
    match value.value.as_ref()? {
        Value::IntValue(i) => u64::try_from(*i).ok(),
        Value::DoubleValue(d) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 => {
            // An integral, non-negative count; `as` saturates above u64::MAX.
            Some(*d as u64)
        }
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The natural JSON form of an attribute value.
pub(super) fn to_json(value: &AnyValue) -> Json {
    match &value.value {
        None => Json::Null,
        Some(Value::StringValue(s)) => Json::from(s.as_str()),
        Some(Value::BoolValue(b)) => Json::from(*b),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => Json::from(*d),
        Some(Value::BytesValue(b)) => Json::from(hex::encode(b)),
        Some(Value::ArrayValue(array)) => Json::Array(array.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(list)) => Json::Object(
            list.values
                .iter()
                .map(|kv| {
                    let value = kv.value.as_ref().map_or(Json::Null, to_json);
                    (kv.key.clone(), value)
                })
                .collect(),
        ),
    }
}

/// Attributes as the text map of the canonical record, without keys `drop` rejects.
pub(super) fn text_map(
    attributes: &[KeyValue],
    drop: impl Fn(&str) -> bool,
) -> BTreeMap<String, String> {
    attributes
        .iter()
        .filter(|kv| !drop(&kv.key))
        .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
        .collect()
}

#[cfg(test)]
pub(super) mod test_support {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};

    pub(crate) fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
        }
    }

    pub(crate) fn s(key: &str, value: &str) -> KeyValue {
        kv(key, Value::StringValue(value.to_owned()))
    }

    pub(crate) fn i(key: &str, value: i64) -> KeyValue {
        kv(key, Value::IntValue(value))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{i, kv, s};
    use super::*;

    #[test]
    fn reads_counts_in_every_form_producers_send() {
        let attributes = [
            i("a", 12),
            kv("b", Value::DoubleValue(7.0)),
            s("c", " 42 "),
            i("negative", -1),
            kv("fraction", Value::DoubleValue(1.5)),
        ];
        let attrs = Attrs::new(&attributes);
        assert_eq!(attrs.u64("a"), Some(12));
        assert_eq!(attrs.u64("b"), Some(7));
        assert_eq!(attrs.u64("c"), Some(42));
        assert_eq!(attrs.u64("negative"), None);
        assert_eq!(attrs.u64("fraction"), None);
        assert_eq!(attrs.first_u64(&["missing", "c"]), Some(42));
    }

    #[test]
    fn groups_indexed_keys_in_numeric_order() {
        let attributes = [
            s("gen_ai.prompt.10.role", "user"),
            s("gen_ai.prompt.2.role", "assistant"),
            s("gen_ai.prompt.2.tool_calls.0.name", "f"),
            s("gen_ai.prompt_other", "x"),
            s("gen_ai.prompt.x.role", "ignored"),
        ];
        let attrs = Attrs::new(&attributes);
        let groups = attrs.indexed("gen_ai.prompt.");
        assert_eq!(groups.keys().copied().collect::<Vec<_>>(), vec![2, 10]);
        assert_eq!(groups[&2].str("role"), Some("assistant"));
        assert_eq!(groups[&2].indexed("tool_calls.")[&0].str("name"), Some("f"));
        assert!(attrs.has_prefix("gen_ai.prompt."));
        assert!(!attrs.has_prefix("llm."));
    }

    #[test]
    fn maps_values_to_text_and_json() {
        let list = Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: vec![AnyValue {
                value: Some(Value::StringValue("a".into())),
            }],
        });
        let attributes = [kv("tags", list), s("json", r#"{"k":1}"#)];
        let attrs = Attrs::new(&attributes);
        assert_eq!(attrs.text("tags").as_deref(), Some(r#"["a"]"#));
        assert_eq!(attrs.json("json"), Some(serde_json::json!({"k": 1})));
        assert_eq!(attrs.json("tags"), Some(serde_json::json!(["a"])));
    }
}
