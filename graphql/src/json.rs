//! JSON text written straight into a buffer, as `serde_json` would serialize the same values:
//! big span pages are written from their plan without a value tree in between, and answers
//! carry such pages as `Value::Binary` (see `schema::span_page::PreSerialized`).

use async_graphql::{Name, Value};

/// `{"key":…,…}`, each value written by `write`.
pub fn write_object<'a, T: 'a>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'a Name, &'a T)>,
    mut write: impl FnMut(&mut Vec<u8>, &T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'{');
    for (n, (key, field)) in fields.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key.as_str())?;
        out.push(b':');
        write(out, field)?;
    }
    out.push(b'}');
    Ok(())
}

/// `value` as its `Serialize` implementation writes it, except that a `Value::Binary` is JSON
/// text written as it is: only a planned span page puts one there, for a request carrying
/// `PreSerialized`, which the HTTP handler alone adds.
pub fn write_value(out: &mut Vec<u8>, value: &Value) -> serde_json::Result<()> {
    match value {
        Value::Binary(json) => out.extend_from_slice(json),
        Value::List(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(fields) => write_object(out, fields, write_value)?,
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}
