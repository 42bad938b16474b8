//! Splitting a migration file into statements: ClickHouse's HTTP interface runs one per request.

/// A file that cannot be split safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("unterminated {what} starting at byte {at}")]
    Unterminated { what: &'static str, at: usize },
}

/// Splits SQL text on `;` outside quotes and comments; drops statements that are only comments.
pub fn split_statements(sql: &str) -> Result<Vec<&str>, SplitError> {
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => i = skip_quoted(bytes, i, quote)?,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let at = i;
                i = find(bytes, i + 2, b"*/").ok_or(SplitError::Unterminated {
                    what: "block comment",
                    at,
                })? + 2;
            }
            b';' => {
                push_if_code(&mut statements, &sql[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push_if_code(&mut statements, &sql[start..]);
    Ok(statements)
}

fn push_if_code<'a>(statements: &mut Vec<&'a str>, text: &'a str) {
    let trimmed = text.trim();
    if has_code(trimmed) {
        statements.push(trimmed);
    }
}

/// True when the text holds something besides whitespace and comments.
fn has_code(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = skip_line(bytes, i),
            b'#' => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => match find(bytes, i + 2, b"*/") {
                Some(end) => i = end + 2,
                None => return false,
            },
            _ => return true,
        }
    }
    false
}

fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> Result<usize, SplitError> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Ok(i + 1);
            }
        } else {
            i += 1;
        }
    }
    Err(SplitError::Unterminated {
        what: match quote {
            b'\'' => "string literal",
            _ => "quoted identifier",
        },
        at: start,
    })
}

fn skip_line(bytes: &[u8], start: usize) -> usize {
    find(bytes, start, b"\n").map_or(bytes.len(), |end| end + 1)
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "-- header; not a statement\nCREATE TABLE a (s String DEFAULT ';') ENGINE = Log;\n\
                   /* a; comment */ SELECT `we;ird`, \"x;y\", 'it''s;' FROM a; -- trailing\n";
        assert_eq!(
            split_statements(sql).expect("splits"),
            vec![
                "-- header; not a statement\nCREATE TABLE a (s String DEFAULT ';') ENGINE = Log",
                "/* a; comment */ SELECT `we;ird`, \"x;y\", 'it''s;' FROM a",
            ]
        );
    }

    #[test]
    fn backslash_escapes_in_strings() {
        let sql = r"SELECT 'a\';b'; SELECT 2";
        assert_eq!(
            split_statements(sql).expect("splits"),
            vec![r"SELECT 'a\';b'", "SELECT 2"]
        );
    }

    #[test]
    fn comment_only_text_has_no_statements() {
        assert!(
            split_statements("-- nothing\n/* here */\n;\n")
                .expect("splits")
                .is_empty()
        );
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        assert_eq!(
            split_statements("SELECT 'oops; SELECT 1"),
            Err(SplitError::Unterminated {
                what: "string literal",
                at: 7
            })
        );
        assert!(split_statements("SELECT 1 /* open").is_err());
    }
}
