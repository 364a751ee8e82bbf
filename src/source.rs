//! Reading pipeline files into a [`Node`] tree that keeps every value's byte span.
//!
//! Each format's parser (`source/toml.rs`, `source/yaml.rs`, `source/json.rs`) produces the
//! same tree, so everything downstream (layering, diagnostics, `--explain`) is format-blind.
//! Invariants kept here, for every input, however hostile:
//! - reading never panics and never hangs: size, nesting depth and YAML alias expansion are
//!   bounded before the work is done;
//! - a map never holds the same key twice (duplicates are a [`SyntaxError`]);
//! - map entries keep file order, which is the order jobs run in when nothing else decides.

mod json;
mod toml;
mod yaml;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Files larger than this are refused before parsing. A 100,000-job pipeline is ~10 MiB.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;
/// Deeper nesting than this is refused: no pipeline needs it, and parsers recurse.
pub const MAX_DEPTH: usize = 64;

/// The formats a pipeline file can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml` or `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format a path's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The canonical file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Toml => "toml",
            Format::Yaml => "yaml",
            Format::Json => "json",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        })
    }
}

/// One file's text, kept for the whole run so diagnostics can point into it.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user should read it (relative when they gave it relative).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    /// How the text is parsed.
    pub format: Format,
}

/// A parsed value and the bytes of the file it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Byte range of the value in its file.
    pub span: Range<usize>,
    /// The value.
    pub value: Value,
}

/// A map key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Byte range of the key in its file.
    pub span: Range<usize>,
}

/// The value kinds every format shares.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// YAML `~`/`null`, JSON `null` (TOML has none).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in i64.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string (TOML dates and times are kept as their text).
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A map in file order, keys unique.
    Map(Vec<(Key, Node)>),
}

impl Node {
    /// The entry for `key` if this is a map that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key entry (with its span) for `key` if this is a map that has it.
    pub fn get_key(&self, key: &str) -> Option<&Key> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(k, _)| k),
            _ => None,
        }
    }

    /// Follows a path of map keys and list indexes (as decimal strings) from this node.
    pub fn find<S: AsRef<str>>(&self, path: &[S]) -> Option<&Node> {
        let mut node = self;
        for part in path {
            let part = part.as_ref();
            node = match &node.value {
                Value::Map(_) => node.get(part)?,
                Value::Seq(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// A short name of the value's kind, for messages ("a string", "a map").
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

/// Why a file could not be read or parsed. Carries a span when the text has one.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// What is wrong, in the user's terms.
    pub message: String,
    /// Where, if the problem is at a place in the text.
    pub span: Option<Range<usize>>,
    /// A second place, e.g. the first occurrence of a duplicated key.
    pub related: Option<(String, Range<usize>)>,
    /// How to fix it, when we can say.
    pub help: Option<String>,
}

impl SyntaxError {
    fn at(message: impl Into<String>, span: Range<usize>) -> Self {
        SyntaxError {
            message: message.into(),
            span: Some(span),
            related: None,
            help: None,
        }
    }

    fn whole(message: impl Into<String>) -> Self {
        SyntaxError {
            message: message.into(),
            span: None,
            related: None,
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// An integer literal beyond exe's integers (signed 64-bit). Every format refuses it: read
    /// as a float, its value would silently change.
    fn integer_out_of_range(span: Range<usize>) -> Self {
        SyntaxError::at(
            "integer out of range: exe's integers are 64-bit, from -9223372036854775808 to 9223372036854775807",
            span,
        )
        .help("quote it to keep it exactly, as text")
    }

    fn duplicate_key(name: &str, first: Range<usize>, again: Range<usize>) -> Self {
        SyntaxError {
            message: format!("duplicate key `{name}`"),
            span: Some(again),
            related: Some(("first defined here".to_owned(), first)),
            help: Some(
                "each key may appear once in a map; remove or rename one of them".to_owned(),
            ),
        }
    }
}

/// Whether an integer literal failed to parse only because it does not fit in an i64.
fn overflows(error: &std::num::ParseIntError) -> bool {
    matches!(
        error.kind(),
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
    )
}

/// Why a file could not be read at all.
#[derive(Debug)]
pub enum ReadError {
    /// The operating system refused (missing, unreadable, a directory, ...).
    Io(std::io::Error),
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge(u64),
    /// The file holds NUL bytes: it is not text.
    Binary,
    /// The file is not UTF-8; the offset of the first bad byte.
    NotUtf8(usize),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            #[allow(clippy::cast_precision_loss)]
            ReadError::TooLarge(n) => write!(
                f,
                "the file is {:.1} MiB; pipeline files may be at most {} MiB",
                *n as f64 / 1_048_576.0,
                MAX_FILE_BYTES / 1_048_576
            ),
            ReadError::Binary => f.write_str("the file contains NUL bytes: it is not a text file"),
            ReadError::NotUtf8(at) => write!(
                f,
                "the file is not valid UTF-8 (first bad byte at offset {at})"
            ),
        }
    }
}

/// Reads a file's text, refusing what no pipeline can be before spending memory on it.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if meta.is_dir() {
        return Err(ReadError::Io(std::io::Error::other("it is a directory")));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // `take` bounds special files (pipes, /dev/zero) whose metadata says nothing.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    text_from_bytes(bytes)
}

/// Checks bytes read from a file or stdin and turns them into text.
pub fn text_from_bytes(bytes: Vec<u8>) -> Result<String, ReadError> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ReadError::TooLarge(bytes.len() as u64));
    }
    if bytes.contains(&0) {
        return Err(ReadError::Binary);
    }
    String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))
}

/// Parses text in the given format into a tree. An empty document is `Null`.
pub fn parse(text: &str, format: Format) -> Result<Node, SyntaxError> {
    if format != Format::Yaml {
        check_depth(text)?;
    }
    match format {
        Format::Toml => toml::parse(text),
        Format::Yaml => yaml::parse(text),
        Format::Json => json::parse(text),
    }
}

/// Refuses bracket nesting deeper than [`MAX_DEPTH`] before a recursive parser sees it.
///
/// Brackets inside strings and `#` comments do not count. The scan is approximate for
/// exotic TOML strings, which can only make it count less, never panic.
fn check_depth(text: &str) -> Result<(), SyntaxError> {
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    let mut comment = false;
    for (at, b) in text.bytes().enumerate() {
        if comment {
            comment = b != b'\n';
            continue;
        }
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if b == b'\\' && q == b'"' {
                escaped = true;
            } else if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'"' | b'\'' => quote = Some(b),
            b'#' => comment = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(SyntaxError::at(
                        format!("nesting deeper than {MAX_DEPTH} levels"),
                        at..at + 1,
                    )
                    .help("a pipeline never needs this much nesting; is this the right file?"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Collects a map's entries in file order and refuses a key given twice.
///
/// Lookups use a hash index once a map grows past a few keys, so a 100,000-job map stays linear.
#[derive(Default)]
pub(crate) struct MapBuilder {
    entries: Vec<(Key, Node)>,
    index: std::collections::HashMap<String, usize>,
}

impl MapBuilder {
    const INDEX_FROM: usize = 16;

    pub(crate) fn with_capacity(n: usize) -> Self {
        MapBuilder {
            entries: Vec::with_capacity(n),
            index: std::collections::HashMap::new(),
        }
    }

    fn position(&self, name: &str) -> Option<usize> {
        if self.entries.len() > Self::INDEX_FROM {
            self.index.get(name).copied()
        } else {
            self.entries.iter().position(|(k, _)| k.name == name)
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    pub(crate) fn insert(&mut self, key: Key, node: Node) -> Result<(), SyntaxError> {
        if let Some(at) = self.position(&key.name) {
            return Err(SyntaxError::duplicate_key(
                &key.name,
                self.entries[at].0.span.clone(),
                key.span,
            ));
        }
        if self.entries.len() == Self::INDEX_FROM {
            self.index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.name.clone(), i))
                .collect();
        }
        if self.entries.len() >= Self::INDEX_FROM {
            self.index.insert(key.name.clone(), self.entries.len());
        }
        self.entries.push((key, node));
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Vec<(Key, Node)> {
        // Trees are kept for the whole run; growth slack in 100,000 small maps adds up.
        self.entries.shrink_to_fit();
        self.entries
    }
}

/// A list's items as nodes, in a list of exactly their number.
///
/// (`into_iter().map(..).collect()` would reuse the parser's buffer, sized for its larger
/// items and kept for the whole run.)
pub(crate) fn seq<I: IntoIterator<IntoIter: ExactSizeIterator>>(
    items: I,
    mut node: impl FnMut(I::Item) -> Result<Node, SyntaxError>,
) -> Result<Vec<Node>, SyntaxError> {
    let items = items.into_iter();
    let mut nodes = Vec::with_capacity(items.len());
    for item in items {
        nodes.push(node(item)?);
    }
    Ok(nodes)
}

/// Converts a character index (saphyr counts characters) into a byte offset.
pub(crate) struct CharIndex<'a> {
    text: &'a str,
    /// Byte offset of every char, built only for non-ASCII text.
    offsets: Option<Vec<usize>>,
}

impl<'a> CharIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let offsets = (!text.is_ascii()).then(|| text.char_indices().map(|(i, _)| i).collect());
        CharIndex { text, offsets }
    }

    pub(crate) fn byte(&self, char_index: usize) -> usize {
        match &self.offsets {
            None => char_index.min(self.text.len()),
            Some(offsets) => offsets.get(char_index).copied().unwrap_or(self.text.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(node: &Node) -> Vec<&str> {
        match &node.value {
            Value::Map(entries) => entries.iter().map(|(k, _)| k.name.as_str()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn all_formats_give_the_same_tree_shape() {
        let toml = parse("b = 1\na = [true, \"x\"]\n[c]\nd = 1.5\n", Format::Toml).unwrap();
        let yaml = parse("b: 1\na: [true, x]\nc:\n  d: 1.5\n", Format::Yaml).unwrap();
        let json = parse(
            r#"{"b": 1, "a": [true, "x"], "c": {"d": 1.5}}"#,
            Format::Json,
        )
        .unwrap();
        for tree in [&toml, &yaml, &json] {
            assert_eq!(keys(tree), ["b", "a", "c"]);
            assert_eq!(tree.get("b").unwrap().value, Value::Int(1));
            assert_eq!(
                tree.find(&["a", "1"]).unwrap().value,
                Value::Str("x".into())
            );
            assert_eq!(tree.find(&["c", "d"]).unwrap().value, Value::Float(1.5));
        }
    }

    #[test]
    fn spans_point_at_values() {
        let text = "name = \"nightly\"\n[jobs.a]\ntimeout = \"5x\"\n";
        let tree = parse(text, Format::Toml).unwrap();
        let span = tree.find(&["jobs", "a", "timeout"]).unwrap().span.clone();
        assert_eq!(&text[span], "\"5x\"");
        let text = "jobs:\n  é:\n    timeout: 5x\n";
        let tree = parse(text, Format::Yaml).unwrap();
        let span = tree.find(&["jobs", "é", "timeout"]).unwrap().span.clone();
        assert_eq!(&text[span], "5x");
        let text = "{\"jobs\": {\"a\": {\"timeout\": \"5x\"}}}";
        let tree = parse(text, Format::Json).unwrap();
        let span = tree.find(&["jobs", "a", "timeout"]).unwrap().span.clone();
        assert_eq!(&text[span], "\"5x\"");
    }

    #[test]
    fn a_byte_order_mark_is_read_in_every_format_with_spans_unmoved() {
        for (text, format) in [
            ("\u{feff}timeout = \"5x\"\n", Format::Toml),
            ("\u{feff}timeout: 5x\n", Format::Yaml),
            ("\u{feff}{\"timeout\": \"5x\"}", Format::Json),
        ] {
            let tree = parse(text, format).unwrap_or_else(|e| panic!("{format:?}: {e:?}"));
            let span = tree.get("timeout").unwrap().span.clone();
            assert!(text[span].contains("5x"), "{format:?}");
        }
    }

    #[test]
    fn duplicate_keys_are_errors_in_every_format() {
        let yaml = parse("a: 1\nb: 2\na: 3\n", Format::Yaml).unwrap_err();
        assert!(yaml.message.contains("duplicate key `a`"), "{yaml:?}");
        assert_eq!(yaml.span, Some(10..11));
        let json = parse(r#"{"a": 1, "a": 2}"#, Format::Json).unwrap_err();
        assert!(json.message.contains("duplicate key `a`"), "{json:?}");
        assert!(parse("a = 1\na = 2\n", Format::Toml).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        for format in [Format::Json, Format::Toml, Format::Yaml] {
            let deep = format!("{{\"a\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
            let text = if format == Format::Toml {
                format!("a = {}1{}", "[".repeat(100_000), "]".repeat(100_000))
            } else {
                deep
            };
            let err = parse(&text, format).unwrap_err();
            assert!(err.message.contains("nesting"), "{format}: {err:?}");
        }
    }

    #[test]
    fn yaml_alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let err = parse(&text, Format::Yaml).unwrap_err();
        assert!(err.message.contains("alias"), "{err:?}");
    }

    #[test]
    fn yaml_merge_keys_fill_missing_entries() {
        let text = "base: &b {timeout: 5, retry: 1}\njob:\n  <<: *b\n  retry: 3\n";
        let tree = parse(text, Format::Yaml).unwrap();
        assert_eq!(tree.find(&["job", "timeout"]).unwrap().value, Value::Int(5));
        assert_eq!(tree.find(&["job", "retry"]).unwrap().value, Value::Int(3));
        // Once per map, as any key; a list merges several.
        let twice = "a: &a {x: 1}\nb: &b {y: 2}\njob:\n  <<: *a\n  <<: *b\n";
        let err = parse(twice, Format::Yaml).unwrap_err();
        assert!(err.message.contains("`<<` appears twice"), "{err:?}");
        let listed = "a: &a {x: 1}\nb: &b {y: 2}\njob:\n  <<: [*a, *b]\n";
        let tree = parse(listed, Format::Yaml).unwrap();
        assert_eq!(tree.find(&["job", "y"]).unwrap().value, Value::Int(2));
    }

    #[test]
    fn empty_documents_are_null() {
        for format in [Format::Yaml, Format::Json, Format::Toml] {
            let tree = parse("", format);
            match format {
                Format::Toml => assert_eq!(tree.unwrap().value, Value::Map(vec![])),
                Format::Yaml => assert_eq!(tree.unwrap().value, Value::Null),
                Format::Json => assert!(tree.is_err() || tree.unwrap().value == Value::Null),
            }
        }
    }

    #[test]
    fn binary_and_non_utf8_bytes_are_refused() {
        assert!(matches!(
            text_from_bytes(b"a = 1\0".to_vec()),
            Err(ReadError::Binary)
        ));
        assert!(matches!(
            text_from_bytes(b"a = \xff".to_vec()),
            Err(ReadError::NotUtf8(4))
        ));
    }
}
