//! Model and provider names across conventions.

use super::attrs::Attrs;

/// The model that answered when reported (`*.response.model`), else the one requested.
pub(super) fn model(attrs: &Attrs<'_>) -> String {
    attrs
        .first_str(&[
            "gen_ai.response.model",
            "ai.response.model",
            "llm.response.model",
            "llm.model_name",
            "embedding.model_name",
            "gen_ai.request.model",
            "ai.model.id",
            "llm.request.model",
            "traceroot.llm.model",
        ])
        .map(|m| m.trim().to_owned())
        .unwrap_or_default()
}

/// Who served the request, normalized to one name per provider: `gen_ai.provider.name` (new)
/// or `gen_ai.system` (old), OpenInference's `llm.provider`/`llm.system`, Vercel's
/// `ai.model.provider` (`openai.chat` → `openai`).
pub(super) fn provider(attrs: &Attrs<'_>) -> String {
    attrs
        .first_str(&[
            "gen_ai.provider.name",
            "gen_ai.system",
            "llm.provider",
            "llm.system",
            "ai.model.provider",
            "traceroot.llm.provider",
        ])
        .map(normalize_provider)
        .unwrap_or_default()
}

pub(super) fn normalize_provider(raw: &str) -> String {
    let raw = raw.trim().to_ascii_lowercase();
    if let Some(name) = known(&raw) {
        return name.to_owned();
    }
    // Vercel names the API after a dot (`mistral.chat`, `google.generative-ai`).
    let family = raw.split('.').next().unwrap_or(&raw);
    known(family).unwrap_or(family).to_owned()
}

fn known(name: &str) -> Option<&'static str> {
    Some(match name {
        "openai" => "openai",
        "azure" | "az.ai.openai" | "azure.ai.openai" | "azure_openai" | "azure-openai"
        | "azure.ai.inference" | "azure_ai_inference" => "azure",
        "anthropic" => "anthropic",
        "aws.bedrock" | "bedrock" | "amazon-bedrock" | "aws_bedrock" | "amazon_bedrock" => {
            "bedrock"
        }
        "gcp.gemini"
        | "gcp.gen_ai"
        | "gemini"
        | "google"
        | "google_genai"
        | "google-genai"
        | "google_generative_ai"
        | "google.generative-ai"
        | "googleai" => "google",
        "gcp.vertex_ai" | "vertex_ai" | "vertexai" | "vertex" | "google.vertex"
        | "google-vertex" => "vertex_ai",
        "mistral" | "mistral_ai" | "mistralai" => "mistral",
        "deepseek" => "deepseek",
        "xai" | "x_ai" | "x-ai" | "grok" => "xai",
        "groq" => "groq",
        "together" | "together_ai" | "togetherai" => "together",
        "fireworks" | "fireworks_ai" | "fireworksai" => "fireworks",
        "meta" | "meta_llama" | "llama" => "meta",
        "cohere" => "cohere",
        "ollama" => "ollama",
        "openrouter" => "openrouter",
        "perplexity" => "perplexity",
        "ibm.watsonx.ai" | "watsonx" => "watsonx",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::s;

    #[test]
    fn prefers_the_response_model() {
        let attributes = [
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.response.model", "gpt-4o-2024-08-06"),
        ];
        assert_eq!(model(&Attrs::new(&attributes)), "gpt-4o-2024-08-06");
        let vercel = [s("ai.model.id", "claude-3-5-haiku-latest")];
        assert_eq!(model(&Attrs::new(&vercel)), "claude-3-5-haiku-latest");
    }

    #[test]
    fn normalizes_provider_names_of_every_convention() {
        for (raw, name) in [
            ("OpenAI", "openai"),
            ("az.ai.openai", "azure"),
            ("aws.bedrock", "bedrock"),
            ("gcp.gemini", "google"),
            ("gcp.vertex_ai", "vertex_ai"),
            ("openai.chat", "openai"),
            ("openai.responses", "openai"),
            ("anthropic.messages", "anthropic"),
            ("google.generative-ai", "google"),
            ("mistral_ai", "mistral"),
            ("xai.chat", "xai"),
            ("acme.chat", "acme"),
        ] {
            assert_eq!(normalize_provider(raw), name, "{raw}");
        }
        let attributes = [s("gen_ai.system", "Anthropic"), s("llm.provider", "openai")];
        assert_eq!(provider(&Attrs::new(&attributes)), "anthropic");
    }
}
