//! Writing a spec as TOML, YAML or JSON text (for `exe migrate`).
//!
//! TOML and JSON come from their serde crates. YAML is written here, from the JSON value
//! tree: every string is double-quoted (JSON escapes are valid YAML), so no value can be
//! misread as a number, boolean or null, and no YAML serializer crate is needed.

use std::fmt::Write as _;

use serde_json::Value;

use crate::error::Error;
use crate::load::dotted;
use crate::source::Format;
use crate::spec::PipelineSpec;

/// The spec as text in `format`, starting with `header` as a comment where the format has them.
pub fn emit(spec: &PipelineSpec, format: Format, header: &str) -> Result<String, Error> {
    let failed = |message: String, help: Option<String>| Error::Usage {
        message: format!("cannot write this pipeline as {format}: {message}"),
        help,
    };
    let value = serde_json::to_value(spec).map_err(|e| failed(e.to_string(), None))?;
    match format {
        Format::Toml => {
            let mut nulls = Vec::new();
            find_nulls(&value, &mut Vec::new(), &mut nulls);
            if !nulls.is_empty() {
                let (is, s) = if nulls.len() == 1 {
                    ("is", "")
                } else {
                    ("are", "s")
                };
                return Err(failed(
                    format!("{} {is} null, and TOML has no null", nulls.join(", ")),
                    Some(format!(
                        "remove the key{s}, or write YAML or JSON, which have null (`--to yaml`, \
                         or `-o` a `.yaml` file)"
                    )),
                ));
            }
            let body = toml::to_string_pretty(spec).map_err(|e| failed(e.to_string(), None))?;
            Ok(format!("{}\n{body}", comment(header)))
        }
        Format::Json => {
            let mut text =
                serde_json::to_string_pretty(&value).map_err(|e| failed(e.to_string(), None))?;
            text.push('\n');
            Ok(text)
        }
        Format::Yaml => {
            let mut out = comment(header);
            out.push('\n');
            yaml(&value, 0, &mut out);
            Ok(out)
        }
    }
}

/// Adds to `found` the key path of each null in `value` below `path`, quoted for messages.
fn find_nulls(value: &Value, path: &mut Vec<String>, found: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Null => {
            found.push(format!("`{}`", dotted(path)));
            return;
        }
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => (items.iter().enumerate())
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        path.push(key);
        find_nulls(child, path, found);
        path.pop();
    }
}

fn comment(header: &str) -> String {
    header.lines().fold(String::new(), |mut out, l| {
        let _ = writeln!(out, "# {l}");
        out
    })
}

fn yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let _ = write!(out, "{pad}{}:", yaml_key(key));
                block_or_inline(v, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                let _ = write!(out, "{pad}-");
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // The first entry shares the dash's line; the rest align under it.
                        let mut nested = String::new();
                        yaml(item, indent + 2, &mut nested);
                        out.push(' ');
                        out.push_str(&nested[indent + 2..]);
                    }
                    _ => block_or_inline(item, indent, out),
                }
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", inline(scalar));
        }
    }
}

fn block_or_inline(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml(v, indent + 2, out);
        }
        other => {
            let _ = writeln!(out, " {}", inline(other));
        }
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        other => other.to_string(),
    }
}

fn yaml_key(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && !matches!(
            key.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{self, Value as Node};

    fn strip(n: &source::Node) -> String {
        match &n.value {
            Node::Map(e) => format!(
                "{{{}}}",
                e.iter()
                    .map(|(k, v)| format!("{}:{}", k.name, strip(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Node::Seq(i) => format!("[{}]", i.iter().map(strip).collect::<Vec<_>>().join(",")),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn yaml_output_parses_back_to_the_same_values() {
        let json = r#"{"name": "n", "jobs": {"a": {"command": "echo \"hi\": #x", "needs": ["b"], "env": {"X": "1"},
            "pre_checks": [{"check": "file_exists", "path": "p"}, {"check": "command", "run": "true"}]},
            "b": {"command": "true", "priority": 3, "outputs": []}}, "vars": {"on": "yes", "1x": null}}"#;
        let value: Value = serde_json::from_str(json).unwrap();
        let mut out = String::new();
        yaml(&value, 0, &mut out);
        let back = source::parse(&out, Format::Yaml).unwrap();
        let json_tree = source::parse(json, Format::Json).unwrap();
        assert_eq!(strip(&back), strip(&json_tree), "{out}");
    }
}
