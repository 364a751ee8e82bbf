//! JSON text to a [`Node`] tree, through `jsonc-parser`'s span-keeping AST.
//!
//! Strict JSON: no comments, trailing commas or unquoted keys, because other JSON tools
//! reading the same file would reject them. Legacy files mark comments with `_` keys.

use jsonc_parser::ast;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};

use super::{Key, MapBuilder, Node, SyntaxError, Value, overflows};

pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    // A byte-order mark (as Windows editors write) is read as the whitespace it stands for:
    // three spaces keep every byte offset, so diagnostics point at the same places.
    let unmarked;
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            unmarked = format!("   {rest}");
            unmarked.as_str()
        }
        None => text,
    };
    let options = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        ..ParseOptions::default()
    };
    let parsed = parse_to_ast(text, &CollectOptions::default(), &options).map_err(|e| {
        let range = e.range();
        SyntaxError::at(
            e.kind().to_string(),
            range.start..range.end.max(range.start + 1).min(text.len().max(1)),
        )
    })?;
    match parsed.value {
        Some(value) => node(value),
        None => Err(SyntaxError::whole("the file is empty")
            .help("a JSON pipeline is an object: `{\"jobs\": {...}}`")),
    }
}

fn node(value: ast::Value<'_>) -> Result<Node, SyntaxError> {
    Ok(match value {
        ast::Value::StringLit(s) => leaf(s.range, Value::Str(s.value.into_owned())),
        ast::Value::NumberLit(n) => {
            let span = n.range.start..n.range.end;
            let parsed = match n.value.parse::<i64>() {
                Ok(i) => Value::Int(i),
                // A number with a fraction or an exponent is a float, however large.
                Err(e) if overflows(&e) && !n.value.contains(['.', 'e', 'E']) => {
                    return Err(SyntaxError::integer_out_of_range(span));
                }
                Err(_) => Value::Float(
                    (n.value.parse::<f64>())
                        .map_err(|_| SyntaxError::at("invalid number", span))?,
                ),
            };
            leaf(n.range, parsed)
        }
        ast::Value::BooleanLit(b) => leaf(b.range, Value::Bool(b.value)),
        ast::Value::NullKeyword(n) => leaf(n.range, Value::Null),
        ast::Value::Array(a) => {
            let items = super::seq(a.elements, node)?;
            leaf(a.range, Value::Seq(items))
        }
        ast::Value::Object(o) => {
            let mut entries = MapBuilder::with_capacity(o.properties.len());
            for prop in o.properties {
                let range = match &prop.name {
                    ast::ObjectPropName::String(s) => s.range,
                    ast::ObjectPropName::Word(w) => w.range,
                };
                let key = Key {
                    name: prop.name.into_string(),
                    span: range.start..range.end,
                };
                entries.insert(key, node(prop.value)?)?;
            }
            leaf(o.range, Value::Map(entries.finish()))
        }
    })
}

fn leaf(range: jsonc_parser::common::Range, value: Value) -> Node {
    Node {
        span: range.start..range.end,
        value,
    }
}
