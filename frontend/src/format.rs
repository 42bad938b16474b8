//! How numbers read on screen: latencies, token counts, dollars and rates. Pure. Costs arrive
//! as exact decimal text and are shown from that text, never through a float.

/// `850 ms`, `1.25 s`, `2m 05s`.
pub fn latency(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "–".into();
    }
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        let seconds = (ms / 1000.0).round() as i64;
        format!("{}m {:02}s", seconds / 60, seconds % 60)
    }
}

/// `950`, `12,345`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if n < 0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

/// A dollar amount from the API's decimal text, exact to the nano-dollar the API keeps
/// (`0.005750` → `$0.00575`); `–` when unknown.
pub fn dollars(decimal: Option<&str>) -> String {
    let Some(text) = decimal.map(str::trim).filter(|t| !t.is_empty()) else {
        return "–".into();
    };
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let fraction: String = fraction.chars().take(9).collect();
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}${whole}")
    } else {
        format!("{sign}${whole}.{fraction}")
    }
}

/// `1 error`, `1,024 spans`.
pub fn counted(n: i64, noun: &str) -> String {
    let suffix = if n == 1 { "" } else { "s" };
    format!("{} {noun}{suffix}", count(n))
}

/// `12.5%` of a 0..1 rate.
pub fn percent(rate: f64) -> String {
    if !rate.is_finite() {
        return "–".into();
    }
    let value = rate * 100.0;
    if value == value.trunc() {
        format!("{value:.0}%")
    } else {
        format!("{value:.1}%")
    }
}

/// Nano-dollars of the API's decimal text (at most nine decimals are kept), to add amounts
/// exactly.
pub fn nanos(decimal: &str) -> Option<i128> {
    let text = decimal.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return None;
    }
    let mut fraction: String = fraction.chars().take(9).collect();
    while fraction.len() < 9 {
        fraction.push('0');
    }
    let value = whole.parse::<i128>().ok()? * 1_000_000_000 + fraction.parse::<i128>().ok()?;
    Some(if negative { -value } else { value })
}

/// Decimal text of nano-dollars, as the API writes it (`5750000` → `0.00575`).
pub fn decimal(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    let whole = magnitude / 1_000_000_000;
    let fraction = format!("{:09}", magnitude % 1_000_000_000);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// The exact sum of decimal amounts (unparsable ones count as zero).
pub fn sum<'a>(amounts: impl IntoIterator<Item = &'a str>) -> String {
    decimal(amounts.into_iter().filter_map(nanos).sum())
}

/// The dollar value of decimal text as a float, for chart heights only.
pub fn dollars_value(decimal: &str) -> f64 {
    decimal.trim().parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn numbers_read_well() {
        assert_eq!(latency(850.4), "850 ms");
        assert_eq!(latency(1250.0), "1.25 s");
        assert_eq!(latency(125_000.0), "2m 05s");
        assert_eq!(latency(0.5), "0.50 ms");
        assert_eq!(count(12_345), "12,345");
        assert_eq!(count(950), "950");
        assert_eq!(count(-1_000_000), "-1,000,000");
        assert_eq!(dollars(Some("0.0055")), "$0.0055");
        assert_eq!(dollars(Some("0.000000001")), "$0.000000001");
        assert_eq!(dollars(Some("0.0033204")), "$0.0033204");
        assert_eq!(dollars(Some("2")), "$2");
        assert_eq!(dollars(Some("-1.50")), "-$1.5");
        assert_eq!(dollars(None), "–");
        assert_eq!(counted(1, "error"), "1 error");
        assert_eq!(counted(1024, "span"), "1,024 spans");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(1.0), "100%");
    }

    #[test]
    fn money_adds_exactly() {
        assert_eq!(nanos("0.00575"), Some(5_750_000));
        assert_eq!(nanos("-2"), Some(-2_000_000_000));
        assert_eq!(nanos("abc"), None);
        assert_eq!(decimal(5_750_000), "0.00575");
        assert_eq!(decimal(2_000_000_000), "2");
        assert_eq!(decimal(-1), "-0.000000001");
        assert_eq!(sum(["0.1", "0.2", "x"]), "0.3");
    }
}
