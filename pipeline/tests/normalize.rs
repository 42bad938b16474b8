//! Golden fixtures: real-shaped OTLP/JSON traces per convention (`tests/fixtures/<name>.json`)
//! normalized span by span and compared with the checked-in canonical records
//! (`tests/fixtures/<name>.expected.json`).
//!
//! After an intended change, rewrite the expectations and review the diff:
//! `UPDATE_EXPECT=1 cargo nextest run -p spindle-pipeline --test normalize`.

use std::fs;
use std::path::{Path, PathBuf};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;
use spindle_pipeline::processor::normalize::normalize;
use spindle_schemas::prices::PriceTable;
use spindle_schemas::raw::{ArchivePointer, RAW_SPAN_BATCH_VERSION, RawSpanBatch};

/// When the gateway received every fixture request: 2025-11-27T08:00:30Z.
const RECEIVED_AT: u64 = 1_764_230_430_000_000_000;

const FIXTURES: &[&str] = &[
    "genai_agent_tools",
    "genai_legacy_events",
    "openinference_rag",
    "traceloop_workflow",
    "vercel_ai_stream",
    "unknown_model",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every span of the fixture as canonical records, one `RawSpanBatch` per resource and scope,
/// as the gateway would have produced them.
fn records(name: &str) -> Value {
    let path = fixtures().join(format!("{name}.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let request: ExportTraceServiceRequest = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not OTLP/JSON: {e}", path.display()));
    let mut records = Vec::new();
    for (index, resource_spans) in request.resource_spans.iter().enumerate() {
        for scope_spans in &resource_spans.scope_spans {
            let batch = RawSpanBatch {
                version: RAW_SPAN_BATCH_VERSION,
                workspace_id: "ws_fixture".into(),
                project_id: "proj_fixture".into(),
                received_at_unix_nano: RECEIVED_AT,
                resource: resource_spans.resource.clone(),
                resource_schema_url: resource_spans.schema_url.clone(),
                scope: scope_spans.scope.clone(),
                scope_schema_url: scope_spans.schema_url.clone(),
                spans: scope_spans.spans.clone(),
                archive: Some(ArchivePointer {
                    bucket: "spindle-archive".into(),
                    key: format!("raw/proj_fixture/2025/11/27/08/{name}.pb"),
                    index: u32::try_from(index).expect("few resources"),
                }),
            };
            for span in &batch.spans {
                let record = normalize(&batch, span, PriceTable::embedded(), None);
                records.push(serde_json::to_value(record).expect("records serialize"));
            }
        }
    }
    Value::Array(records)
}

fn check(name: &str) {
    let actual = records(name);
    let path = fixtures().join(format!("{name}.expected.json"));
    let pretty = serde_json::to_string_pretty(&actual).expect("serializes") + "\n";
    #[expect(
        clippy::disallowed_methods,
        reason = "a test-only switch to rewrite the golden files"
    )]
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    if update {
        fs::write(&path, pretty).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected_text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_EXPECT=1 to write it",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&expected_text).expect("expected file is JSON");
    if expected != actual {
        let expected_pretty = serde_json::to_string_pretty(&expected).expect("serializes");
        panic!(
            "`{name}` differs from {} (UPDATE_EXPECT=1 rewrites it):\n{}",
            path.display(),
            diff(&expected_pretty, &pretty)
        );
    }
}

/// The differing lines, with their line numbers, at most 40.
fn diff(expected: &str, actual: &str) -> String {
    let (expected, actual): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    let mut out = Vec::new();
    for n in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(n), actual.get(n));
        if e != a {
            out.push(format!(
                "line {}:\n  expected: {}\n  actual:   {}",
                n + 1,
                e.unwrap_or(&"<none>"),
                a.unwrap_or(&"<none>")
            ));
        }
        if out.len() == 40 {
            break;
        }
    }
    out.join("\n")
}

#[test]
fn genai_agent_tools() {
    check("genai_agent_tools");
}

#[test]
fn genai_legacy_events() {
    check("genai_legacy_events");
}

#[test]
fn openinference_rag() {
    check("openinference_rag");
}

#[test]
fn traceloop_workflow() {
    check("traceloop_workflow");
}

#[test]
fn vercel_ai_stream() {
    check("vercel_ai_stream");
}

#[test]
fn unknown_model() {
    check("unknown_model");
}

#[test]
fn every_fixture_has_a_test_and_an_expectation() {
    let mut found: Vec<String> = fs::read_dir(fixtures())
        .expect("fixtures folder")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            (!stem.ends_with(".expected")).then(|| stem.to_owned())
        })
        .collect();
    found.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed, "add new fixtures to FIXTURES and a test");
    for name in FIXTURES {
        assert!(
            fixtures().join(format!("{name}.expected.json")).exists(),
            "`{name}` has no expectation"
        );
    }
}

/// The records are also valid protobuf: what goes to Kafka decodes to what was normalized.
#[test]
fn records_round_trip_through_protobuf() {
    use prost::Message;
    use spindle_schemas::canonical::EnrichedSpan;

    let text = fs::read_to_string(fixtures().join("genai_agent_tools.json")).expect("fixture");
    let request: ExportTraceServiceRequest = serde_json::from_str(&text).expect("OTLP/JSON");
    let resource_spans = &request.resource_spans[0];
    let scope_spans = &resource_spans.scope_spans[0];
    let batch = RawSpanBatch {
        resource: resource_spans.resource.clone(),
        spans: scope_spans.spans.clone(),
        ..RawSpanBatch::default()
    };
    for span in &batch.spans {
        let record = normalize(&batch, span, PriceTable::embedded(), None);
        let decoded = EnrichedSpan::decode(record.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(decoded, record);
    }
}
