//! The `spans.raw` payload and the S3 archive format, as hand-written prost messages.
//!
//! Both wrap OTLP's own messages, so nothing of what the producer sent is lost or reshaped
//! before the processor sees it.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;

/// The version written in every new [`RawSpanBatch`]; readers reject versions they do not know.
pub const RAW_SPAN_BATCH_VERSION: u32 = 1;

/// The version written in every new [`ArchiveObject`].
pub const ARCHIVE_VERSION: u32 = 1;

/// One Kafka record on `spans.raw`: the spans of one trace from one request, with the resource
/// and scope they came with. Keyed `<project_id>/<trace_id hex>`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RawSpanBatch {
    /// Payload version ([`RAW_SPAN_BATCH_VERSION`]).
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub workspace_id: String,
    #[prost(string, tag = "3")]
    pub project_id: String,
    /// When the gateway received the request (Unix nanoseconds).
    #[prost(fixed64, tag = "4")]
    pub received_at_unix_nano: u64,
    #[prost(message, optional, tag = "5")]
    pub resource: Option<Resource>,
    #[prost(string, tag = "6")]
    pub resource_schema_url: String,
    #[prost(message, optional, tag = "7")]
    pub scope: Option<InstrumentationScope>,
    #[prost(string, tag = "8")]
    pub scope_schema_url: String,
    /// All of the same trace.
    #[prost(message, repeated, tag = "9")]
    pub spans: Vec<Span>,
    /// Where the request that carried these spans is archived.
    #[prost(message, optional, tag = "10")]
    pub archive: Option<ArchivePointer>,
}

/// An archived request: the S3 object key and the request's position in it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ArchivePointer {
    #[prost(string, tag = "1")]
    pub bucket: String,
    #[prost(string, tag = "2")]
    pub key: String,
    /// Index into [`ArchiveObject::requests`].
    #[prost(uint32, tag = "3")]
    pub index: u32,
}

impl ArchivePointer {
    /// Reads `s3://<bucket>/<key>#<index>`, the text form stored in ClickHouse
    /// (`EnrichedSpan::raw_pointer`).
    pub fn parse(text: &str) -> Option<ArchivePointer> {
        let rest = text.strip_prefix("s3://")?;
        let (path, index) = rest.rsplit_once('#')?;
        let (bucket, key) = path.split_once('/')?;
        Some(ArchivePointer {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            index: index.parse().ok()?,
        })
    }
}

/// One S3 object under `raw/<project>/<yyyy>/<mm>/<dd>/<hh>/<batch-id>`: the requests one
/// gateway group-committed together, each as it was accepted (protobuf, after decompression
/// and after rejected spans were removed). `requests` is the index: replay walks it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArchiveObject {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub workspace_id: String,
    #[prost(string, tag = "3")]
    pub project_id: String,
    #[prost(message, repeated, tag = "4")]
    pub requests: Vec<ArchivedRequest>,
}

/// One accepted export request inside an [`ArchiveObject`]; decode `request` as
/// `opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArchivedRequest {
    #[prost(fixed64, tag = "1")]
    pub received_at_unix_nano: u64,
    /// `http/protobuf`, `http/json` or `grpc`: how it arrived.
    #[prost(string, tag = "2")]
    pub transport: String,
    /// An `ExportTraceServiceRequest` in protobuf (the same bytes on the wire as an embedded
    /// message field; kept as bytes so the gateway archives what it decoded without re-encoding).
    #[prost(bytes = "bytes", tag = "3")]
    pub request: prost::bytes::Bytes,
}

/// The Kafka key of a trace's records: `<project_id>/<trace_id as lowercase hex>`.
pub fn trace_key(project_id: &str, trace_id: &[u8]) -> String {
    let mut key = String::with_capacity(project_id.len() + 1 + trace_id.len() * 2);
    key.push_str(project_id);
    key.push('/');
    for byte in trace_id {
        key.push(char::from(HEX[usize::from(byte >> 4)]));
        key.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    key
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn batch_round_trips_through_protobuf() {
        let batch = RawSpanBatch {
            version: RAW_SPAN_BATCH_VERSION,
            workspace_id: "w".into(),
            project_id: "p".into(),
            received_at_unix_nano: 1_764_230_400_000_000_000,
            spans: vec![Span {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                name: "chat".into(),
                ..Default::default()
            }],
            archive: Some(ArchivePointer {
                bucket: "spindle".into(),
                key: "raw/p/2026/11/27/10/b".into(),
                index: 3,
            }),
            ..Default::default()
        };
        let bytes = batch.encode_to_vec();
        assert_eq!(
            RawSpanBatch::decode(bytes.as_slice()).expect("decodes"),
            batch
        );
    }

    #[test]
    fn keys_are_project_slash_hex_trace() {
        assert_eq!(
            trace_key("proj", &[0x00, 0xab, 0x0f]),
            "proj/00ab0f".to_owned()
        );
    }

    #[test]
    fn archive_pointers_parse_their_text_form() {
        let pointer =
            ArchivePointer::parse("s3://spindle/raw/p/2026/11/27/09/b1.pb#7").expect("parses");
        assert_eq!(
            (pointer.bucket.as_str(), pointer.key.as_str(), pointer.index),
            ("spindle", "raw/p/2026/11/27/09/b1.pb", 7)
        );
        assert_eq!(ArchivePointer::parse(""), None);
        assert_eq!(ArchivePointer::parse("s3://b/k#x"), None);
    }
}
