//! The OTLP/JSON mapping, as the specification states it, on top of opentelemetry-proto's
//! serde support: 64-bit integers may come as strings or numbers, enums as integers or names.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;

/// Decodes an OTLP/JSON export request; the error names the JSON path that failed.
pub(crate) fn decode(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    // Every proto3 field is optional: `{}` is an empty request.
    if let Value::Object(map) = &mut value {
        map.entry("resourceSpans")
            .or_insert_with(|| Value::Array(Vec::new()));
    }
    normalize(&mut value, None);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        format!("invalid OTLP JSON at `{path}`: {}", e.into_inner())
    })
}

/// Encodes a message in the OTLP/JSON mapping.
pub(crate) fn encode<T: serde::Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("OTLP messages always serialize")
}

const U64_AS_STRING: [&str; 3] = ["startTimeUnixNano", "endTimeUnixNano", "timeUnixNano"];

fn normalize(value: &mut Value, parent_key: Option<&str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if U64_AS_STRING.contains(&key.as_str()) {
                    if let Value::Number(n) = child {
                        *child = Value::String(n.to_string());
                    }
                    continue;
                }
                match (key.as_str(), parent_key, &*child) {
                    ("kind", _, Value::String(name)) => {
                        if let Some(code) = span_kind(name) {
                            *child = Value::from(code);
                        }
                    }
                    ("code", Some("status"), Value::String(name)) => {
                        if let Some(code) = status_code(name) {
                            *child = Value::from(code);
                        }
                    }
                    _ => normalize(child, Some(key)),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                normalize(item, parent_key);
            }
        }
        _ => {}
    }
}

fn span_kind(name: &str) -> Option<i32> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        _ => return None,
    })
}

fn status_code(name: &str) -> Option<i32> {
    Some(match name {
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
      "scopeSpans":[{"scope":{"name":"s"},"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","parentSpanId":"",
        "name":"chat","kind":KIND,"startTimeUnixNano":START,"endTimeUnixNano":"1764230401000000000",
        "attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":INT}}],
        "events":[{"timeUnixNano":1764230400500000000,"name":"e"}],
        "status":{"code":CODE}}]}]}]}"#;

    fn body(kind: &str, start: &str, int: &str, code: &str) -> String {
        SPAN.replace("KIND", kind)
            .replace("START", start)
            .replace("INT", int)
            .replace("CODE", code)
    }

    #[test]
    fn accepts_numbers_or_strings_and_enum_names_or_numbers() {
        for (kind, start, int, code) in [
            ("3", "\"1764230400000000000\"", "\"42\"", "2"),
            (
                "\"SPAN_KIND_CLIENT\"",
                "1764230400000000000",
                "42",
                "\"STATUS_CODE_ERROR\"",
            ),
        ] {
            let request = decode(body(kind, start, int, code).as_bytes()).expect("decodes");
            let span = &request.resource_spans[0].scope_spans[0].spans[0];
            assert_eq!(span.kind, 3);
            assert_eq!(span.start_time_unix_nano, 1_764_230_400_000_000_000);
            assert_eq!(span.events[0].time_unix_nano, 1_764_230_400_500_000_000);
            assert_eq!(span.status.as_ref().map(|s| s.code), Some(2));
            assert_eq!(span.trace_id.len(), 16);
            assert_eq!(span.span_id.len(), 8);
        }
    }

    #[test]
    fn errors_name_the_path() {
        let err = decode(body("3", "\"soon\"", "1", "0").as_bytes()).expect_err("bad time");
        assert!(err.contains("startTimeUnixNano"), "{err}");
        let err = decode(br#"{"resourceSpans": 7}"#).expect_err("bad shape");
        assert!(err.contains("resourceSpans"), "{err}");
        let err = decode(b"{not json").expect_err("not JSON");
        assert!(err.starts_with("invalid JSON"), "{err}");
    }

    #[test]
    fn an_empty_object_is_an_empty_request() {
        assert!(decode(b"{}").expect("decodes").resource_spans.is_empty());
    }

    #[test]
    fn round_trips_through_encode() {
        let request = decode(body("1", "1", "1", "0").as_bytes()).expect("decodes");
        let again = decode(&encode(&request)).expect("decodes its own encoding");
        assert_eq!(again, request);
    }
}
