//! Instants as the API writes them (RFC 3339 in UTC with up to nine fraction digits) to and
//! from Unix time, and the short forms the screens show. Pure: "now" and the browser's UTC
//! offset are arguments.

/// Unix nanoseconds of an RFC 3339 date-time (`2026-11-27T09:00:00.123456789Z`, or with a
/// `±HH:MM` offset); `None` when the text is not one.
pub fn parse_nanos(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    if !matches!(bytes[10], b'T' | b't' | b' ') || bytes[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction_nanos = 0_i64;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut scale = 100_000_000_i64;
        for digit in after_dot[..digits].bytes().take(9) {
            fraction_nanos += i64::from(digit - b'0') * scale;
            scale /= 10;
        }
        rest = &after_dot[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(fraction_nanos)
}

/// RFC 3339 text in UTC with milliseconds, as the API accepts it.
pub fn format_millis(ms: i64) -> String {
    let (date, (hour, minute, second)) = split(ms.div_euclid(1000));
    format!(
        "{}T{hour:02}:{minute:02}:{second:02}.{:03}Z",
        date_text(date),
        ms.rem_euclid(1000)
    )
}

/// `MM-DD HH:MM:SS` at the given offset from UTC (minutes east), for tables.
pub fn short(nanos: i64, offset_minutes: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000) + offset_minutes * 60;
    let ((_, month, day), (hour, minute, second)) = split(seconds);
    format!("{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

/// `HH:MM` (or `MM-DD` when `days` is set) at the given offset, for chart axes.
pub fn axis(nanos: i64, offset_minutes: i64, days: bool) -> String {
    let seconds = nanos.div_euclid(1_000_000_000) + offset_minutes * 60;
    let ((_, month, day), (hour, minute, _)) = split(seconds);
    if days {
        format!("{month:02}-{day:02}")
    } else {
        format!("{hour:02}:{minute:02}")
    }
}

/// `YYYY-MM-DD HH:MM:SS` at the given offset from UTC.
pub fn long(nanos: i64, offset_minutes: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000) + offset_minutes * 60;
    let (date, (hour, minute, second)) = split(seconds);
    format!("{} {hour:02}:{minute:02}:{second:02}", date_text(date))
}

fn date_text((year, month, day): (i64, i64, i64)) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// Civil date and time of day of Unix seconds.
fn split(seconds: i64) -> ((i64, i64, i64), (i64, i64, i64)) {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    (
        civil_from_days(days),
        (of_day / 3600, of_day % 3600 / 60, of_day % 60),
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn parses_what_the_api_writes() {
        assert_eq!(parse_nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_nanos("2026-11-27T09:00:00.123456789Z"),
            Some(1_795_770_000_123_456_789)
        );
        assert_eq!(
            parse_nanos("2026-11-27T10:00:00.5+01:00"),
            Some(1_795_770_000_500_000_000)
        );
        assert_eq!(
            parse_nanos("2024-02-29T12:00:00Z"),
            Some(1_709_208_000 * 1_000_000_000)
        );
        assert_eq!(parse_nanos("yesterday"), None);
        assert_eq!(parse_nanos("2026-13-01T00:00:00Z"), None);
    }

    #[test]
    fn formats_round_trip() {
        let ms = 1_795_770_000_123;
        assert_eq!(format_millis(ms), "2026-11-27T09:00:00.123Z");
        assert_eq!(parse_nanos(&format_millis(ms)), Some(ms * 1_000_000));
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn short_forms_apply_the_offset() {
        let nanos = 1_795_770_000_123_456_789;
        assert_eq!(short(nanos, 0), "11-27 09:00:00");
        assert_eq!(short(nanos, 60), "11-27 10:00:00");
        assert_eq!(long(nanos, -600), "2026-11-26 23:00:00");
        assert_eq!(axis(nanos, 0, false), "09:00");
        assert_eq!(axis(nanos, 0, true), "11-27");
    }
}
