//! Configuration diagnostics: one data type, rendered for people (miette), for tools
//! (JSON in the shape of Terraform's `validate -json`) and for GitHub Actions annotations.
//!
//! A diagnostic points at where a value came from: a span in a file, an environment
//! variable, or a `--set` flag. Codes are stable (`exe::config::unknown_key`): editors and
//! CI scripts match on them.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource, Report,
};
use serde::Serialize;

use crate::source::SourceFile;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the pipeline still runs.
    Warning,
    /// The pipeline cannot run until it is fixed.
    Error,
}

/// Where a diagnostic points.
#[derive(Debug, Clone)]
pub enum At {
    /// A byte range in a file.
    Span {
        /// The file.
        source: Arc<SourceFile>,
        /// The bytes.
        span: Range<usize>,
    },
    /// A whole file (it could not be read or parsed as a whole).
    File(std::path::PathBuf),
    /// An `EXE_*` environment variable.
    Env(String),
    /// A command-line flag such as `--set jobs.a.timeout=5x`.
    Flag(String),
}

/// One problem found in a pipeline.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code, e.g. `exe::config::unknown_key`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we can say.
    pub help: Option<String>,
    /// Where.
    pub at: Option<At>,
    /// The label on the span (defaults to the message's gist).
    pub label: Option<String>,
    /// Other places in the same file worth showing (e.g. the first of two duplicate keys).
    pub related: Vec<(String, Range<usize>)>,
}

impl Diagnostic {
    /// An error with a code and message, placed later with [`Diagnostic::at`].
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            help: None,
            at: None,
            label: None,
            related: Vec::new(),
        }
    }

    /// A warning with a code and message.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Places the diagnostic.
    #[must_use]
    pub fn at(mut self, at: Option<At>) -> Self {
        self.at = at;
        self
    }

    /// Adds a help line.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the label on the span.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Is this an error (not a warning)?
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    fn file(&self) -> Option<&Path> {
        match &self.at {
            Some(At::Span { source, .. }) => Some(&source.path),
            Some(At::File(path)) => Some(path),
            _ => None,
        }
    }
}

/// A position as editors count it: 1-based line and column (in characters), and the byte.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// 0-based byte offset.
    pub byte: usize,
}

/// The line and column of a byte offset in a text.
pub fn position(text: &str, byte: usize) -> Pos {
    let byte = byte.min(text.len());
    let before = &text.as_bytes()[..byte];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Pos { line, column, byte }
}

/// Renders diagnostics for a terminal, with source excerpts and labels.
pub fn render_human(diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    // Each file's text as excerpts show it, secrets masked (worked out once per file).
    let mut shown: Vec<(Arc<SourceFile>, Option<Arc<str>>)> = Vec::new();
    for d in diagnostics {
        let mut m = MietteDiagnostic::new(d.message.clone())
            .with_code(d.code)
            .with_severity(match d.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            });
        let mut help = d.help.clone();
        // A line too long to show (minified JSON: the whole file on one line) is named by
        // position instead, so that each diagnostic does not print the file again.
        let excerpt = match &d.at {
            Some(At::Span { source, span }) => excerpt_fits(&source.text, span.start).then_some(()),
            _ => None,
        };
        match &d.at {
            Some(At::Span { source, span }) if excerpt.is_none() => {
                let pos = position(&source.text, span.start);
                m.message = format!(
                    "{}:{}:{}: {}",
                    source.path.display(),
                    pos.line,
                    pos.column,
                    m.message
                );
            }
            Some(At::Span { span, .. }) => {
                let label = d.label.clone().unwrap_or_else(|| "here".to_owned());
                m = m.with_label(LabeledSpan::new_primary_with_span(
                    Some(label),
                    span.clone(),
                ));
                for (text, span) in &d.related {
                    m = m.and_label(LabeledSpan::new_with_span(Some(text.clone()), span.clone()));
                }
            }
            Some(At::File(path)) => m.message = format!("{}: {}", path.display(), m.message),
            Some(At::Env(var)) => {
                m.message = format!("{} (set by environment variable {var})", m.message);
            }
            Some(At::Flag(flag)) => m.message = format!("{} (set by {flag})", m.message),
            None => {}
        }
        if let Some(h) = help.take() {
            m = m.with_help(h);
        }
        let report = match &d.at {
            Some(At::Span { source, .. }) if excerpt.is_some() => {
                let known = shown.iter().find(|(file, _)| Arc::ptr_eq(file, source));
                let masked = if let Some((_, masked)) = known {
                    masked.clone()
                } else {
                    let masked: Option<Arc<str>> =
                        crate::secrets::mask_assignments(&source.text).map(Arc::from);
                    shown.push((source.clone(), masked.clone()));
                    masked
                };
                Report::new(m).with_source_code(
                    NamedSource::new(
                        source.path.display().to_string(),
                        SharedText {
                            file: source.clone(),
                            masked,
                        },
                    )
                    .with_language(source.format.to_string()),
                )
            }
            _ => Report::new(m),
        };
        let _ = handler.render_report(&mut out, report.as_ref());
    }
    out
}

/// The longest line, in bytes, shown in a source excerpt.
const MAX_EXCERPT_LINE: usize = 500;

/// Whether the lines an excerpt shows around `offset` (its own, and one before and after)
/// are short enough to print.
fn excerpt_fits(text: &str, offset: usize) -> bool {
    let line = line_around(text, offset.min(text.len()));
    let before = (line.start > 0).then(|| line_around(text, line.start - 1));
    let after = (line.end < text.len()).then(|| line_around(text, line.end + 1));
    [Some(line), before, after]
        .into_iter()
        .flatten()
        .all(|l| l.len() <= MAX_EXCERPT_LINE)
}

/// The bytes of the line holding `offset`, without its newline.
fn line_around(text: &str, offset: usize) -> std::ops::Range<usize> {
    let bytes = text.as_bytes();
    let start = bytes[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let end = bytes[offset..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| offset + i);
    start..end
}

/// miette reads the text through this, so a file is never copied per diagnostic. Excerpts
/// show `masked` when the file assigns secrets ([`crate::secrets::mask_assignments`]: the
/// same bytes but for the secrets' values, so spans hold).
#[derive(Debug)]
struct SharedText {
    file: Arc<SourceFile>,
    masked: Option<Arc<str>>,
}

impl miette::SourceCode for SharedText {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let text = self.masked.as_deref().unwrap_or(&self.file.text);
        let contents = text.read_span(span, context_lines_before, context_lines_after)?;
        if context_lines_before > 0 {
            return Ok(contents);
        }
        // miette counts the column of the `file:line:column` heading in bytes; editors, and
        // the JSON and GitHub formats, in characters (of the file as written).
        let column = position(&self.file.text, span.offset()).column - 1;
        Ok(Box::new(miette::MietteSpanContents::new(
            contents.data(),
            *contents.span(),
            contents.line(),
            column,
            contents.line_count(),
        )))
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    valid: bool,
    error_count: usize,
    warning_count: usize,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    severity: Severity,
    code: &'a str,
    message: &'a str,
    help: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<JsonRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
}

#[derive(Serialize)]
struct JsonRange {
    file: String,
    start: Pos,
    end: Pos,
}

fn range(d: &Diagnostic) -> Option<JsonRange> {
    match &d.at {
        Some(At::Span { source, span }) => Some(JsonRange {
            file: source.path.display().to_string(),
            start: position(&source.text, span.start),
            end: position(&source.text, span.end),
        }),
        Some(At::File(path)) => {
            let start = Pos {
                line: 1,
                column: 1,
                byte: 0,
            };
            Some(JsonRange {
                file: path.display().to_string(),
                start,
                end: start,
            })
        }
        _ => None,
    }
}

/// Renders diagnostics as one JSON document (Terraform `validate -json` shape).
pub fn render_json(diagnostics: &[Diagnostic]) -> String {
    let error_count = diagnostics.iter().filter(|d| d.is_error()).count();
    let report = JsonReport {
        valid: error_count == 0,
        error_count,
        warning_count: diagnostics.len() - error_count,
        diagnostics: diagnostics
            .iter()
            .map(|d| JsonDiagnostic {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                help: d.help.as_deref(),
                range: range(d),
                source: match &d.at {
                    Some(At::Env(var)) => Some(format!("environment variable {var}")),
                    Some(At::Flag(flag)) => Some(flag.clone()),
                    _ => None,
                },
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report).expect("diagnostics always serialize");
    text.push('\n');
    text
}

/// Renders diagnostics as GitHub Actions workflow commands (`::error file=...::...`).
pub fn render_github(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let kind = if d.is_error() { "error" } else { "warning" };
        let mut props = Vec::new();
        if let Some(r) = range(d) {
            props.push(format!("file={}", escape_property(&r.file)));
            props.push(format!("line={}", r.start.line));
            props.push(format!("col={}", r.start.column));
            props.push(format!("endLine={}", r.end.line));
            props.push(format!("endColumn={}", r.end.column));
        } else if let Some(file) = d.file() {
            props.push(format!(
                "file={}",
                escape_property(&file.display().to_string())
            ));
        }
        props.push(format!("title={}", escape_property(d.code)));
        let mut message = d.message.clone();
        match &d.at {
            Some(At::Env(var)) => {
                message.push_str(&format!(" (set by environment variable {var})"));
            }
            Some(At::Flag(flag)) => message.push_str(&format!(" (set by {flag})")),
            _ => {}
        }
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        let _ = writeln!(
            out,
            "::{kind} {}::{}",
            props.join(","),
            escape_data(&message)
        );
    }
    out
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// "did you mean `x`?" for a misspelt name, if one of the candidates is close.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    // Short names need an edit-distance rule: "cj" is one letter from "ci".
    let close = |c: &str| {
        strsim::jaro_winkler(name, c) > 0.8
            || strsim::levenshtein(name, c) <= (name.len() / 3).max(1)
    };
    candidates
        .into_iter()
        .filter(|c| close(c))
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(
            position(text, 0),
            Pos {
                line: 1,
                column: 1,
                byte: 0
            }
        );
        let at = text.find("\"x\"").unwrap();
        assert_eq!(
            position(text, at),
            Pos {
                line: 2,
                column: 6,
                byte: at
            }
        );
    }

    #[test]
    fn suggestions_only_when_close() {
        assert_eq!(
            did_you_mean("comand", ["command", "needs"]).as_deref(),
            Some("did you mean `command`?")
        );
        assert_eq!(did_you_mean("zzz", ["command", "needs"]), None);
    }

    #[test]
    fn github_annotations_escape_their_text() {
        let d = Diagnostic::error("exe::config::x", "a, b: 100%\nnext")
            .at(Some(At::Flag("--set a=b".into())));
        let out = render_github(&[d]);
        assert_eq!(
            out,
            "::error title=exe%3A%3Aconfig%3A%3Ax::a, b: 100%25%0Anext (set by --set a=b)\n"
        );
    }
}
