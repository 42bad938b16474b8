//! One archive object → its `spans.raw` records, as the gateway made them (pure).

use prost::Message as _;
use spindle_schemas::raw::{ARCHIVE_VERSION, ArchiveObject, ArchivePointer};

use super::ReplayError;
use super::range::project_of;
use crate::gateway::batch::{self, Record};
use crate::gateway::{validate, wire};

/// The records of one archive object, each with the index of the request it came from.
#[derive(Debug)]
pub(super) struct Split {
    pub(super) requests: u64,
    pub(super) spans: u64,
    pub(super) records: Vec<(u32, Record)>,
}

/// Decodes an object's bytes; an unknown version is refused, never guessed at.
pub(super) fn decode(key: &str, bytes: bytes::Bytes) -> Result<ArchiveObject, ReplayError> {
    let object = ArchiveObject::decode(bytes).map_err(|e| ReplayError::Decode {
        key: key.to_owned(),
        reason: e.to_string(),
    })?;
    if object.version != ARCHIVE_VERSION {
        return Err(ReplayError::UnknownVersion {
            key: key.to_owned(),
            version: object.version,
        });
    }
    if project_of(key) != Some(&object.project_id) {
        return Err(ReplayError::ProjectMismatch {
            key: key.to_owned(),
            project_id: object.project_id,
        });
    }
    Ok(object)
}

/// Splits every request of `object` into `spans.raw` records as the gateway did.
pub(super) fn split(
    bucket: &str,
    key: &str,
    object: &ArchiveObject,
    partitions: u32,
) -> Result<Split, ReplayError> {
    let mut split = Split {
        requests: 0,
        spans: 0,
        records: Vec::new(),
    };
    for (index, request) in object.requests.iter().enumerate() {
        let index = u32::try_from(index).expect("an S3 object holds fewer than 2^32 requests");
        let malformed = |reason: String| ReplayError::MalformedRequest {
            key: key.to_owned(),
            index,
            reason,
        };
        let resources = wire::parse(&request.request).map_err(malformed)?;
        // The gateway archived only the spans it accepted at `received_at`: the same check
        // again must accept them all, or this is not what the gateway wrote.
        let verdict = validate::validate(&resources, request.received_at_unix_nano);
        if verdict.rejected_spans > 0 {
            return Err(malformed(verdict.message));
        }
        let pointer = ArchivePointer {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            index,
        };
        let records = batch::records(
            &resources,
            |_| true,
            &object.workspace_id,
            &object.project_id,
            request.received_at_unix_nano,
            &pointer,
            partitions,
        );
        split.requests += 1;
        split.spans += verdict.accepted_spans;
        split
            .records
            .extend(records.into_iter().map(|r| (index, r)));
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use spindle_schemas::raw::{ArchivedRequest, RawSpanBatch};

    const NOW: u64 = 1_764_230_400_000_000_000;
    const KEY: &str = "raw/p1/2025/11/27/08/0193.pb";

    fn span(trace: u8, id: u8) -> Span {
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("s{id}"),
            start_time_unix_nano: NOW - 2_000,
            end_time_unix_nano: NOW - 1_000,
            ..Default::default()
        }
    }

    fn request(spans: Vec<Span>) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    fn object(requests: Vec<Vec<u8>>) -> ArchiveObject {
        ArchiveObject {
            version: ARCHIVE_VERSION,
            workspace_id: "w1".into(),
            project_id: "p1".into(),
            requests: requests
                .into_iter()
                .enumerate()
                .map(|(i, request)| ArchivedRequest {
                    received_at_unix_nano: NOW + i as u64,
                    transport: "http/protobuf".into(),
                    request: request.into(),
                })
                .collect(),
        }
    }

    #[test]
    fn requests_split_into_the_gateways_records() {
        let object = object(vec![
            request(vec![span(1, 1), span(2, 2), span(1, 3)]),
            request(vec![span(1, 4)]),
        ]);
        let t1 = format!("p1/{}", "01".repeat(16));
        let t2 = format!("p1/{}", "02".repeat(16));
        // A partition count that puts the two traces apart, so each gets a record.
        let apart = (2..64)
            .find(|&n| crate::gateway::partition_of(&t1, n) != crate::gateway::partition_of(&t2, n))
            .expect("some partition count separates the traces");
        let split = split("b", KEY, &object, apart).expect("splits");
        assert_eq!((split.requests, split.spans), (2, 4));
        let decoded: Vec<(u32, String, RawSpanBatch)> = split
            .records
            .iter()
            .map(|(index, r)| {
                let batch = RawSpanBatch::decode(r.payload.as_slice()).expect("decodes");
                (*index, r.key.clone(), batch)
            })
            .collect();
        let summary: Vec<(u32, &str, u64, Vec<u8>, u32)> = decoded
            .iter()
            .map(|(index, key, batch)| {
                let pointer = batch.archive.clone().expect("pointer");
                assert_eq!((pointer.bucket.as_str(), pointer.key.as_str()), ("b", KEY));
                assert_eq!(
                    (batch.workspace_id.as_str(), batch.project_id.as_str()),
                    ("w1", "p1")
                );
                let ids = batch.spans.iter().map(|s| s.span_id[0]).collect();
                (
                    *index,
                    key.as_str(),
                    batch.received_at_unix_nano,
                    ids,
                    pointer.index,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, t1.as_str(), NOW, vec![1, 3], 0),
                (0, t2.as_str(), NOW, vec![2], 0),
                (1, t1.as_str(), NOW + 1, vec![4], 1),
            ]
        );
        assert_eq!(decoded[0].2.spans, [span(1, 1), span(1, 3)]);
    }

    #[test]
    fn malformed_requests_name_the_object_and_index() {
        let mut truncated = request(vec![span(1, 1)]);
        truncated.truncate(truncated.len() - 3);
        let err = split(
            "b",
            KEY,
            &object(vec![request(vec![span(1, 1)]), truncated]),
            3,
        )
        .expect_err("truncated");
        assert_eq!(
            err.to_string(),
            format!(
                "request 1 of `{KEY}` is malformed: request: truncated: 54 bytes announced, 51 left"
            )
        );
        // A span the gateway would have refused was not archived by it.
        let zero = Span {
            trace_id: vec![0; 16],
            ..span(1, 1)
        };
        let err = split("b", KEY, &object(vec![request(vec![zero])]), 3).expect_err("invalid span");
        assert!(
            matches!(&err, ReplayError::MalformedRequest { index: 0, reason, .. }
                if reason.contains("trace_id must be 16 bytes")),
            "{err}"
        );
    }

    #[test]
    fn objects_decode_only_in_a_known_version_and_project() {
        let good = object(vec![request(vec![span(1, 1)])]);
        let bytes = |o: &ArchiveObject| bytes::Bytes::from(o.encode_to_vec());
        assert_eq!(decode(KEY, bytes(&good)).expect("decodes"), good);

        let future = ArchiveObject {
            version: ARCHIVE_VERSION + 1,
            ..good.clone()
        };
        let err = decode(KEY, bytes(&future)).expect_err("unknown version");
        assert_eq!(
            err.to_string(),
            format!("`{KEY}` has archive version 2; replay reads version 1")
        );
        let err = decode("raw/p2/2025/11/27/08/x.pb", bytes(&good)).expect_err("other project");
        assert!(matches!(err, ReplayError::ProjectMismatch { .. }), "{err}");
        let err = decode(KEY, bytes::Bytes::from_static(b"\xff\xff")).expect_err("garbage");
        assert!(
            err.to_string()
                .starts_with(&format!("`{KEY}` is not an archive object: ")),
            "{err}"
        );
    }
}
