use std::collections::{BTreeMap, BTreeSet};

use super::file::{NANOS_PER_DAY, date_to_unix_nano};
use super::*;

fn at(date: &str) -> u64 {
    date_to_unix_nano(date).expect("a valid date")
}

fn usd(amount: &str) -> i64 {
    usd_to_nanos(amount).expect("a valid amount")
}

const NOW: &str = "2026-11-27";

#[test]
fn the_embedded_table_covers_at_least_100_models_from_every_provider() {
    let table = PriceTable::embedded();
    let ids: BTreeSet<&str> = table.models().iter().map(|m| m.id.as_str()).collect();
    assert!(ids.len() >= 100, "only {} models", ids.len());
    let providers: BTreeSet<&str> = table.models().iter().map(|m| m.provider.as_str()).collect();
    for provider in [
        "openai",
        "anthropic",
        "google",
        "mistral",
        "meta",
        "deepseek",
        "xai",
    ] {
        assert!(providers.contains(provider), "no `{provider}` model");
    }
    assert!(!table.version().is_empty());
}

#[test]
fn no_id_has_overlapping_validity_for_the_same_host() {
    let table = PriceTable::embedded();
    let mut by_key: BTreeMap<(&str, Option<&str>), Vec<&ModelPrice>> = BTreeMap::new();
    for model in table.models() {
        by_key
            .entry((model.id.as_str(), model.host.as_deref()))
            .or_default()
            .push(model);
    }
    for ((id, host), entries) in by_key {
        for (n, a) in entries.iter().enumerate() {
            for b in &entries[n + 1..] {
                assert!(
                    !a.overlaps(b),
                    "`{id}` ({host:?}) overlaps: {} and {}",
                    a.valid_from,
                    b.valid_from
                );
            }
        }
    }
}

#[test]
fn every_current_price_is_sane() {
    for model in PriceTable::embedded().models() {
        assert!(model.input > 0, "`{}` has no input price", model.id);
        assert!(
            model.cache_read <= model.input,
            "`{}` reads from cache dearer than input",
            model.id
        );
        assert!(
            model.output > 0 || model.id.contains("embed"),
            "`{}` has no output price",
            model.id
        );
    }
}

#[test]
fn knows_a_few_published_prices() {
    let table = PriceTable::embedded();
    let now = at(NOW);
    let price = |model: &str, provider: &str| {
        table
            .lookup(model, provider, now)
            .unwrap_or_else(|| panic!("no price for `{model}`"))
    };
    let gpt4o = price("gpt-4o", "openai");
    assert_eq!((gpt4o.input, gpt4o.output), (usd("2.50"), usd("10")));
    assert_eq!(gpt4o.cache_read, usd("1.25"));
    assert_eq!(
        gpt4o.cache_write, gpt4o.input,
        "openai bills cache writes as input"
    );
    assert_eq!(gpt4o.reasoning, gpt4o.output);

    let sonnet = price("claude-3-5-sonnet-20241022", "anthropic");
    assert_eq!(sonnet.id, "claude-3-5-sonnet");
    assert_eq!((sonnet.input, sonnet.output), (usd("3"), usd("15")));
    assert_eq!(
        (sonnet.cache_read, sonnet.cache_write),
        (usd("0.30"), usd("3.75"))
    );

    let mini = price("gpt-4o-mini-2024-07-18", "");
    assert_eq!(
        (mini.id.as_str(), mini.input, mini.output),
        ("gpt-4o-mini", usd("0.15"), usd("0.60"))
    );
    let flash = price("models/gemini-1.5-flash-002", "google");
    assert_eq!((flash.input, flash.output), (usd("0.075"), usd("0.30")));
    let embedding = price("text-embedding-3-small", "openai");
    assert_eq!((embedding.input, embedding.output), (usd("0.02"), 0));
    let deepseek = price("deepseek-chat", "deepseek");
    assert_eq!(deepseek.cache_read, usd("0.028"));
    let grok = price("grok-4-0709", "xai");
    assert_eq!((grok.input, grok.output), (usd("3"), usd("15")));
    let preview = price("gemini-2.5-flash-preview-05-20", "google");
    assert_eq!(preview.reasoning, usd("3.50"), "thinking priced apart");
}

#[test]
fn prices_follow_their_validity_dates() {
    let table = PriceTable::embedded();
    let gpt4o = |date| table.lookup("gpt-4o", "openai", at(date)).map(|p| p.input);
    assert_eq!(gpt4o("2024-06-01"), Some(usd("5")));
    assert_eq!(gpt4o("2024-10-01"), Some(usd("5")));
    assert_eq!(
        gpt4o("2024-10-02"),
        Some(usd("2.5")),
        "valid_from is inclusive"
    );
    assert_eq!(
        gpt4o("2023-01-01"),
        None,
        "no price before the model existed"
    );
    let o3 = |date| {
        table
            .lookup("o3-2025-04-16", "openai", at(date))
            .map(|p| p.output)
    };
    assert_eq!(o3("2025-05-01"), Some(usd("40")));
    assert_eq!(o3("2025-07-01"), Some(usd("8")));
    let deepseek = |date| table.lookup("deepseek-chat", "", at(date)).map(|p| p.input);
    assert_eq!(deepseek("2025-01-15"), Some(usd("0.14")));
    assert_eq!(deepseek("2025-03-01"), Some(usd("0.27")));
    assert_eq!(deepseek("2025-09-10"), Some(usd("0.56")));
    assert_eq!(deepseek("2025-10-01"), Some(usd("0.28")));
}

#[test]
fn matches_exact_ids_before_snapshots_and_patterns() {
    let table = PriceTable::embedded();
    let now = at(NOW);
    let id = |model: &str, provider: &str| table.lookup(model, provider, now).map(|p| p.id.clone());
    // An exact snapshot id with its own (higher) price is not folded into its family.
    assert_eq!(
        id("gpt-4o-2024-05-13", "").as_deref(),
        Some("gpt-4o-2024-05-13")
    );
    assert_eq!(
        id("GPT-4o-2024-08-06", "").as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(id("gpt-4o-2024-12-01", "").as_deref(), Some("gpt-4o"));
    assert_eq!(id("openai/gpt-4o", "").as_deref(), Some("gpt-4o"));
    assert_eq!(id("gpt-4-0613", "").as_deref(), Some("gpt-4"));
    assert_eq!(
        id("gpt-3.5-turbo-0125", "").as_deref(),
        Some("gpt-3.5-turbo")
    );
    assert_eq!(
        id("claude-3-5-sonnet-latest", "").as_deref(),
        Some("claude-3-5-sonnet")
    );
    assert_eq!(
        id("claude-sonnet-4-5-20250929", "").as_deref(),
        Some("claude-sonnet-4-5")
    );
    assert_eq!(
        id("us.anthropic.claude-3-5-haiku-20241022-v1:0", "bedrock").as_deref(),
        Some("claude-3-5-haiku")
    );
    assert_eq!(
        id("claude-3-5-sonnet-v2@20241022", "vertex_ai").as_deref(),
        Some("claude-3-5-sonnet")
    );
    assert_eq!(
        id("anthropic/claude-sonnet-4.5", "openrouter").as_deref(),
        Some("claude-sonnet-4-5")
    );
    assert_eq!(
        id("models/gemini-1.5-pro", "").as_deref(),
        Some("gemini-1.5-pro")
    );
    assert_eq!(
        id("gemini-2.5-flash-lite-preview-06-17", "").as_deref(),
        Some("gemini-2.5-flash-lite")
    );
    assert_eq!(
        id("mistral-large-latest", "").as_deref(),
        Some("mistral-large")
    );
    assert_eq!(
        id("mistral-large-2411", "").as_deref(),
        Some("mistral-large-2411")
    );
    assert_eq!(
        id("meta.llama3-1-70b-instruct-v1:0", "bedrock").as_deref(),
        Some("llama-3.1-70b-instruct")
    );
    assert_eq!(id("my-fine-tune-v3", "").as_deref(), None);
    assert_eq!(id("", "openai"), None);
    // Not a prefix match: an unknown sibling is unknown, not priced as its family.
    assert_eq!(id("gpt-4o-mini-transcribe", "openai"), None);
}

#[test]
fn the_provider_picks_among_hosts_of_one_open_model() {
    let table = PriceTable::embedded();
    let now = at(NOW);
    let scout = "meta-llama/llama-4-scout-17b-16e-instruct";
    let groq = table.lookup(scout, "groq", now).expect("groq price");
    assert_eq!(groq.host.as_deref(), Some("groq"));
    assert_eq!(groq.input, usd("0.11"));
    let together = table
        .lookup(scout, "together", now)
        .expect("together price");
    assert_eq!(together.host.as_deref(), Some("together"));
    let unknown_host = table.lookup(scout, "", now).expect("a default");
    assert_eq!(unknown_host, together, "the first listed is the default");
    let turbo = table
        .lookup("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", now)
        .expect("together id");
    assert_eq!(turbo.id, "llama-3.3-70b-instruct");
}

#[test]
fn costs_are_integer_nano_dollars_per_bucket() {
    let table = PriceTable::embedded();
    let sonnet = table
        .lookup("claude-3-5-sonnet", "anthropic", at(NOW))
        .expect("priced");
    let tokens = TokenUsage {
        input: 1_000,
        output: 500,
        cache_read: 10_000,
        cache_write: 2_000,
        reasoning: 0,
    };
    // 1000 × $3/M + 10000 × $0.30/M + 2000 × $3.75/M = $0.003 + $0.003 + $0.0075
    // 500 × $15/M = $0.0075
    assert_eq!(
        cost(&tokens, sonnet),
        Cost {
            input: 13_500_000,
            output: 7_500_000,
            total: 21_000_000,
        }
    );
    let o3 = table.lookup("o3", "openai", at(NOW)).expect("priced");
    let reasoning = TokenUsage {
        input: 100,
        output: 20,
        reasoning: 300,
        ..TokenUsage::default()
    };
    // 100 × $2/M = 200_000 n$; (20 + 300) × $8/M = 2_560_000 n$
    assert_eq!(cost(&reasoning, o3).output, 2_560_000);
    assert_eq!(cost(&reasoning, o3).total, 2_760_000);
}

#[test]
fn cost_rounds_half_up_and_never_overflows() {
    let price = ModelPrice {
        id: "m".into(),
        provider: "p".into(),
        host: None,
        input: usd("0.0001"),
        output: i64::MAX,
        cache_read: 0,
        cache_write: 0,
        reasoning: 0,
        valid_from: "1970-01-01".into(),
        valid_until: None,
        valid_from_unix_nano: 0,
        valid_until_unix_nano: None,
    };
    let one = |input| {
        cost(
            &TokenUsage {
                input,
                ..TokenUsage::default()
            },
            &price,
        )
        .input
    };
    // $0.0001 per million tokens is 0.1 n$ per token.
    assert_eq!(one(4), 0, "0.4 n$");
    assert_eq!(one(5), 1, "0.5 n$ rounds up");
    assert_eq!(one(14), 1, "1.4 n$");
    assert_eq!(one(15), 2, "1.5 n$");
    let huge = TokenUsage {
        output: u64::MAX,
        ..TokenUsage::default()
    };
    assert_eq!(cost(&huge, &price).output, i64::MAX);
    assert_eq!(cost(&huge, &price).total, i64::MAX);
}

#[test]
fn parses_usd_amounts_without_floats() {
    assert_eq!(usd_to_nanos("2.50"), Some(2_500_000_000));
    assert_eq!(usd_to_nanos("0.0375"), Some(37_500_000));
    assert_eq!(usd_to_nanos("3"), Some(3_000_000_000));
    assert_eq!(usd_to_nanos(".5"), Some(500_000_000));
    assert_eq!(usd_to_nanos("0.0000000015"), Some(2), "rounds half up");
    assert_eq!(usd_to_nanos("0.0000000014"), Some(1));
    assert_eq!(usd_to_nanos("0"), Some(0));
    for bad in ["", ".", "-1", "1e-6", "1.2.3", "abc", "99999999999999"] {
        assert_eq!(usd_to_nanos(bad), None, "{bad}");
    }
}

#[test]
fn parses_dates_as_utc_midnight() {
    assert_eq!(date_to_unix_nano("1970-01-01"), Some(0));
    assert_eq!(
        date_to_unix_nano("2025-11-27"),
        Some(1_764_201_600 * 1_000_000_000)
    );
    assert_eq!(
        date_to_unix_nano("2024-03-01").map(|n| n - at("2024-02-29")),
        Some(NANOS_PER_DAY)
    );
    for bad in [
        "2023-02-29",
        "2024-13-01",
        "2024-1-01",
        "1969-12-31",
        "today",
    ] {
        assert_eq!(date_to_unix_nano(bad), None, "{bad}");
    }
}

#[test]
fn globs_and_snapshot_templates() {
    assert!(glob_match(
        "*llama-3.1-70b*",
        "meta-llama-3.1-70b-instruct-turbo"
    ));
    assert!(glob_match("llama3-1-70b*", "llama3-1-70b-instruct-v1:0"));
    assert!(!glob_match("llama3-1-70b*", "llama3-1-8b"));
    assert!(glob_match("a*b*c", "a-b-b-c"));
    assert_eq!(
        strip_template("gpt-4o-2024-08-06", "-####-##-##"),
        Some("gpt-4o")
    );
    assert_eq!(strip_template("gpt-4-0613", "-####"), Some("gpt-4"));
    assert_eq!(strip_template("gpt-4-turbo", "-####"), None);
    assert_eq!(
        strip_template("-0613", "-####"),
        None,
        "nothing would be left"
    );
}

#[test]
fn refuses_invalid_tables() {
    let table =
        |models: &str| PriceTable::from_json(&format!(r#"{{"version":"t","models":[{models}]}}"#));
    let entry = |id: &str, input: &str, from: &str, until: &str| {
        let until = if until.is_empty() {
            String::new()
        } else {
            format!(r#","valid_until":"{until}""#)
        };
        format!(
            r#"{{"id":"{id}","provider":"p","input":"{input}","output":"1","valid_from":"{from}"{until}}}"#
        )
    };
    let ok = format!(
        "{},{}",
        entry("m", "1", "2024-01-01", "2024-06-01"),
        entry("m", "2", "2024-06-01", "")
    );
    assert!(table(&ok).is_ok(), "back-to-back periods do not overlap");
    let overlapping = format!(
        "{},{}",
        entry("m", "1", "2024-01-01", "2024-06-02"),
        entry("m", "2", "2024-06-01", "")
    );
    assert!(matches!(
        table(&overlapping),
        Err(PriceTableError::Overlap { .. })
    ));
    assert!(matches!(
        table(&entry("m", "-1", "2024-01-01", "")),
        Err(PriceTableError::Price { field: "input", .. })
    ));
    assert!(matches!(
        table(&entry("m", "1", "2024-06-01", "2024-06-01")),
        Err(PriceTableError::EmptyValidity { .. })
    ));
    assert!(matches!(
        table(&entry("m", "1", "June", "")),
        Err(PriceTableError::Date { .. })
    ));
    assert!(matches!(
        PriceTable::from_json(r#"{"version":"t","models":[],"surprise":1}"#),
        Err(PriceTableError::Json(_))
    ));
}

#[test]
fn an_override_table_needs_no_match_rules() {
    let overrides = PriceTable::from_json(
        r#"{"version":"project-7","models":[
            {"id":"gpt-4o","provider":"openai","input":"1","output":"2","valid_from":"2020-01-01"}
        ]}"#,
    )
    .expect("valid");
    let price = overrides.lookup("gpt-4o", "", at(NOW)).expect("exact id");
    assert_eq!((price.input, price.cache_read), (usd("1"), usd("1")));
    assert_eq!(overrides.version(), "project-7");
}
