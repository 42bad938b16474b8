//! OTLP protobuf at the wire level: the gateway's fast path.
//!
//! The gateway needs only each span's identity and times (to validate it and key it by trace)
//! and byte ranges (to forward it). Decoding every attribute into owned strings and encoding
//! them again was most of its CPU, so this module walks the request without allocating per
//! field: the envelope (`ResourceSpans`, `ScopeSpans`, `Span`) is parsed field by field, and
//! everything inside a span is checked for well-formed wire structure and copied as bytes.
//! The processor does the full decode; a span whose attributes are well-formed protobuf but
//! not valid OTLP (say, bad UTF-8 in a string) goes to `spans.dlq` there, with the reason.
//!
//! Output is byte-compatible with prost: `spans.raw` records built here decode as
//! `RawSpanBatch`, archived requests as `ExportTraceServiceRequest` (tests hold both to it).

use spindle_schemas::raw::RAW_SPAN_BATCH_VERSION;

/// One span as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanView<'a> {
    /// The whole encoded `Span` message.
    pub(crate) bytes: &'a [u8],
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) parent_span_id: &'a [u8],
    pub(crate) name: &'a str,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) end_time_unix_nano: u64,
}

/// A `ScopeSpans`: the scope's bytes and its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeView<'a> {
    pub(crate) scope: Option<&'a [u8]>,
    pub(crate) schema_url: &'a [u8],
    pub(crate) spans: Vec<SpanView<'a>>,
}

/// A `ResourceSpans`: the resource's bytes and its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceView<'a> {
    pub(crate) resource: Option<&'a [u8]>,
    pub(crate) schema_url: &'a [u8],
    pub(crate) scopes: Vec<ScopeView<'a>>,
}

/// Parses an `ExportTraceServiceRequest`; the error says what is malformed and where.
pub(crate) fn parse(request: &[u8]) -> Result<Vec<ResourceView<'_>>, String> {
    let mut resources = Vec::new();
    for field in Fields::new(request) {
        let (number, value) = field.map_err(|e| format!("request: {e}"))?;
        if number == 1 {
            let bytes = value.bytes("resource_spans")?;
            resources.push(
                resource_spans(bytes)
                    .map_err(|e| format!("resource_spans[{}]: {e}", resources.len()))?,
            );
        }
    }
    Ok(resources)
}

fn resource_spans(bytes: &[u8]) -> Result<ResourceView<'_>, String> {
    let mut view = ResourceView {
        resource: None,
        schema_url: &[],
        scopes: Vec::new(),
    };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => {
                let resource = value.bytes("resource")?;
                check_structure(resource).map_err(|e| format!("resource: {e}"))?;
                view.resource = Some(resource);
            }
            2 => {
                let scope = value.bytes("scope_spans")?;
                let index = view.scopes.len();
                view.scopes
                    .push(scope_spans(scope).map_err(|e| format!("scope_spans[{index}]: {e}"))?);
            }
            3 => view.schema_url = utf8(value.bytes("schema_url")?, "schema_url")?.as_bytes(),
            _ => {}
        }
    }
    Ok(view)
}

fn scope_spans(bytes: &[u8]) -> Result<ScopeView<'_>, String> {
    let mut view = ScopeView {
        scope: None,
        schema_url: &[],
        // Room for spans of about 1 KB, so a typical batch is not regrown eight times.
        spans: Vec::with_capacity(bytes.len() / 1024 + 1),
    };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => {
                let scope = value.bytes("scope")?;
                check_structure(scope).map_err(|e| format!("scope: {e}"))?;
                view.scope = Some(scope);
            }
            2 => {
                let span = value.bytes("spans")?;
                let index = view.spans.len();
                view.spans
                    .push(span_view(span).map_err(|e| format!("spans[{index}]: {e}"))?);
            }
            3 => view.schema_url = utf8(value.bytes("schema_url")?, "schema_url")?.as_bytes(),
            _ => {}
        }
    }
    Ok(view)
}

fn span_view(bytes: &[u8]) -> Result<SpanView<'_>, Malformed> {
    let mut view = SpanView {
        bytes,
        trace_id: &[],
        span_id: &[],
        parent_span_id: &[],
        name: "",
        start_time_unix_nano: 0,
        end_time_unix_nano: 0,
    };
    for field in Fields::new(bytes) {
        let (number, value) = field?;
        match number {
            1 => view.trace_id = value.bytes("trace_id")?,
            2 => view.span_id = value.bytes("span_id")?,
            4 => view.parent_span_id = value.bytes("parent_span_id")?,
            5 => view.name = utf8(value.bytes("name")?, "name")?,
            7 => view.start_time_unix_nano = value.fixed64("start_time_unix_nano")?,
            8 => view.end_time_unix_nano = value.fixed64("end_time_unix_nano")?,
            // Attributes, events, links, status: structure only, carried as bytes.
            9 | 11 | 13 | 15 => check_structure(value.bytes("span field")?)?,
            _ => {}
        }
    }
    Ok(view)
}

/// Checks that `bytes` is a well-formed sequence of protobuf fields. Nested values are
/// carried as bytes; the processor decodes them fully.
fn check_structure(mut bytes: &[u8]) -> Result<(), Malformed> {
    while !bytes.is_empty() {
        field(&mut bytes)?;
    }
    Ok(())
}

fn utf8<'a>(bytes: &'a [u8], what: &'static str) -> Result<&'a str, Malformed> {
    std::str::from_utf8(bytes).map_err(|_| Malformed::NotUtf8(what))
}

/// What is wrong with bytes that should be protobuf; rendered as text only when reported, so
/// the walk over well-formed requests never allocates for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed {
    Truncated { announced: usize, left: usize },
    TruncatedVarint,
    LongVarint,
    FieldNumberOutOfRange,
    FieldNumberZero,
    LengthOutOfRange,
    UnsupportedWireType(u64),
    WrongWireType(&'static str),
    NotUtf8(&'static str),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::Truncated { announced, left } => {
                write!(f, "truncated: {announced} bytes announced, {left} left")
            }
            Malformed::TruncatedVarint => f.write_str("truncated varint"),
            Malformed::LongVarint => f.write_str("varint longer than 10 bytes"),
            Malformed::FieldNumberOutOfRange => f.write_str("field number out of range"),
            Malformed::FieldNumberZero => f.write_str("field number 0"),
            Malformed::LengthOutOfRange => f.write_str("length out of range"),
            Malformed::UnsupportedWireType(t) => write!(f, "unsupported wire type {t}"),
            Malformed::WrongWireType(what) => write!(f, "`{what}` has the wrong wire type"),
            Malformed::NotUtf8(what) => write!(f, "`{what}` is not valid UTF-8"),
        }
    }
}

impl From<Malformed> for String {
    fn from(e: Malformed) -> Self {
        e.to_string()
    }
}

/// A field's value.
#[derive(Debug, Clone, Copy)]
enum Value<'a> {
    Varint,
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32,
}

impl<'a> Value<'a> {
    fn bytes(self, what: &'static str) -> Result<&'a [u8], Malformed> {
        match self {
            Value::Len(bytes) => Ok(bytes),
            _ => Err(Malformed::WrongWireType(what)),
        }
    }

    fn fixed64(self, what: &'static str) -> Result<u64, Malformed> {
        match self {
            Value::Fixed64(v) => Ok(v),
            // prost rejects other wire types for fixed64 fields, and so does the gateway.
            _ => Err(Malformed::WrongWireType(what)),
        }
    }
}

/// Iterates over the fields of a message; stops after the first malformed one.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>), Malformed>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = field(&mut self.rest);
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

/// Reads one field off the front of `rest`.
#[inline(always)]
fn field<'a>(rest: &mut &'a [u8]) -> Result<(u32, Value<'a>), Malformed> {
    let key = varint(rest)?;
    let number = u32::try_from(key >> 3).map_err(|_| Malformed::FieldNumberOutOfRange)?;
    if number == 0 {
        return Err(Malformed::FieldNumberZero);
    }
    let value = match key & 7 {
        0 => {
            varint(rest)?;
            Value::Varint
        }
        1 => {
            let bytes = take(rest, 8)?;
            let mut le = [0; 8];
            le.copy_from_slice(bytes);
            Value::Fixed64(u64::from_le_bytes(le))
        }
        2 => {
            let len = usize::try_from(varint(rest)?).map_err(|_| Malformed::LengthOutOfRange)?;
            Value::Len(take(rest, len)?)
        }
        5 => {
            take(rest, 4)?;
            Value::Fixed32
        }
        other => return Err(Malformed::UnsupportedWireType(other)),
    };
    Ok((number, value))
}

#[inline]
fn take<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], Malformed> {
    if rest.len() < len {
        return Err(Malformed::Truncated {
            announced: len,
            left: rest.len(),
        });
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}

#[inline]
fn varint(rest: &mut &[u8]) -> Result<u64, Malformed> {
    // Keys and most lengths fit in one byte.
    if let Some((&byte, tail)) = rest.split_first()
        && byte < 0x80
    {
        *rest = tail;
        return Ok(u64::from(byte));
    }
    varint_long(rest)
}

fn varint_long(rest: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0_u64;
    for i in 0..10 {
        let Some((&byte, tail)) = rest.split_first() else {
            return Err(Malformed::TruncatedVarint);
        };
        *rest = tail;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Malformed::LongVarint)
}

/// Appends a length-delimited field.
pub(crate) fn put_len(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    prost::encoding::encode_key(number, prost::encoding::WireType::LengthDelimited, out);
    prost::encoding::encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Encodes one `spans.raw` record, a `RawSpanBatch` from byte ranges, at the end of `out`;
/// `archive` is the encoded `ArchivePointer`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn raw_span_batch<'s, 'a: 's>(
    out: &mut Vec<u8>,
    workspace_id: &str,
    project_id: &str,
    received_at_unix_nano: u64,
    resource: &ResourceView<'_>,
    scope: &ScopeView<'_>,
    spans: impl Iterator<Item = &'s SpanView<'a>> + Clone,
    archive: &[u8],
) {
    let size: usize = spans.clone().map(|s| s.bytes.len() + 6).sum::<usize>()
        + resource.resource.map_or(0, <[u8]>::len)
        + scope.scope.map_or(0, <[u8]>::len)
        + archive.len()
        + 256;
    out.reserve(size);
    prost::encoding::uint32::encode(1, &RAW_SPAN_BATCH_VERSION, out);
    put_len(out, 2, workspace_id.as_bytes());
    put_len(out, 3, project_id.as_bytes());
    prost::encoding::fixed64::encode(4, &received_at_unix_nano, out);
    if let Some(bytes) = resource.resource {
        put_len(out, 5, bytes);
    }
    if !resource.schema_url.is_empty() {
        put_len(out, 6, resource.schema_url);
    }
    if let Some(bytes) = scope.scope {
        put_len(out, 7, bytes);
    }
    if !scope.schema_url.is_empty() {
        put_len(out, 8, scope.schema_url);
    }
    for span in spans {
        put_len(out, 9, span.bytes);
    }
    put_len(out, 10, archive);
}

/// Encodes an `ExportTraceServiceRequest` holding only the spans `keep` accepts.
pub(crate) fn filtered_request(
    resources: &[ResourceView<'_>],
    keep: impl Fn(&SpanView<'_>) -> bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut resource_buf = Vec::new();
    let mut scope_buf = Vec::new();
    for resource in resources {
        resource_buf.clear();
        if let Some(bytes) = resource.resource {
            put_len(&mut resource_buf, 1, bytes);
        }
        let mut any = false;
        for scope in &resource.scopes {
            scope_buf.clear();
            if let Some(bytes) = scope.scope {
                put_len(&mut scope_buf, 1, bytes);
            }
            let mut kept = false;
            for span in scope.spans.iter().filter(|s| keep(s)) {
                put_len(&mut scope_buf, 2, span.bytes);
                kept = true;
            }
            if !scope.schema_url.is_empty() {
                put_len(&mut scope_buf, 3, scope.schema_url);
            }
            if kept {
                put_len(&mut resource_buf, 2, &scope_buf);
                any = true;
            }
        }
        if !resource.schema_url.is_empty() {
            put_len(&mut resource_buf, 3, resource.schema_url);
        }
        if any {
            put_len(&mut out, 1, &resource_buf);
        }
    }
    out
}
