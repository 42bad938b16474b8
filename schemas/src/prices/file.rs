//! The JSON shape of a price table and its validation into [`ModelPrice`]s.

use serde::Deserialize;

use super::{ModelPrice, PriceTableError, lower, usd_to_nanos};

pub(super) const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// `YYYY-MM-DD` (UTC midnight) as Unix nanoseconds.
pub(super) fn date_to_unix_nano(date: &str) -> Option<u64> {
    let mut parts = date.trim().splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day): (i64, u32, u32) =
        (year.parse().ok()?, month.parse().ok()?, day.parse().ok()?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), years starting in March.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days).ok()?.checked_mul(NANOS_PER_DAY)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) version: String,
    /// Free text for readers of the file.
    #[serde(rename = "description", default)]
    _description: Option<serde::de::IgnoredAny>,
    #[serde(rename = "match", default)]
    pub(super) match_rules: Option<MatchRules>,
    pub(super) models: Vec<Entry>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct MatchRules {
    #[serde(default)]
    pub(super) strip_prefixes: Vec<String>,
    #[serde(default)]
    pub(super) snapshot_suffixes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Entry {
    pub(super) id: String,
    provider: String,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    pub(super) aliases: Vec<String>,
    #[serde(default)]
    pub(super) patterns: Vec<String>,
    input: String,
    output: String,
    #[serde(default)]
    cache_read: Option<String>,
    #[serde(default)]
    cache_write: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    valid_from: String,
    #[serde(default)]
    valid_until: Option<String>,
    /// Free text for readers of the file (sources, caveats).
    #[serde(rename = "note", default)]
    _note: Option<serde::de::IgnoredAny>,
}

impl Entry {
    pub(super) fn into_price(self, id: String) -> Result<ModelPrice, PriceTableError> {
        let usd = |field: &'static str, value: &str| {
            usd_to_nanos(value).ok_or_else(|| PriceTableError::Price {
                id: id.clone(),
                field,
                value: value.to_owned(),
            })
        };
        let date = |field: &'static str, value: &str| {
            date_to_unix_nano(value).ok_or_else(|| PriceTableError::Date {
                id: id.clone(),
                field,
                value: value.to_owned(),
            })
        };
        if id.is_empty() {
            return Err(PriceTableError::Empty { id, field: "id" });
        }
        let provider = lower(&self.provider);
        if provider.is_empty() {
            return Err(PriceTableError::Empty {
                id,
                field: "provider",
            });
        }
        let input = usd("input", &self.input)?;
        let output = usd("output", &self.output)?;
        let optional = |field, value: &Option<String>, fallback| {
            value.as_deref().map_or(Ok(fallback), |v| usd(field, v))
        };
        let cache_read = optional("cache_read", &self.cache_read, input)?;
        let cache_write = optional("cache_write", &self.cache_write, input)?;
        let reasoning = optional("reasoning", &self.reasoning, output)?;
        let valid_from_unix_nano = date("valid_from", &self.valid_from)?;
        let valid_until_unix_nano = match &self.valid_until {
            Some(until) => Some(date("valid_until", until)?),
            None => None,
        };
        if valid_until_unix_nano.is_some_and(|until| until <= valid_from_unix_nano) {
            return Err(PriceTableError::EmptyValidity { id });
        }
        Ok(ModelPrice {
            provider,
            host: self.host.as_deref().map(lower).filter(|h| !h.is_empty()),
            input,
            output,
            cache_read,
            cache_write,
            reasoning,
            valid_from: self.valid_from.trim().to_owned(),
            valid_until: self.valid_until.map(|u| u.trim().to_owned()),
            valid_from_unix_nano,
            valid_until_unix_nano,
            id,
        })
    }
}
