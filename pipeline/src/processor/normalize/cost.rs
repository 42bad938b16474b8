//! The cost columns of a span: provider-reported, computed from the price tables, or unknown.
//!
//! A cost the producer reported (`gen_ai.usage.cost`, OpenInference `llm.cost.*`,
//! `ai.usage.cost`, Langfuse `cost_details`; USD) wins. Otherwise the usage is priced at the
//! span's start time: the project's overrides first (by the model's name, then by the canonical
//! id the embedded table resolves it to, so an override of `gpt-4o` also prices
//! `gpt-4o-2024-08-06`), then the embedded table. An unknown model leaves the costs unknown
//! (`unknown_model`), never 0.

use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use serde_json::Value as Json;
use spindle_schemas::canonical::CostStatus;
use spindle_schemas::prices::{
    ModelPrice, NANOS_PER_USD, PriceTable, TokenUsage, cost, usd_to_nanos,
};

use super::attrs::Attrs;

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Priced {
    pub(super) input: Option<i64>,
    pub(super) output: Option<i64>,
    pub(super) total: Option<i64>,
    pub(super) status: CostStatus,
    /// The `version` of the table that priced the span, empty otherwise.
    pub(super) table_version: String,
    /// Who makes the model, when a table knows it.
    pub(super) maker: Option<String>,
}

/// The price tables a span is priced with.
#[derive(Clone, Copy)]
pub(super) struct Tables<'a> {
    pub(super) embedded: &'a PriceTable,
    pub(super) overrides: Option<&'a PriceTable>,
}

impl Priced {
    fn unknown(status: CostStatus) -> Priced {
        Priced {
            input: None,
            output: None,
            total: None,
            status,
            table_version: String::new(),
            maker: None,
        }
    }
}

pub(super) fn price(
    attrs: &Attrs<'_>,
    usage: Option<&TokenUsage>,
    model: &str,
    provider: &str,
    at_unix_nano: u64,
    tables: Tables<'_>,
) -> Priced {
    let found = lookup(model, provider, at_unix_nano, tables);
    let maker = found.map(|(price, _)| price.provider.clone());
    if let Some(reported) = reported(attrs) {
        return Priced { maker, ..reported };
    }
    let Some(usage) = usage else {
        return Priced::unknown(CostStatus::NoUsage);
    };
    let Some((price, table)) = found else {
        return Priced::unknown(CostStatus::UnknownModel);
    };
    let cost = cost(usage, price);
    Priced {
        input: Some(cost.input),
        output: Some(cost.output),
        total: Some(cost.total),
        status: CostStatus::Computed,
        table_version: table.version().to_owned(),
        maker,
    }
}

fn lookup<'a>(
    model: &str,
    provider: &str,
    at: u64,
    tables: Tables<'a>,
) -> Option<(&'a ModelPrice, &'a PriceTable)> {
    let embedded = tables.embedded.lookup(model, provider, at);
    if let Some(overrides) = tables.overrides {
        let overridden = overrides.lookup(model, provider, at).or_else(|| {
            embedded.and_then(|canonical| overrides.lookup(&canonical.id, provider, at))
        });
        if let Some(price) = overridden {
            return Some((price, overrides));
        }
    }
    embedded.map(|price| (price, tables.embedded))
}

const TOTAL_KEYS: &[&str] = &[
    "gen_ai.usage.cost",
    "llm.cost.total",
    "ai.usage.cost",
    "llm.usage.cost",
];

/// A cost the producer reported, in nano-dollars.
fn reported(attrs: &Attrs<'_>) -> Option<Priced> {
    let amount = |key: &str| attrs.get(key).and_then(nanos);
    let mut input = amount("llm.cost.prompt");
    let mut output = amount("llm.cost.completion");
    let mut total = TOTAL_KEYS.iter().find_map(|key| amount(key));
    if let Some(Json::Object(details)) = attrs.json("langfuse.observation.cost_details") {
        let detail = |key: &str| details.get(key).and_then(json_nanos);
        input = input.or_else(|| detail("input"));
        output = output.or_else(|| detail("output"));
        total = total.or_else(|| detail("total"));
    }
    let total = total.or_else(|| input?.checked_add(output?))?;
    Some(Priced {
        input,
        output,
        total: Some(total),
        status: CostStatus::ProviderReported,
        table_version: String::new(),
        maker: None,
    })
}

/// A non-negative USD amount as nano-dollars: an integer, a double (read through its shortest
/// decimal form, so no float arithmetic touches the money) or a decimal string.
fn nanos(value: &AnyValue) -> Option<i64> {
    match value.value.as_ref()? {
        Value::IntValue(usd) if *usd >= 0 => usd.checked_mul(NANOS_PER_USD),
        Value::DoubleValue(usd) if usd.is_finite() => usd_to_nanos(&usd.to_string()),
        Value::StringValue(usd) => usd_to_nanos(usd),
        _ => None,
    }
}

fn json_nanos(value: &Json) -> Option<i64> {
    match value {
        Json::Number(n) => usd_to_nanos(&n.to_string()),
        Json::String(s) => usd_to_nanos(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::normalize::attrs::test_support::{kv, s};

    const MAY_2025: u64 = 1_746_057_600_000_000_000;

    fn tables(overrides: Option<&PriceTable>) -> Tables<'_> {
        Tables {
            embedded: PriceTable::embedded(),
            overrides,
        }
    }

    fn usage() -> TokenUsage {
        TokenUsage {
            input: 1_000,
            output: 100,
            ..TokenUsage::default()
        }
    }

    #[test]
    fn computes_from_the_embedded_table() {
        let priced = price(
            &Attrs::new(&[]),
            Some(&usage()),
            "gpt-4o-mini-2024-07-18",
            "openai",
            MAY_2025,
            tables(None),
        );
        // 1000 × $0.15/M + 100 × $0.60/M
        assert_eq!(priced.input, Some(150_000));
        assert_eq!(priced.output, Some(60_000));
        assert_eq!(priced.total, Some(210_000));
        assert_eq!(priced.status, CostStatus::Computed);
        assert_eq!(priced.table_version, PriceTable::embedded().version());
        assert_eq!(priced.maker.as_deref(), Some("openai"));
    }

    #[test]
    fn unknown_models_and_missing_usage_are_flagged_not_zero() {
        let unknown = price(
            &Attrs::new(&[]),
            Some(&usage()),
            "acme-7b",
            "acme",
            MAY_2025,
            tables(None),
        );
        assert_eq!(unknown, Priced::unknown(CostStatus::UnknownModel));
        let none = price(
            &Attrs::new(&[]),
            None,
            "gpt-4o",
            "openai",
            MAY_2025,
            tables(None),
        );
        assert_eq!(none.status, CostStatus::NoUsage);
        assert_eq!(none.total, None);
    }

    #[test]
    fn a_reported_cost_wins() {
        let attributes = [
            kv("llm.cost.prompt", Value::DoubleValue(0.0012)),
            s("llm.cost.completion", "0.0003"),
        ];
        let priced = price(
            &Attrs::new(&attributes),
            Some(&usage()),
            "gpt-4o",
            "openai",
            MAY_2025,
            tables(None),
        );
        assert_eq!(priced.status, CostStatus::ProviderReported);
        assert_eq!(
            (priced.input, priced.output, priced.total),
            (Some(1_200_000), Some(300_000), Some(1_500_000))
        );
        let total_only = [kv("gen_ai.usage.cost", Value::DoubleValue(0.25))];
        let priced = price(
            &Attrs::new(&total_only),
            None,
            "acme-7b",
            "",
            MAY_2025,
            tables(None),
        );
        assert_eq!((priced.input, priced.total), (None, Some(250_000_000)));
        let negative = [kv("gen_ai.usage.cost", Value::DoubleValue(-1.0))];
        let priced = price(&Attrs::new(&negative), None, "", "", MAY_2025, tables(None));
        assert_eq!(
            priced.status,
            CostStatus::NoUsage,
            "a negative cost is ignored"
        );
    }

    #[test]
    fn project_overrides_win_and_match_through_canonical_ids() {
        let overrides = PriceTable::from_json(
            r#"{"version":"project-1","models":[
                {"id":"gpt-4o-mini","provider":"openai","input":"1","output":"1","valid_from":"2024-01-01"},
                {"id":"acme-7b","provider":"acme","input":"0.5","output":"0.5","valid_from":"2024-01-01"}
            ]}"#,
        )
        .expect("valid overrides");
        let priced = price(
            &Attrs::new(&[]),
            Some(&usage()),
            "gpt-4o-mini-2024-07-18",
            "openai",
            MAY_2025,
            tables(Some(&overrides)),
        );
        assert_eq!(priced.total, Some(1_100_000));
        assert_eq!(priced.table_version, "project-1");
        let custom = price(
            &Attrs::new(&[]),
            Some(&usage()),
            "acme-7b",
            "acme",
            MAY_2025,
            tables(Some(&overrides)),
        );
        assert_eq!(custom.total, Some(550_000));
        let fallback = price(
            &Attrs::new(&[]),
            Some(&usage()),
            "gpt-4o",
            "openai",
            MAY_2025,
            tables(Some(&overrides)),
        );
        assert_eq!(fallback.table_version, PriceTable::embedded().version());
    }
}
