//! TOML text to a [`Node`] tree, through `toml`'s span-keeping parser.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Key, MAX_DEPTH, Node, SyntaxError, Value};

pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let table = DeTable::parse(text).map_err(|e| {
        let mut message = e.message().trim().to_owned();
        // toml says only "duplicate key"; name it, as the other formats do.
        if let Some(key) = e
            .span()
            .and_then(|span| text.get(span))
            .filter(|_| message == "duplicate key")
        {
            message = format!("duplicate key `{}`", key.trim().trim_matches('"'));
        }
        match e.span() {
            Some(span) => SyntaxError::at(message, span),
            None => SyntaxError::whole(message),
        }
    })?;
    let span = table.span();
    Ok(Node {
        span: span.clone(),
        value: table_value(table.into_inner(), 0, span)?,
    })
}

fn table_value(
    table: DeTable<'_>,
    depth: usize,
    span: std::ops::Range<usize>,
) -> Result<Value, SyntaxError> {
    if depth >= MAX_DEPTH {
        return Err(SyntaxError::at(
            format!("nesting deeper than {MAX_DEPTH} levels"),
            span,
        ));
    }
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table {
        let key = Key {
            span: key.span(),
            name: key.into_inner().into_owned(),
        };
        entries.push((key, node(value, depth + 1)?));
    }
    Ok(Value::Map(entries))
}

fn node(value: Spanned<DeValue<'_>>, depth: usize) -> Result<Node, SyntaxError> {
    let span = value.span();
    let value = match value.into_inner() {
        DeValue::String(s) => Value::Str(s.into_owned()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let digits = digits.trim_start_matches('+');
            let parsed = match i.radix() {
                10 => digits.parse::<i64>().ok(),
                radix => i64::from_str_radix(&digits[2.min(digits.len())..], radix).ok(),
            };
            Value::Int(parsed.ok_or_else(|| SyntaxError::integer_out_of_range(span.clone()))?)
        }
        DeValue::Float(f) => {
            let text = f.as_str().replace('_', "");
            let parsed = match text.trim_start_matches(['+', '-']) {
                "inf" => Some(f64::INFINITY),
                "nan" => Some(f64::NAN),
                _ => text.parse::<f64>().ok(),
            };
            let parsed = parsed.map(|x| {
                if text.starts_with('-') && !x.is_sign_negative() {
                    -x
                } else {
                    x
                }
            });
            Value::Float(parsed.ok_or_else(|| SyntaxError::at("invalid float", span.clone()))?)
        }
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(SyntaxError::at(
                    format!("nesting deeper than {MAX_DEPTH} levels"),
                    span,
                ));
            }
            Value::Seq(super::seq(items, |item| node(item, depth + 1))?)
        }
        DeValue::Table(table) => table_value(table, depth, span.clone())?,
    };
    Ok(Node { span, value })
}
