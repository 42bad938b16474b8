//! Span kind classification across conventions.
//!
//! The first convention that names a kind decides, in this order: OpenInference
//! (`openinference.span.kind`), TraceRoot (`traceroot.span.type`, the same vocabulary),
//! Traceloop (`traceloop.span.kind`), the Vercel AI SDK (`ai.operationId` or an `ai.*` span
//! name), OpenTelemetry GenAI (`gen_ai.operation.name`), OpenLLMetry (`llm.request.type`). Then
//! hints: a tool name makes a tool span and a model name a model call; `db.*` makes a database
//! span (a retrieval when the database is a vector store) and `http.*`/`url.*` an HTTP span.

use spindle_schemas::canonical::SpanKind;

use super::attrs::Attrs;

pub(super) fn classify(attrs: &Attrs<'_>, span_name: &str) -> SpanKind {
    let named = [
        attrs
            .first_str(&["openinference.span.kind", "traceroot.span.type"])
            .and_then(openinference),
        attrs.str("traceloop.span.kind").and_then(traceloop),
        vercel(attrs.str("ai.operationId").unwrap_or(span_name)),
        attrs.str("gen_ai.operation.name").and_then(genai_operation),
        attrs.str("llm.request.type").and_then(llm_request_type),
    ];
    if let Some(kind) = named.into_iter().flatten().next() {
        return kind;
    }
    if attrs.contains("gen_ai.tool.name") || attrs.contains("tool.name") {
        return SpanKind::Tool;
    }
    if attrs.contains("embedding.model_name") {
        return SpanKind::Embedding;
    }
    if attrs.first_str(MODEL_HINTS).is_some() {
        return SpanKind::Llm;
    }
    if let Some(system) = attrs.first_str(&["db.system.name", "db.system"]) {
        return if VECTOR_STORES.contains(&system.to_ascii_lowercase().as_str()) {
            SpanKind::Retrieval
        } else {
            SpanKind::Db
        };
    }
    if attrs.has_prefix("db.") {
        return SpanKind::Db;
    }
    if HTTP_HINTS.iter().any(|key| attrs.contains(key)) {
        return SpanKind::Http;
    }
    SpanKind::Other
}

const MODEL_HINTS: &[&str] = &[
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "ai.model.id",
];

const VECTOR_STORES: &[&str] = &[
    "pinecone",
    "qdrant",
    "chroma",
    "chromadb",
    "weaviate",
    "milvus",
    "lancedb",
    "pgvector",
    "marqo",
    "turbopuffer",
];

const HTTP_HINTS: &[&str] = &[
    "http.request.method",
    "http.method",
    "http.route",
    "http.url",
    "url.full",
    "http.response.status_code",
    "http.status_code",
];

fn openinference(kind: &str) -> Option<SpanKind> {
    Some(match kind.to_ascii_uppercase().as_str() {
        "LLM" => SpanKind::Llm,
        "EMBEDDING" => SpanKind::Embedding,
        "TOOL" => SpanKind::Tool,
        "AGENT" => SpanKind::Agent,
        "CHAIN" | "GUARDRAIL" | "EVALUATOR" | "PROMPT" => SpanKind::Chain,
        "RETRIEVER" | "RERANKER" => SpanKind::Retrieval,
        _ => return None,
    })
}

fn traceloop(kind: &str) -> Option<SpanKind> {
    Some(match kind {
        "workflow" | "task" => SpanKind::Chain,
        "agent" => SpanKind::Agent,
        "tool" => SpanKind::Tool,
        _ => return None,
    })
}

/// `ai.generateText.doGenerate` is the model call inside `ai.generateText`, which may span
/// several calls and tool executions.
fn vercel(operation: &str) -> Option<SpanKind> {
    let operation = operation.strip_prefix("ai.")?;
    let (call, step) = operation.split_once('.').unwrap_or((operation, ""));
    Some(match (call, step) {
        ("toolCall", _) => SpanKind::Tool,
        ("embed" | "embedMany", "doEmbed") => SpanKind::Embedding,
        ("embed" | "embedMany", _) => SpanKind::Chain,
        (_, "doGenerate" | "doStream") => SpanKind::Llm,
        ("generateText" | "streamText" | "generateObject" | "streamObject", _) => SpanKind::Chain,
        _ => return None,
    })
}

fn genai_operation(operation: &str) -> Option<SpanKind> {
    Some(match operation {
        "chat" | "text_completion" | "generate_content" | "completion" => SpanKind::Llm,
        "embeddings" | "embedding" => SpanKind::Embedding,
        "execute_tool" => SpanKind::Tool,
        "invoke_agent" | "create_agent" => SpanKind::Agent,
        "invoke_workflow" => SpanKind::Chain,
        _ => return None,
    })
}

fn llm_request_type(kind: &str) -> Option<SpanKind> {
    Some(match kind {
        "chat" | "completion" => SpanKind::Llm,
        "embedding" => SpanKind::Embedding,
        "rerank" => SpanKind::Retrieval,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::{i, s};
    use opentelemetry_proto::tonic::common::v1::KeyValue;

    fn kind(attributes: &[KeyValue], name: &str) -> &'static str {
        classify(&Attrs::new(attributes), name).as_str()
    }

    #[test]
    fn each_convention_names_its_kinds() {
        assert_eq!(
            kind(&[s("openinference.span.kind", "RETRIEVER")], "x"),
            "retrieval"
        );
        assert_eq!(kind(&[s("openinference.span.kind", "LLM")], "x"), "llm");
        assert_eq!(kind(&[s("traceroot.span.type", "AGENT")], "x"), "agent");
        assert_eq!(kind(&[s("traceloop.span.kind", "workflow")], "x"), "chain");
        assert_eq!(kind(&[s("traceloop.span.kind", "tool")], "x"), "tool");
        assert_eq!(kind(&[], "ai.streamText.doStream"), "llm");
        assert_eq!(kind(&[], "ai.streamText"), "chain");
        assert_eq!(kind(&[], "ai.toolCall"), "tool");
        assert_eq!(kind(&[], "ai.embedMany.doEmbed"), "embedding");
        assert_eq!(
            kind(
                &[s("ai.operationId", "ai.generateText.doGenerate")],
                "my span"
            ),
            "llm"
        );
        assert_eq!(
            kind(&[s("gen_ai.operation.name", "embeddings")], "x"),
            "embedding"
        );
        assert_eq!(
            kind(&[s("gen_ai.operation.name", "invoke_agent")], "x"),
            "agent"
        );
        assert_eq!(
            kind(&[s("gen_ai.operation.name", "execute_tool")], "x"),
            "tool"
        );
        assert_eq!(kind(&[s("llm.request.type", "chat")], "openai.chat"), "llm");
    }

    #[test]
    fn falls_back_to_hints_then_other() {
        assert_eq!(kind(&[s("gen_ai.request.model", "gpt-4o")], "x"), "llm");
        assert_eq!(kind(&[s("db.system", "postgresql")], "SELECT"), "db");
        assert_eq!(
            kind(&[s("db.system", "pinecone")], "pinecone.query"),
            "retrieval"
        );
        assert_eq!(kind(&[s("http.request.method", "POST")], "POST"), "http");
        assert_eq!(kind(&[i("http.status_code", 200)], "GET"), "http");
        assert_eq!(kind(&[s("custom", "x")], "work"), "other");
        assert_eq!(kind(&[], "ai.somethingNew"), "other");
    }
}
