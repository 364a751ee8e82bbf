//! `exe lint`: check files and folders, report every problem, write nothing.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::cli::{LintArgs, LintFormat};
use crate::diagnostic::{At, Diagnostic, render_github, render_human, render_json};
use crate::error::{EXIT_FAILED, Error};
use crate::load::{self, LoadOptions, format_of};
use crate::source::{self, Format};
use crate::validate::{self, Options};

struct Checked {
    file: PathBuf,
    diagnostics: Vec<Diagnostic>,
    /// Files this one included: fragments are checked through their includer.
    included: Vec<PathBuf>,
}

pub(super) fn run(args: &LintArgs, out: super::Output) -> Result<i32, Error> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    if args.stdin_filename.is_some() && !paths.iter().any(|p| p.as_os_str() == "-") {
        return Err(Error::Usage {
            message: "--stdin-filename names standard input, and no `-` reads it".to_owned(),
            help: Some("pass `-` among the paths: `exe lint - --stdin-filename NAME`".to_owned()),
        });
    }
    let options = Options {
        process_env: std::env::vars().collect(),
        cli_env: Vec::new(),
    };
    let mut checked = Vec::new();
    let mut walk_problems = Vec::new();
    for path in &paths {
        if path.as_os_str() == "-" {
            checked.push(stdin(args.stdin_filename.as_deref(), &options)?);
        } else if path.is_dir() {
            walk(path, &options, &mut checked, &mut walk_problems);
        } else {
            // A missing file is unreadable, and a name with no format is said so, by `load`.
            checked.push(check(path, None, &options));
        }
    }
    let fragments: HashSet<PathBuf> = checked
        .iter()
        .flat_map(|c| c.included.iter().map(|p| canonical(p)))
        .collect();
    let explicit: HashSet<PathBuf> = paths.iter().map(|p| canonical(p)).collect();
    let mut diagnostics = walk_problems;
    let mut files = 0;
    // A problem in a fragment that several linted files include is reported once.
    let mut in_fragments = HashSet::new();
    for c in checked {
        let key = canonical(&c.file);
        if fragments.contains(&key) && !explicit.contains(&key) {
            continue;
        }
        files += 1;
        diagnostics.extend(c.diagnostics.into_iter().filter(|d| match &d.at {
            Some(At::Span { source, span }) if source.path != c.file => {
                let place = (canonical(&source.path), span.start, span.end);
                in_fragments.insert((place, d.code, d.message.clone()))
            }
            _ => true,
        }));
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if out.quiet {
        diagnostics.retain(Diagnostic::is_error);
    }
    let text = match args.format {
        LintFormat::Human => {
            let mut text = render_human(&diagnostics, out.color);
            if !out.quiet {
                let plural =
                    |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
                text.push_str(&format!(
                    "{}: {}, {}\n",
                    plural(files, "file"),
                    plural(errors, "error"),
                    plural(warnings, "warning")
                ));
            }
            text
        }
        LintFormat::Json => render_json(&diagnostics),
        LintFormat::Github => render_github(&diagnostics),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    let failed = errors > 0 || (args.deny_warnings && warnings > 0);
    Ok(if failed { EXIT_FAILED } else { 0 })
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn check(path: &Path, text: Option<(String, Format)>, options: &Options) -> Checked {
    let load_options = LoadOptions::default();
    let loaded = match text {
        Some((text, format)) => load::load_text(path, text, format, &load_options),
        None => load::load(path, &load_options),
    };
    // A partial document (invalid values left out) is still validated, so one run shows
    // every problem, not only the type errors.
    let (doc, mut diagnostics) = match loaded {
        Ok((doc, diagnostics)) => (Some(doc), diagnostics),
        Err(failure) => (failure.partial.map(|d| *d), failure.diagnostics),
    };
    let Some(doc) = doc else {
        return Checked {
            file: path.to_path_buf(),
            diagnostics,
            included: Vec::new(),
        };
    };
    let (_, found) = validate::validate(&doc, options);
    diagnostics.extend(found);
    let included = doc
        .provenance
        .files()
        .filter(|f| *f != doc.main.path)
        .map(Path::to_path_buf)
        .collect();
    Checked {
        file: path.to_path_buf(),
        diagnostics,
        included,
    }
}

fn stdin(name: Option<&Path>, options: &Options) -> Result<Checked, Error> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(source::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    let text = match source::text_from_bytes(bytes) {
        Ok(text) => text,
        Err(e) => {
            let path = name.map_or_else(|| PathBuf::from("<stdin>"), Path::to_path_buf);
            return Ok(Checked {
                diagnostics: vec![load::read_error(&path, &e)],
                file: path,
                included: Vec::new(),
            });
        }
    };
    let format = match name.map(format_of) {
        Some(Ok(format)) => format,
        Some(Err(d)) => {
            return Ok(Checked {
                file: name.unwrap_or(Path::new("-")).to_path_buf(),
                diagnostics: vec![d],
                included: Vec::new(),
            });
        }
        None => guess_format(&text),
    };
    let path = name.map_or_else(
        || PathBuf::from(format!("<stdin>.{}", format.extension())),
        Path::to_path_buf,
    );
    Ok(check(&path, Some((text, format)), options))
}

/// Standard input has no name: JSON starts with `{`; TOML is what parses as TOML; else YAML.
fn guess_format(text: &str) -> Format {
    if text.trim_start().starts_with('{') {
        Format::Json
    } else if source::parse(text, Format::Toml).is_ok() {
        Format::Toml
    } else {
        Format::Yaml
    }
}

/// Every pipeline below a folder: files with a pipeline extension that mention `jobs`.
/// Hidden folders and what `.gitignore` ignores are skipped; symlink loops are reported.
fn walk(dir: &Path, options: &Options, checked: &mut Vec<Checked>, problems: &mut Vec<Diagnostic>) {
    let walker = ignore::WalkBuilder::new(dir)
        .follow_links(true)
        .require_git(false)
        .build();
    let mut entries: Vec<PathBuf> = Vec::new();
    for entry in walker {
        match entry {
            Ok(entry) => {
                if entry.file_type().is_some_and(|t| t.is_file())
                    && Format::from_path(entry.path()).is_some()
                {
                    entries.push(entry.into_path());
                }
            }
            Err(e) => {
                let (code, message) = if e.is_io() || loop_path(&e).is_none() {
                    ("exe::lint::unreadable", format!("skipped: {e}"))
                } else {
                    (
                        "exe::lint::symlink_loop",
                        format!("skipped a symbolic link loop: {e}"),
                    )
                };
                problems.push(Diagnostic::warning(code, message).at(loop_path(&e).map(At::File)));
            }
        }
    }
    entries.sort();
    for path in entries {
        let Ok(format) = format_of(&path) else {
            continue;
        };
        match source::read_text(&path) {
            Ok(text) if text.contains("jobs") => {
                checked.push(check(&path, Some((text, format)), options));
            }
            Ok(_) => {}
            Err(e) => problems.push(load::read_error(&path, &e)),
        }
    }
}

fn loop_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. }
        | ignore::Error::WithLineNumber { err, .. } => loop_path(err),
        _ => None,
    }
}
