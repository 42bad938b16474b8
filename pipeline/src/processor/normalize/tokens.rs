//! Token usage in disjoint buckets, from whichever convention the span uses.
//!
//! Each convention reports totals and details; the rule for each is whether the details are
//! already *included* in the totals:
//!
//! - **OpenTelemetry GenAI** (`gen_ai.usage.*`, old and new names) and **Traceloop/OpenLLMetry**
//!   (which writes the same keys, plus `llm.usage.total_tokens`): `input_tokens` (old:
//!   `prompt_tokens`) counts *all* input, cache reads and cache writes included (the semantic
//!   conventions say so, and OpenLLMetry's Anthropic instrumentation adds Anthropic's separate
//!   cache counts back in); `output_tokens` (old: `completion_tokens`) includes reasoning.
//! - **OpenInference** (`llm.token_count.*`): `prompt` includes `prompt_details.cache_read` and
//!   `cache_write`; `completion` includes `completion_details.reasoning`.
//! - **Vercel AI SDK** (`ai.usage.*`): `inputTokens` (v4: `promptTokens`) includes
//!   `cachedInputTokens` and `outputTokens` (v4: `completionTokens`) includes `reasoningTokens`,
//!   except where the SDK passes a provider's own numbers through: Anthropic's input count
//!   excludes its cache reads, and Google's output count excludes its thoughts. Explicit
//!   `inputTokenDetails.noCacheTokens` wins. Embedding calls report `tokens`, all input.
//!
//! So uncached input = input − cache read − cache write and output = output − reasoning, never
//! counting a token twice. When a producer breaks its convention so that the subtraction would
//! go below zero, the details cannot have been included: the total is taken as already
//! exclusive rather than clamped to zero. A bare total with neither input nor output cannot be
//! split into buckets and is not used (the count stays in the attributes); a total with one of
//! them gives the other.

use spindle_schemas::prices::TokenUsage;

use super::attrs::Attrs;

/// The span's usage, or `None` when it reports none.
pub(super) fn usage(attrs: &Attrs<'_>, provider: &str) -> Option<TokenUsage> {
    if attrs.has_prefix("ai.usage.") {
        return vercel(attrs, provider);
    }
    if attrs.has_prefix("llm.token_count.") {
        return openinference(attrs);
    }
    if attrs.has_prefix("gen_ai.usage.") || attrs.has_prefix("llm.usage.") {
        return genai(attrs);
    }
    None
}

/// Counts as a convention reports them, before the inclusion rules.
#[derive(Debug, Default, Clone, Copy)]
struct Reported {
    input: Option<u64>,
    output: Option<u64>,
    total: Option<u64>,
    uncached_input: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    reasoning: Option<u64>,
}

/// Whether the details are included in the totals.
#[derive(Debug, Clone, Copy)]
struct Included {
    cache_in_input: bool,
    reasoning_in_output: bool,
}

const INCLUDED: Included = Included {
    cache_in_input: true,
    reasoning_in_output: true,
};

fn genai(attrs: &Attrs<'_>) -> Option<TokenUsage> {
    let reported = Reported {
        input: attrs.first_u64(&[
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.usage.prompt_tokens",
        ]),
        output: attrs.first_u64(&[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.usage.completion_tokens",
        ]),
        total: attrs.first_u64(&["gen_ai.usage.total_tokens", "llm.usage.total_tokens"]),
        uncached_input: None,
        cache_read: attrs.first_u64(&[
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.input_tokens.cached",
            "gen_ai.usage.cached_tokens",
            "gen_ai.usage.prompt_tokens_details.cached_tokens",
            "llm.usage.cache_read_input_tokens",
        ]),
        cache_write: attrs.first_u64(&[
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "gen_ai.usage.cache_write_input_tokens",
            "llm.usage.cache_creation_input_tokens",
        ]),
        reasoning: attrs.first_u64(&[
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",
            "gen_ai.usage.output_tokens.reasoning",
            "gen_ai.usage.completion_tokens_details.reasoning_tokens",
            "llm.usage.reasoning_tokens",
        ]),
    };
    buckets(reported, INCLUDED)
}

fn openinference(attrs: &Attrs<'_>) -> Option<TokenUsage> {
    let reported = Reported {
        input: attrs.u64("llm.token_count.prompt"),
        output: attrs.u64("llm.token_count.completion"),
        total: attrs.u64("llm.token_count.total"),
        uncached_input: None,
        cache_read: attrs.u64("llm.token_count.prompt_details.cache_read"),
        cache_write: attrs.u64("llm.token_count.prompt_details.cache_write"),
        reasoning: attrs.u64("llm.token_count.completion_details.reasoning"),
    };
    buckets(reported, INCLUDED)
}

fn vercel(attrs: &Attrs<'_>, provider: &str) -> Option<TokenUsage> {
    let reported = Reported {
        // Embedding calls report their input as `ai.usage.tokens`.
        input: attrs.first_u64(&[
            "ai.usage.inputTokens",
            "ai.usage.promptTokens",
            "ai.usage.tokens",
        ]),
        output: attrs.first_u64(&["ai.usage.outputTokens", "ai.usage.completionTokens"]),
        total: attrs.u64("ai.usage.totalTokens"),
        uncached_input: attrs.u64("ai.usage.inputTokenDetails.noCacheTokens"),
        cache_read: attrs.first_u64(&[
            "ai.usage.inputTokenDetails.cacheReadTokens",
            "ai.usage.cachedInputTokens",
        ]),
        cache_write: attrs.u64("ai.usage.inputTokenDetails.cacheWriteTokens"),
        reasoning: attrs.first_u64(&[
            "ai.usage.outputTokenDetails.reasoningTokens",
            "ai.usage.reasoningTokens",
        ]),
    };
    let included = Included {
        cache_in_input: provider != "anthropic",
        reasoning_in_output: provider != "google",
    };
    buckets(reported, included)
}

fn buckets(reported: Reported, included: Included) -> Option<TokenUsage> {
    let Reported {
        mut input,
        mut output,
        total,
        uncached_input,
        cache_read,
        cache_write,
        reasoning,
    } = reported;
    if let Some(total) = total {
        match (input, output) {
            (Some(i), None) => output = Some(total.saturating_sub(i)),
            (None, Some(o)) => input = Some(total.saturating_sub(o)),
            _ => {}
        }
    }
    let details = [uncached_input, cache_read, cache_write, reasoning];
    if input.is_none() && output.is_none() && details.iter().all(Option::is_none) {
        return None;
    }
    let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
    let (cache_read, cache_write, reasoning) = (
        cache_read.unwrap_or(0),
        cache_write.unwrap_or(0),
        reasoning.unwrap_or(0),
    );
    let cached = cache_read.saturating_add(cache_write);
    let uncached = match uncached_input {
        Some(uncached) => uncached,
        None if included.cache_in_input && input >= cached => input - cached,
        None => input,
    };
    let visible_output = if included.reasoning_in_output && output >= reasoning {
        output - reasoning
    } else {
        output
    };
    Some(TokenUsage {
        input: uncached,
        output: visible_output,
        cache_read,
        cache_write,
        reasoning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::i;
    use opentelemetry_proto::tonic::common::v1::KeyValue;

    fn usage_of(attributes: &[KeyValue], provider: &str) -> Option<TokenUsage> {
        usage(&Attrs::new(attributes), provider)
    }

    fn tokens(
        input: u64,
        output: u64,
        cache_read: u64,
        cache_write: u64,
        reasoning: u64,
    ) -> TokenUsage {
        TokenUsage {
            input,
            output,
            cache_read,
            cache_write,
            reasoning,
        }
    }

    #[test]
    fn genai_new_names_subtract_included_cache_and_reasoning() {
        let attributes = [
            i("gen_ai.usage.input_tokens", 1_200),
            i("gen_ai.usage.output_tokens", 300),
            i("gen_ai.usage.cache_read.input_tokens", 800),
            i("gen_ai.usage.cache_creation.input_tokens", 100),
            i("gen_ai.usage.reasoning.output_tokens", 250),
        ];
        assert_eq!(
            usage_of(&attributes, "anthropic"),
            Some(tokens(300, 50, 800, 100, 250))
        );
    }

    #[test]
    fn genai_old_names_and_the_cached_tokens_variant() {
        let attributes = [
            i("gen_ai.usage.prompt_tokens", 2_000),
            i("gen_ai.usage.completion_tokens", 40),
            i("gen_ai.usage.prompt_tokens_details.cached_tokens", 1_536),
        ];
        assert_eq!(
            usage_of(&attributes, "openai"),
            Some(tokens(464, 40, 1_536, 0, 0))
        );
    }

    #[test]
    fn traceloop_keys_and_a_total_that_fills_in_the_missing_side() {
        let attributes = [
            i("gen_ai.usage.prompt_tokens", 500),
            i("llm.usage.total_tokens", 620),
            i("gen_ai.usage.cache_read_input_tokens", 200),
            i("gen_ai.usage.cache_creation_input_tokens", 50),
        ];
        assert_eq!(
            usage_of(&attributes, "anthropic"),
            Some(tokens(250, 120, 200, 50, 0))
        );
    }

    #[test]
    fn counts_that_cannot_include_their_details_are_taken_as_exclusive() {
        // Raw Anthropic numbers passed through: input excludes the (larger) cache read.
        let attributes = [
            i("gen_ai.usage.input_tokens", 12),
            i("gen_ai.usage.output_tokens", 80),
            i("gen_ai.usage.cache_read_input_tokens", 4_000),
        ];
        assert_eq!(
            usage_of(&attributes, "anthropic"),
            Some(tokens(12, 80, 4_000, 0, 0))
        );
    }

    #[test]
    fn openinference_prompt_includes_cache_and_completion_includes_reasoning() {
        let attributes = [
            i("llm.token_count.prompt", 1_000),
            i("llm.token_count.completion", 900),
            i("llm.token_count.total", 1_900),
            i("llm.token_count.prompt_details.cache_read", 600),
            i("llm.token_count.prompt_details.cache_write", 0),
            i("llm.token_count.completion_details.reasoning", 700),
        ];
        assert_eq!(
            usage_of(&attributes, "openai"),
            Some(tokens(400, 200, 600, 0, 700))
        );
    }

    #[test]
    fn vercel_v5_includes_cached_and_reasoning_counts() {
        let attributes = [
            i("ai.usage.inputTokens", 3_000),
            i("ai.usage.outputTokens", 500),
            i("ai.usage.totalTokens", 3_500),
            i("ai.usage.cachedInputTokens", 2_048),
            i("ai.usage.reasoningTokens", 384),
            // The SDK also writes GenAI keys; the richer ai.* keys win.
            i("gen_ai.usage.input_tokens", 3_000),
        ];
        assert_eq!(
            usage_of(&attributes, "openai"),
            Some(tokens(952, 116, 2_048, 0, 384))
        );
    }

    #[test]
    fn vercel_passes_anthropic_input_and_google_output_through_exclusive() {
        let anthropic = [
            i("ai.usage.inputTokens", 100),
            i("ai.usage.outputTokens", 20),
            i("ai.usage.cachedInputTokens", 50),
        ];
        assert_eq!(
            usage_of(&anthropic, "anthropic"),
            Some(tokens(100, 20, 50, 0, 0))
        );
        let google = [
            i("ai.usage.inputTokens", 100),
            i("ai.usage.outputTokens", 20),
            i("ai.usage.reasoningTokens", 15),
        ];
        assert_eq!(usage_of(&google, "google"), Some(tokens(100, 20, 0, 0, 15)));
    }

    #[test]
    fn vercel_v4_names_and_explicit_details() {
        let v4 = [
            i("ai.usage.promptTokens", 10),
            i("ai.usage.completionTokens", 5),
        ];
        assert_eq!(usage_of(&v4, "openai"), Some(tokens(10, 5, 0, 0, 0)));
        let details = [
            i("ai.usage.inputTokens", 100),
            i("ai.usage.inputTokenDetails.noCacheTokens", 30),
            i("ai.usage.inputTokenDetails.cacheReadTokens", 60),
            i("ai.usage.inputTokenDetails.cacheWriteTokens", 10),
            i("ai.usage.outputTokens", 7),
        ];
        assert_eq!(
            usage_of(&details, "anthropic"),
            Some(tokens(30, 7, 60, 10, 0))
        );
    }

    #[test]
    fn no_usage_or_a_bare_total_is_none() {
        assert_eq!(usage_of(&[], "openai"), None);
        assert_eq!(usage_of(&[i("llm.usage.total_tokens", 99)], "openai"), None);
        assert_eq!(
            usage_of(&[i("gen_ai.usage.input_tokens", 0)], "openai"),
            Some(TokenUsage::default()),
            "a reported zero is usage"
        );
    }
}
