//! The model price table and the cost arithmetic.
//!
//! The data is `schemas/data/prices.json`, embedded at compile time ([`PriceTable::embedded`]);
//! a project's overrides are a table of the same shape ([`PriceTable::from_json`]). Prices are
//! USD per million tokens per token bucket, written as decimal strings and held as integer
//! nano-dollars (1e-9 USD) per million tokens: money never goes through a float.
//!
//! Matching a model name, in order (the first step that names a known id decides):
//! 1. the name itself (lowercased) as an `id` or one of its `aliases`;
//! 2. the name without a path (`openai/gpt-4o`, `models/gemini-1.5-pro`,
//!    `accounts/fireworks/models/…` keep what follows the last `/`) and without the table's
//!    `match.strip_prefixes` (Bedrock's `us.` and `anthropic.`);
//! 3. that name without dated-snapshot suffixes (`match.snapshot_suffixes`, where `#` is a
//!    digit: `gpt-4o-2024-08-06` → `gpt-4o`, `claude-3-5-sonnet-20241022` → `claude-3-5-sonnet`),
//!    removed one at a time, looking the name up after each;
//! 4. the models' glob `patterns` (`*` is any run of characters) against the name of step 2;
//!    the most specific pattern (most literal characters) wins.
//!
//! Among the entries of the id found, the one valid at the span's time is used; when several
//! are (the same open model sold by several hosts), the one whose `host`, then `provider`,
//! equals the span's provider, else the first listed.

use std::collections::HashMap;
use std::sync::OnceLock;

use file::File;

/// The table shipped with this build.
const EMBEDDED_JSON: &str = include_str!("../data/prices.json");

/// Nano-dollars in one US dollar.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

const TOKENS_PER_PRICE_UNIT: i128 = 1_000_000;
/// How many snapshot suffixes one lookup strips at most (`…-20241022-v2:0` needs two).
const MAX_SUFFIX_STRIPS: usize = 4;

/// A versioned table of model prices.
#[derive(Debug, Clone)]
pub struct PriceTable {
    version: String,
    models: Vec<ModelPrice>,
    /// Lowercase id or alias → indices into `models`, in table order.
    keys: HashMap<String, Vec<usize>>,
    /// (pattern, id), most specific first.
    patterns: Vec<(String, String)>,
    strip_prefixes: Vec<String>,
    snapshot_suffixes: Vec<String>,
}

/// One model's prices over one validity period.
///
/// Prices are nano-dollars per million tokens. Absent cache prices fall back to the input
/// price (a provider without prompt caching bills those tokens as ordinary input) and an
/// absent reasoning price to the output price (reasoning tokens are billed as output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    /// The canonical model id (lowercase).
    pub id: String,
    /// Who makes the model: `openai`, `anthropic`, `google`, `mistral`, `meta`, `deepseek`,
    /// `xai`, …
    pub provider: String,
    /// Who serves it at this price, when that is not the maker (`together`, `groq`).
    pub host: Option<String>,
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    /// First day (UTC) the price applies, `YYYY-MM-DD`.
    pub valid_from: String,
    /// First day (UTC) it no longer applies, if it has been replaced.
    pub valid_until: Option<String>,
    valid_from_unix_nano: u64,
    valid_until_unix_nano: Option<u64>,
}

/// Token counts in disjoint buckets: nothing is counted in two of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    /// Input tokens read neither from nor into a prompt cache.
    pub input: u64,
    /// Output tokens other than reasoning.
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

/// A cost in nano-dollars; `total = input + output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Uncached input, cache reads and cache writes.
    pub input: i64,
    /// Output and reasoning.
    pub output: i64,
    pub total: i64,
}

/// Why a price table was refused.
#[derive(Debug, thiserror::Error)]
pub enum PriceTableError {
    #[error("price table is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("model `{id}`: `{field}` is not a non-negative USD amount: `{value}`")]
    Price {
        id: String,
        field: &'static str,
        value: String,
    },
    #[error("model `{id}`: `{field}` is not a date (`YYYY-MM-DD`, 1970 or later): `{value}`")]
    Date {
        id: String,
        field: &'static str,
        value: String,
    },
    #[error("model `{id}`: `valid_until` must be after `valid_from`")]
    EmptyValidity { id: String },
    #[error("model `{id}`: `{field}` must not be empty")]
    Empty { id: String, field: &'static str },
    #[error("`{key}` names overlapping prices (valid from `{first}` and from `{second}`)")]
    Overlap {
        key: String,
        first: String,
        second: String,
    },
}

impl TokenUsage {
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.output)
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
            .saturating_add(self.reasoning)
    }
}

impl ModelPrice {
    /// Whether this price applies at `at_unix_nano`.
    pub fn valid_at(&self, at_unix_nano: u64) -> bool {
        at_unix_nano >= self.valid_from_unix_nano
            && self
                .valid_until_unix_nano
                .is_none_or(|until| at_unix_nano < until)
    }

    fn overlaps(&self, other: &ModelPrice) -> bool {
        let ends_before = |a: &ModelPrice, b: &ModelPrice| {
            a.valid_until_unix_nano
                .is_some_and(|until| until <= b.valid_from_unix_nano)
        };
        !ends_before(self, other) && !ends_before(other, self)
    }
}

/// What `tokens` cost at `price`, rounded to the nano-dollar (half up) per side.
pub fn cost(tokens: &TokenUsage, price: &ModelPrice) -> Cost {
    let term = |count: u64, per_million: i64| i128::from(count) * i128::from(per_million);
    let input = term(tokens.input, price.input)
        + term(tokens.cache_read, price.cache_read)
        + term(tokens.cache_write, price.cache_write);
    let output = term(tokens.output, price.output) + term(tokens.reasoning, price.reasoning);
    let input = per_million_tokens(input);
    let output = per_million_tokens(output);
    Cost {
        input,
        output,
        total: input.saturating_add(output),
    }
}

fn per_million_tokens(numerator: i128) -> i64 {
    let rounded = (numerator + TOKENS_PER_PRICE_UNIT / 2) / TOKENS_PER_PRICE_UNIT;
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// Parses a non-negative decimal USD amount (`"2.50"`, `"0.0375"`, `"3"`) into nano-dollars,
/// rounding half up past the ninth decimal. `None` for anything else (signs, exponents, junk).
pub fn usd_to_nanos(amount: &str) -> Option<i64> {
    let amount = amount.trim();
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut nanos: i64 = 0;
    for digit in whole.bytes() {
        nanos = nanos
            .checked_mul(10)?
            .checked_add(i64::from(digit - b'0'))?;
    }
    nanos = nanos.checked_mul(NANOS_PER_USD)?;
    let mut scale = NANOS_PER_USD / 10;
    let mut digits = fraction.bytes();
    for digit in digits.by_ref().take(9) {
        nanos = nanos.checked_add(i64::from(digit - b'0') * scale)?;
        scale /= 10;
    }
    if digits.next().is_some_and(|tenth| tenth >= b'5') {
        nanos = nanos.checked_add(1)?;
    }
    Some(nanos)
}

impl PriceTable {
    /// The table embedded in this build, parsed once.
    pub fn embedded() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            PriceTable::from_json(EMBEDDED_JSON)
                .expect("the embedded price table is valid (a unit test parses it)")
        })
    }

    /// Parses and validates a table (the embedded one or a project's overrides).
    pub fn from_json(json: &str) -> Result<PriceTable, PriceTableError> {
        let file: File = serde_json::from_str(json)?;
        let mut models = Vec::with_capacity(file.models.len());
        let mut keys: HashMap<String, Vec<usize>> = HashMap::new();
        let mut patterns = Vec::new();
        for entry in file.models {
            let index = models.len();
            let id = entry.id.trim().to_ascii_lowercase();
            for key in std::iter::once(id.clone()).chain(entry.aliases.iter().map(|a| lower(a))) {
                let slot = keys.entry(key).or_default();
                if !slot.contains(&index) {
                    slot.push(index);
                }
            }
            for pattern in &entry.patterns {
                let pattern = lower(pattern);
                if !patterns.iter().any(|(p, i)| *p == pattern && *i == id) {
                    patterns.push((pattern, id.clone()));
                }
            }
            models.push(entry.into_price(id)?);
        }
        check_overlaps(&models, &keys)?;
        // Most specific first; the sort is stable, so ties keep table order.
        patterns.sort_by_key(|(pattern, _)| std::cmp::Reverse(literal_len(pattern)));
        let rules = file.match_rules.unwrap_or_default();
        Ok(PriceTable {
            version: file.version,
            models,
            keys,
            patterns,
            strip_prefixes: rules.strip_prefixes.iter().map(|p| lower(p)).collect(),
            snapshot_suffixes: rules.snapshot_suffixes.iter().map(|s| lower(s)).collect(),
        })
    }

    /// The table's `version`, recorded in every priced span.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every entry, in table order.
    pub fn models(&self) -> &[ModelPrice] {
        &self.models
    }

    /// The price of `model` served by `provider` (may be empty) at `at_unix_nano`, by the rules
    /// in the module documentation. `None` when the model is unknown or has no price then.
    pub fn lookup(&self, model: &str, provider: &str, at_unix_nano: u64) -> Option<&ModelPrice> {
        let candidates = self.resolve(&lower(model))?;
        let provider = lower(provider);
        let valid: Vec<&ModelPrice> = candidates
            .iter()
            .filter_map(|&i| self.models.get(i))
            .filter(|price| price.valid_at(at_unix_nano))
            .collect();
        valid
            .iter()
            .find(|p| !provider.is_empty() && p.host.as_deref() == Some(provider.as_str()))
            .or_else(|| {
                valid
                    .iter()
                    .find(|p| !provider.is_empty() && p.provider == provider)
            })
            .or_else(|| valid.first())
            .copied()
    }

    fn resolve(&self, name: &str) -> Option<&[usize]> {
        if name.is_empty() {
            return None;
        }
        if let Some(found) = self.keys.get(name) {
            return Some(found);
        }
        let base = self.strip_prefixes(name);
        if let Some(found) = self.keys.get(base) {
            return Some(found);
        }
        let mut shorter = base;
        for _ in 0..MAX_SUFFIX_STRIPS {
            let Some(next) = self.strip_snapshot(shorter) else {
                break;
            };
            shorter = next;
            if let Some(found) = self.keys.get(shorter) {
                return Some(found);
            }
        }
        let (_, id) = self
            .patterns
            .iter()
            .find(|(pattern, _)| glob_match(pattern, base))?;
        self.keys.get(id).map(Vec::as_slice)
    }

    fn strip_prefixes<'n>(&self, name: &'n str) -> &'n str {
        let mut name = name.rsplit('/').next().unwrap_or(name);
        for prefix in &self.strip_prefixes {
            if let Some(rest) = name.strip_prefix(prefix.as_str())
                && !rest.is_empty()
            {
                name = rest;
            }
        }
        name
    }

    fn strip_snapshot<'n>(&self, name: &'n str) -> Option<&'n str> {
        self.snapshot_suffixes
            .iter()
            .find_map(|template| strip_template(name, template))
    }
}

fn lower(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// `name` without a suffix matching `template` (`#` = one ASCII digit), if it has one and
/// something is left.
fn strip_template<'n>(name: &'n str, template: &str) -> Option<&'n str> {
    let cut = name.len().checked_sub(template.len())?;
    if cut == 0 || !name.is_char_boundary(cut) {
        return None;
    }
    let (head, tail) = name.split_at(cut);
    let matches = tail.bytes().zip(template.bytes()).all(|(c, t)| match t {
        b'#' => c.is_ascii_digit(),
        _ => c == t,
    });
    matches.then_some(head)
}

fn literal_len(pattern: &str) -> usize {
    pattern.chars().filter(|&c| c != '*').count()
}

/// Glob match where `*` matches any run of characters (including none).
fn glob_match(pattern: &str, name: &str) -> bool {
    let pattern = pattern.as_bytes();
    let name = name.as_bytes();
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, n));
                p += 1;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match backtrack {
                Some((star, matched)) => {
                    p = star + 1;
                    n = matched + 1;
                    backtrack = Some((star, matched + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

fn check_overlaps(
    models: &[ModelPrice],
    keys: &HashMap<String, Vec<usize>>,
) -> Result<(), PriceTableError> {
    for (key, entries) in keys {
        for (n, &a) in entries.iter().enumerate() {
            for &b in &entries[n + 1..] {
                let (first, second) = (&models[a], &models[b]);
                if first.host == second.host && first.overlaps(second) {
                    return Err(PriceTableError::Overlap {
                        key: key.clone(),
                        first: first.valid_from.clone(),
                        second: second.valid_from.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

mod file;

#[cfg(test)]
mod tests;
