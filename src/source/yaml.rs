//! YAML text to a [`Node`] tree, built from `saphyr-parser` events.
//!
//! Building the tree from events (instead of a ready-made loader) is what lets this module
//! bound alias expansion ("billion laughs"), bound depth, reject duplicate keys and apply
//! `<<` merge keys. Scalars follow the YAML 1.2 core schema, as saphyr does.

use std::collections::HashMap;
use std::ops::Range;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use super::{CharIndex, Key, MAX_DEPTH, MapBuilder, Node, SyntaxError, Value, overflows};

/// How many values aliases may add in total before the file is refused.
const MAX_ALIAS_NODES: usize = 1_000_000;

enum Frame {
    Seq {
        start: usize,
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        start: usize,
        anchor: usize,
        entries: MapBuilder,
        key: Option<Key>,
        /// The key is YAML's merge key: a plain `<<` (a quoted `"<<"` is a key like any other).
        merging: bool,
        merges: Vec<Node>,
    },
}

struct Builder<'a> {
    chars: CharIndex<'a>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    alias_nodes: usize,
    root: Option<Node>,
    documents: usize,
}

pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder {
        chars: CharIndex::new(text),
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
        documents: 0,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let at = b.chars.byte(e.marker().index());
            let span = at..(at + 1).min(text.len()).max(at);
            if e.info().contains("recursion limit") {
                return SyntaxError::at(format!("nesting deeper than {MAX_DEPTH} levels"), span);
            }
            SyntaxError::at(e.info().to_owned(), span)
        })?;
        b.event(event, span)?;
    }
    Ok(b.root.unwrap_or(Node {
        span: 0..0,
        value: Value::Null,
    }))
}

impl Builder<'_> {
    fn span(&self, span: Span) -> Range<usize> {
        self.chars.byte(span.start.index())..self.chars.byte(span.end.index())
    }

    fn event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        let range = self.span(span);
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(SyntaxError::at(
                        "a pipeline file holds one YAML document; found a second",
                        range,
                    )
                    .help("remove the `---` line, or split the file in two"));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                if let Some(Frame::Map {
                    key: key @ None,
                    merging,
                    ..
                }) = self.stack.last_mut()
                {
                    *merging = style == ScalarStyle::Plain && text == "<<";
                    *key = Some(Key {
                        name: text.into_owned(),
                        span: range,
                    });
                    return Ok(());
                }
                let plain = style == ScalarStyle::Plain;
                let value = match tag.as_ref().map(|t| t.suffix.as_str()) {
                    Some("str") => Value::Str(text.into_owned()),
                    None if !plain => Value::Str(text.into_owned()),
                    _ => resolve(text.into_owned())
                        .ok_or_else(|| SyntaxError::integer_out_of_range(range.clone()))?,
                };
                self.finish(Node { span: range, value }, anchor)?;
            }
            Event::Alias(id) => {
                let Some((node, count)) = self.anchors.get(&id) else {
                    return Err(SyntaxError::at("unknown alias", range));
                };
                if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
                    return Err(SyntaxError::at(
                        "an alias cannot be used as a map key",
                        range,
                    ));
                }
                self.alias_nodes += count;
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(SyntaxError::at(
                        format!("YAML aliases expand to more than {MAX_ALIAS_NODES} values"),
                        range,
                    )
                    .help("this looks like an alias bomb (\"billion laughs\"); use fewer nested aliases"));
                }
                let mut node = node.clone();
                node.span = range;
                self.finish(node, 0)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(&range)?;
                self.stack.push(Frame::Seq {
                    start: range.start,
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, _) => {
                self.open(&range)?;
                self.stack.push(Frame::Map {
                    start: range.start,
                    anchor,
                    entries: MapBuilder::default(),
                    key: None,
                    merging: false,
                    merges: Vec::new(),
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq {
                        start,
                        anchor,
                        mut items,
                    }) => {
                        items.shrink_to_fit();
                        (
                            Node {
                                span: start..range.end.max(start),
                                value: Value::Seq(items),
                            },
                            anchor,
                        )
                    }
                    Some(Frame::Map {
                        start,
                        anchor,
                        mut entries,
                        merges,
                        ..
                    }) => {
                        for merge in merges {
                            apply_merge(&mut entries, merge)?;
                        }
                        (
                            Node {
                                span: start..range.end.max(start),
                                value: Value::Map(entries.finish()),
                            },
                            anchor,
                        )
                    }
                    None => return Ok(()),
                };
                self.finish(node, anchor)?;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn open(&self, range: &Range<usize>) -> Result<(), SyntaxError> {
        if matches!(self.stack.last(), Some(Frame::Map { key: None, .. })) {
            return Err(SyntaxError::at(
                "map keys must be plain strings",
                range.clone(),
            ));
        }
        if self.stack.len() >= super::MAX_DEPTH {
            return Err(SyntaxError::at(
                format!("nesting deeper than {MAX_DEPTH} levels"),
                range.clone(),
            )
            .help("a pipeline never needs this much nesting; is this the right file?"));
        }
        Ok(())
    }

    /// Places a finished value in its parent (or as the document root).
    fn finish(&mut self, node: Node, anchor: usize) -> Result<(), SyntaxError> {
        if anchor != 0 {
            let count = count_nodes(&node);
            self.anchors.insert(anchor, (node.clone(), count));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map {
                entries,
                key,
                merging,
                merges,
                ..
            }) => {
                let key = key.take().expect("a map value always follows its key");
                if std::mem::take(merging) {
                    // Like any key, once per map; several maps are merged as a list.
                    if !merges.is_empty() {
                        return Err(SyntaxError::at(
                            "`<<` appears twice in this map: merge several maps as a list, \
                             `<<: [*first, *second]`",
                            key.span,
                        ));
                    }
                    merges.push(node);
                } else {
                    entries.insert(key, node)?;
                }
            }
        }
        Ok(())
    }
}

/// `<<: *base` (or a list of them) adds the entries the map does not set itself.
fn apply_merge(entries: &mut MapBuilder, merge: Node) -> Result<(), SyntaxError> {
    let sources = match merge.value {
        Value::Map(_) => vec![merge],
        Value::Seq(items) => items,
        _ => {
            return Err(SyntaxError::at(
                "`<<` merges a map or a list of maps",
                merge.span,
            ));
        }
    };
    for source in sources {
        let Value::Map(items) = source.value else {
            return Err(SyntaxError::at(
                "`<<` merges a map or a list of maps",
                source.span,
            ));
        };
        for (key, value) in items {
            if !entries.contains(&key.name) {
                entries.insert(key, value)?;
            }
        }
    }
    Ok(())
}

fn count_nodes(node: &Node) -> usize {
    let mut count = 0;
    let mut stack = vec![node];
    while let Some(node) = stack.pop() {
        count += 1;
        match &node.value {
            Value::Seq(items) => stack.extend(items),
            Value::Map(entries) => stack.extend(entries.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    count
}

/// The YAML 1.2 core schema for plain scalars; `None` for an integer that does not fit in
/// exe's integers (as a float it would not be the number written).
fn resolve(text: String) -> Option<Value> {
    let value = match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Value::Float(f64::NAN),
        _ => return number(text),
    };
    Some(value)
}

/// An integer, a float, or else the text itself.
fn number(text: String) -> Option<Value> {
    let unsigned = text.trim_start_matches(['-', '+']);
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Some(Value::Int(i));
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Some(Value::Int(i));
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        match text.parse::<i64>() {
            Ok(i) => return Some(Value::Int(i)),
            Err(e) if overflows(&e) => return None,
            Err(_) => {}
        }
    }
    let float_like = unsigned.bytes().any(|b| b.is_ascii_digit())
        && unsigned
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if float_like && let Ok(f) = text.parse::<f64>() {
        return Some(Value::Float(f));
    }
    Some(Value::Str(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_scalars() {
        assert_eq!(resolve("~".into()), Some(Value::Null));
        assert_eq!(resolve("True".into()), Some(Value::Bool(true)));
        assert_eq!(resolve("yes".into()), Some(Value::Str("yes".into())));
        assert_eq!(resolve("-12".into()), Some(Value::Int(-12)));
        assert_eq!(resolve("0x1f".into()), Some(Value::Int(31)));
        assert_eq!(resolve("1.5e3".into()), Some(Value::Float(1500.0)));
        assert_eq!(resolve("1h30m".into()), Some(Value::Str("1h30m".into())));
        assert_eq!(resolve("1.2.3".into()), Some(Value::Str("1.2.3".into())));
        assert_eq!(
            resolve("-9223372036854775808".into()),
            Some(Value::Int(i64::MIN))
        );
        assert_eq!(resolve("18446744073709551615".into()), None);
        assert_eq!(resolve("+-5".into()), Some(Value::Str("+-5".into())));
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let tree = parse("a: '1'\nb: \"true\"\nc: !!str 5\n").unwrap();
        for key in ["a", "b", "c"] {
            assert!(
                matches!(tree.get(key).unwrap().value, Value::Str(_)),
                "{key}"
            );
        }
    }

    #[test]
    fn only_a_plain_double_angle_is_the_merge_key() {
        let tree = parse("base: &b {x: 1}\nmerged:\n  <<: *b\nquoted:\n  \"<<\": *b\n").unwrap();
        let merged = tree.get("merged").unwrap();
        assert!(merged.get("x").is_some() && merged.get("<<").is_none());
        let quoted = tree.get("quoted").unwrap();
        assert!(quoted.get("x").is_none());
        assert!(matches!(quoted.get("<<").unwrap().value, Value::Map(_)));
    }

    #[test]
    fn two_documents_are_refused() {
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.message.contains("second"), "{err:?}");
    }
}
