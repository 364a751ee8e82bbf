//! Finding and layering pipeline files into one [`Document`], keeping where every value
//! came from.
//!
//! Layers, later wins: included files in order < the file < `profiles.<name>` <
//! `EXE_<PATH>` environment variables < `--set path=value`. Layers are merged as figment
//! merges (maps key by key, any other value replaced) into one figment value, which is
//! deserialized into the spec and then dropped; the parsed [`Node`] trees are kept so a key
//! path leads back to its layer and to a file, line and column ([`Provenance::locate`]).
//! Nothing here spawns a process or writes a file.

mod provenance;
mod tables;
mod words;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::Env;
use figment::value::{Dict, Empty, Num, Tag, Value as FValue};
use figment::{Profile, Provider};
use indexmap::IndexMap;

use crate::diagnostic::{At, Diagnostic, did_you_mean};
use crate::source::{self, Format, Node, SourceFile, Value};
use crate::spec::legacy;
use crate::spec::{JobSpec, PipelineSpec};
use provenance::{Layer, Merged, find};
pub use provenance::{Origin, Provenance};

/// What to layer on top of the files.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// `--profile NAME`.
    pub profile: Option<String>,
    /// `--set path=value`, in order.
    pub sets: Vec<String>,
    /// Whether `EXE_*` environment variables are a layer (not for `lint`, which checks files).
    pub use_env: bool,
}

/// A pipeline's merged raw spec, before validation.
#[derive(Debug)]
pub struct Document {
    /// The merged spec; `jobs` are in file order.
    pub spec: PipelineSpec,
    /// The file that was asked for.
    pub main: Arc<SourceFile>,
    /// Whether the file is in the older tool's format.
    pub legacy: bool,
    /// Key paths left out because their values were invalid (only in a partial document).
    pub removed: Vec<Vec<String>>,
    /// Where each value came from.
    pub provenance: Provenance,
}

/// The top-level keys a file may set; `EXE_*` variables are layered only under these.
const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "working_dir",
    "include",
    "log_dir",
    "vars",
    "env",
    "inherit_env",
    "defaults",
    "max_parallel",
    "continue_on_error",
    "templates",
    "notify",
    "jobs",
    "profiles",
    "security_policy",
];

/// Whether `part`, in any case, is one of [`TOP_LEVEL_KEYS`].
fn top_level_key(part: &str) -> bool {
    TOP_LEVEL_KEYS.contains(&part.to_ascii_lowercase().as_str())
}

/// Whether the environment variable `name` is a layer of the pipeline: `EXE_` and then a
/// path under a top-level key (`EXE_JOBS__BUILD__TIMEOUT`), not one of exe's own settings
/// (`EXE_DB`, `EXE_LOG`) nor any other `EXE_` name.
pub fn is_layer_variable(name: &str) -> bool {
    name.strip_prefix("EXE_")
        .is_some_and(|path| top_level_key(path.split("__").next().unwrap_or_default()))
}

/// Why a pipeline could not be loaded: every problem found, and what could be read anyway.
#[derive(Debug)]
pub struct Failure {
    /// Every problem found while loading.
    pub diagnostics: Vec<Diagnostic>,
    /// The document with its invalid values left out, when the files themselves could be
    /// read. Validating it finds the problems the invalid values did not hide; it must
    /// never be run.
    pub partial: Option<Box<Document>>,
}

impl From<Vec<Diagnostic>> for Failure {
    fn from(diagnostics: Vec<Diagnostic>) -> Self {
        Failure {
            diagnostics,
            partial: None,
        }
    }
}

/// Loads a pipeline file and everything it includes, and layers the options on top.
///
/// On success, also returns warnings. On failure, returns every problem found.
pub fn load(path: &Path, options: &LoadOptions) -> Result<(Document, Vec<Diagnostic>), Failure> {
    // Read first: a missing file or a folder is that, whatever its name says.
    let text = source::read_text(path).map_err(|e| vec![read_error(path, &e)])?;
    let format = format_of(path).map_err(|d| vec![d])?;
    load_text(path, text, format, options)
}

/// The format a file name says, or a diagnostic saying it says none.
pub fn format_of(path: &Path) -> Result<Format, Diagnostic> {
    Format::from_path(path).ok_or_else(|| {
        Diagnostic::error(
            "exe::config::unknown_format",
            "cannot tell the format from the file name",
        )
        .at(Some(At::File(path.to_path_buf())))
        .help("name pipeline files `.toml`, `.yaml`, `.yml` or `.json`")
    })
}

/// Like [`load`], for text already read (a folder walk, stdin). `path` names it.
pub fn load_text(
    path: &Path,
    text: String,
    format: Format,
    options: &LoadOptions,
) -> Result<(Document, Vec<Diagnostic>), Failure> {
    let mut loader = Loader::default();
    let main = loader.parse(path.to_path_buf(), text, format)?;
    let main_source = Arc::clone(&loader.trees[main].0);
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    let legacy = legacy::is_legacy(&loader.trees[main].1);
    if legacy {
        let (spec, jobs, notes) = legacy::convert(&loader.trees[main].1, &main_source)?;
        warnings.extend(notes);
        let value = FValue::serialize(&spec).map_err(|e| {
            vec![Diagnostic::error(
                "exe::config::legacy",
                format!("could not convert the legacy file: {e}"),
            )]
        })?;
        layers.push(Layer::Legacy {
            tree: main,
            value,
            jobs,
        });
    } else {
        let (files, problems) = loader.includes(main);
        layers.extend(files.into_iter().map(Layer::File));
        if problems.iter().any(Diagnostic::is_error) {
            // The files that did load are still checked, so that one broken include does
            // not hide their problems; nothing more (their jobs may need the broken one's).
            let provenance = Provenance {
                trees: loader.trees,
                layers,
                profile: None,
            };
            let mut diagnostics = problems;
            if let Err(extracted) = extract(&provenance) {
                diagnostics.extend(extracted.errors);
            }
            diagnostics.append(&mut loader.warnings);
            return Err(diagnostics.into());
        }
        loader.warnings.extend(problems);
    }
    if let Some(profile) = &options.profile {
        // Only the files' `profiles` are merged to look the profile up.
        let profiles = layers
            .iter()
            .fold(FValue::from(Dict::new()), |merged, layer| {
                let value = match layer {
                    Layer::File(i) => loader.trees[*i].1.get("profiles").map(to_figment),
                    Layer::Legacy { value, .. } => find(value, &["profiles".to_owned()]).cloned(),
                    _ => None,
                };
                match value {
                    Some(value) => merge(merged, value),
                    None => merged,
                }
            });
        let profiles = profiles.as_dict();
        if profiles.and_then(|d| d.get(profile)).is_none() {
            let names: Vec<&str> = profiles
                .map(|d| d.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let mut d = Diagnostic::error(
                "exe::config::unknown_profile",
                format!("unknown profile `{profile}`"),
            )
            .at(Some(At::Flag(format!("--profile {profile}"))));
            d = d.help(match did_you_mean(profile, names.iter().copied()) {
                Some(hint) => hint,
                None if names.is_empty() => "this pipeline defines no `profiles`".to_owned(),
                None => format!("profiles defined: {}", names.join(", ")),
            });
            return Err(vec![d].into());
        }
        layers.push(Layer::Profile);
    }
    if options.use_env {
        // `EXE_` exactly: figment's own prefix match ignores case, and `exe_vars__x` beside
        // `EXE_VARS__X` would set the same key, the winner decided by the environment's order.
        let env = Env::raw()
            .filter_map(|key| {
                key.as_str()
                    .strip_prefix("EXE_")
                    .map(|rest| rest.to_owned().into())
            })
            .split("__")
            .filter(|key| top_level_key(key.as_str().split('.').next().unwrap_or_default()));
        let value = env
            .data()
            .ok()
            .and_then(|mut data| data.remove(&Profile::Default))
            .unwrap_or_default();
        if value.contains_key("include") {
            return Err(vec![
                Diagnostic::error(
                    "exe::config::invalid_env",
                    "`include` names files to read, which an environment variable cannot add",
                )
                .at(Some(At::Env("EXE_INCLUDE".to_owned())))
                .help("list the files in the pipeline's `include`, or unset EXE_INCLUDE"),
            ]
            .into());
        }
        if !value.is_empty() {
            layers.push(Layer::Env(FValue::from(value)));
        }
    }
    for set in &options.sets {
        let value = parse_set(set).map_err(|message| {
            vec![
                Diagnostic::error("exe::cli::invalid_set", message)
                    .at(Some(At::Flag(set_flag(set))))
                    .help(
                        "write it as `--set path.to.key=value`, e.g. `--set jobs.build.timeout=5m`",
                    ),
            ]
        })?;
        layers.push(Layer::Flag {
            flag: set_flag(set),
            value,
        });
    }
    let provenance = Provenance {
        trees: loader.trees,
        layers,
        profile: options.profile.clone(),
    };
    warnings.append(&mut loader.warnings);
    let (mut spec, errors, removed) = match extract(&provenance) {
        Ok(spec) => (spec, Vec::new(), Vec::new()),
        Err(Extracted {
            errors,
            partial: None,
            ..
        }) => return Err(errors.into()),
        Err(Extracted {
            errors,
            partial: Some(spec),
            removed,
        }) => (spec, errors, removed),
    };
    order_jobs(&mut spec, &provenance);
    let document = Document {
        spec,
        main: main_source,
        legacy,
        removed,
        provenance,
    };
    if !errors.is_empty() {
        let mut diagnostics = errors;
        diagnostics.extend(warnings);
        return Err(Failure {
            diagnostics,
            partial: Some(Box::new(document)),
        });
    }
    Ok((document, warnings))
}

/// Reads a file as a user-facing diagnostic when it cannot be read.
pub fn read_error(path: &Path, error: &source::ReadError) -> Diagnostic {
    let code = match error {
        source::ReadError::Io(_) => "exe::config::unreadable",
        source::ReadError::TooLarge(_) => "exe::config::too_large",
        source::ReadError::Binary | source::ReadError::NotUtf8(_) => "exe::config::not_text",
    };
    Diagnostic::error(code, format!("cannot read {}: {error}", path.display()))
        .at(Some(At::File(path.to_path_buf())))
}

#[derive(Default)]
struct Loader {
    trees: Vec<(Arc<SourceFile>, Node)>,
    /// Problems that do not stop loading (an include glob that matches nothing).
    warnings: Vec<Diagnostic>,
    by_path: HashMap<PathBuf, usize>,
}

impl Loader {
    /// Parses one file's text; the root must be a map.
    fn parse(
        &mut self,
        path: PathBuf,
        text: String,
        format: Format,
    ) -> Result<usize, Vec<Diagnostic>> {
        // A TOML parser keeps a file's CRLF line endings inside multi-line strings, and a
        // `\r` ends each line of a command `sh` then runs (`set: Illegal option -`). YAML
        // reads them as newlines; JSON strings hold none. Lines and columns stay the same.
        let text = if format == Format::Toml && text.contains("\r\n") {
            text.replace("\r\n", "\n")
        } else {
            text
        };
        let source = Arc::new(SourceFile {
            path: path.clone(),
            text,
            format,
        });
        let tree =
            source::parse(&source.text, format).map_err(|e| vec![syntax_diagnostic(&source, e)])?;
        // TOML has no way to write an empty top-level map: one is whitespace and comments,
        // as empty as a YAML file of comments (`Null`).
        let blank_toml =
            format == Format::Toml && matches!(&tree.value, Value::Map(m) if m.is_empty());
        let tree = match tree.value {
            Value::Map(_) if !blank_toml => tree,
            Value::Null | Value::Map(_) => {
                return Err(vec![
                    Diagnostic::error("exe::config::empty", "the file is empty")
                        .at(Some(At::File(path)))
                        .help("a pipeline needs at least a `jobs` map; `exe init` writes a starter file"),
                ]);
            }
            _ => {
                return Err(vec![
                    Diagnostic::error(
                        "exe::config::not_a_map",
                        format!("the top level is {}, not a map of keys", tree.kind()),
                    )
                    .at(Some(At::Span {
                        source,
                        span: tree.span,
                    }))
                    .help("a pipeline file is a map with keys such as `name` and `jobs`"),
                ]);
            }
        };
        let canonical = std::fs::canonicalize(&path).unwrap_or(path);
        self.trees.push((source, tree));
        self.by_path.insert(canonical, self.trees.len() - 1);
        Ok(self.trees.len() - 1)
    }

    /// Every file to merge, includes first (depth first, in order), each once; `main` last;
    /// and the problems met on the way: errors (a file unreadable, unparsable, legacy, or in a
    /// cycle) and warnings (an include glob that matches nothing).
    fn includes(&mut self, main: usize) -> (Vec<usize>, Vec<Diagnostic>) {
        let mut order = Vec::new();
        let mut done = HashSet::new();
        let mut errors = Vec::new();
        // Explicit stack of (file, next include to visit): include chains cannot overflow.
        let mut stack: Vec<(usize, Vec<(PathBuf, std::ops::Range<usize>)>, usize)> = Vec::new();
        let first = self.include_list(main, &mut errors);
        stack.push((main, first, 0));
        while let Some((file, list, next)) = stack.last_mut() {
            let Some((path, span)) = list.get(*next).cloned() else {
                let file = *file;
                stack.pop();
                if done.insert(file) {
                    order.push(file);
                }
                continue;
            };
            *next += 1;
            let file = *file;
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if let Some(&seen) = self.by_path.get(&canonical) {
                if stack.iter().any(|(f, _, _)| *f == seen) {
                    let chain: Vec<String> = stack
                        .iter()
                        .map(|(f, _, _)| self.trees[*f].0.path.display().to_string())
                        .chain([path.display().to_string()])
                        .collect();
                    errors.push(
                        Diagnostic::error(
                            "exe::config::include_cycle",
                            format!("include cycle: {}", chain.join(" -> ")),
                        )
                        .at(Some(At::Span {
                            source: self.trees[file].0.clone(),
                            span,
                        }))
                        .label("this include leads back to a file that includes it")
                        .help("remove one of the includes in the chain"),
                    );
                }
                continue;
            }
            let text = match format_of(&path)
                .map_err(|d| d.message)
                .and_then(|_| source::read_text(&path).map_err(|e| e.to_string()))
            {
                Ok(text) => text,
                Err(e) => {
                    errors.push(
                        Diagnostic::error(
                            "exe::config::include_unreadable",
                            format!("cannot read included file {}: {e}", path.display()),
                        )
                        .at(Some(At::Span {
                            source: self.trees[file].0.clone(),
                            span,
                        })),
                    );
                    continue;
                }
            };
            let format = Format::from_path(&path).expect("checked by format_of");
            match self.parse(path.clone(), text, format) {
                // Its keys would each be "unknown" here: say what it is instead.
                Ok(index) if legacy::is_legacy(&self.trees[index].1) => errors.push(
                    Diagnostic::error(
                        "exe::config::include_legacy",
                        format!(
                            "{} is a legacy file, which cannot be included",
                            path.display()
                        ),
                    )
                    .at(Some(At::Span {
                        source: self.trees[file].0.clone(),
                        span,
                    }))
                    .help(format!(
                        "`exe migrate {}` converts it to the current format",
                        path.display()
                    )),
                ),
                Ok(index) => {
                    let list = self.include_list(index, &mut errors);
                    stack.push((index, list, 0));
                }
                Err(e) => errors.extend(e),
            }
        }
        (order, errors)
    }

    /// The paths a file's `include` names, globs expanded (sorted), relative to the file.
    fn include_list(
        &self,
        file: usize,
        errors: &mut Vec<Diagnostic>,
    ) -> Vec<(PathBuf, std::ops::Range<usize>)> {
        let (source, tree) = &self.trees[file];
        let Some(include) = tree.get("include") else {
            return Vec::new();
        };
        let entries: Vec<&Node> = match &include.value {
            Value::Str(_) => vec![include],
            Value::Seq(items) => items.iter().collect(),
            _ => {
                errors.push(
                    Diagnostic::error(
                        "exe::config::invalid_type",
                        format!(
                            "`include` must be a list of paths, found {}",
                            include.kind()
                        ),
                    )
                    .at(Some(At::Span {
                        source: source.clone(),
                        span: include.span.clone(),
                    })),
                );
                return Vec::new();
            }
        };
        let base = source.path.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut paths = Vec::new();
        for entry in entries {
            let Value::Str(pattern) = &entry.value else {
                errors.push(
                    Diagnostic::error(
                        "exe::config::invalid_type",
                        format!("an include must be a path, found {}", entry.kind()),
                    )
                    .at(Some(At::Span {
                        source: source.clone(),
                        span: entry.span.clone(),
                    })),
                );
                continue;
            };
            let full = base.join(pattern);
            let at = || {
                Some(At::Span {
                    source: source.clone(),
                    span: entry.span.clone(),
                })
            };
            if !pattern.contains(['*', '?', '[']) {
                if full.exists() {
                    paths.push((full, entry.span.clone()));
                } else {
                    errors.push(
                        Diagnostic::error(
                            "exe::config::include_not_found",
                            format!("included file {} does not exist", full.display()),
                        )
                        .at(at())
                        .help("include paths are relative to the file that includes them"),
                    );
                }
                continue;
            }
            match glob::glob(&full.to_string_lossy()) {
                Ok(matches) => {
                    let mut found: Vec<PathBuf> = matches
                        .filter_map(Result::ok)
                        .filter(|p| p.is_file())
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        errors.push(
                            Diagnostic::warning(
                                "exe::config::include_empty",
                                format!("`{pattern}` matches no files"),
                            )
                            .at(at()),
                        );
                    }
                    paths.extend(found.into_iter().map(|p| (p, entry.span.clone())));
                }
                Err(e) => errors.push(
                    Diagnostic::error(
                        "exe::config::invalid_glob",
                        format!("invalid glob `{pattern}`: {}", e.msg),
                    )
                    .at(at()),
                ),
            }
        }
        paths
    }
}

fn syntax_diagnostic(source: &Arc<SourceFile>, e: source::SyntaxError) -> Diagnostic {
    let code = if e.message.starts_with("duplicate key") {
        "exe::config::duplicate_key"
    } else {
        "exe::config::syntax"
    };
    let mut d = Diagnostic::error(code, format!("invalid {}: {}", source.format, e.message));
    d.at = Some(match e.span {
        Some(span) => At::Span {
            source: source.clone(),
            span,
        },
        None => At::File(source.path.clone()),
    });
    d.help = e.help;
    if let Some(related) = e.related {
        d.related.push(related);
    }
    d
}

/// figment's `merge` of two values: maps merge key by key, anything else is replaced.
fn merge(base: FValue, over: FValue) -> FValue {
    match (base, over) {
        (FValue::Dict(_, mut base), FValue::Dict(tag, over)) => {
            for (key, value) in over {
                let value = match base.remove(&key) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                base.insert(key, value);
            }
            FValue::Dict(tag, base)
        }
        (_, over) => over,
    }
}

/// A parsed tree as a figment value.
pub fn to_figment(node: &Node) -> FValue {
    match &node.value {
        Value::Null => FValue::Empty(Tag::Default, Empty::None),
        Value::Bool(b) => FValue::Bool(Tag::Default, *b),
        Value::Int(i) => FValue::Num(Tag::Default, Num::I64(*i)),
        Value::Float(f) => FValue::Num(Tag::Default, Num::F64(*f)),
        Value::Str(s) => FValue::String(Tag::Default, s.clone()),
        Value::Seq(items) => FValue::Array(Tag::Default, items.iter().map(to_figment).collect()),
        Value::Map(entries) => FValue::Dict(
            Tag::Default,
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), to_figment(v)))
                .collect(),
        ),
    }
}

/// `path.to.key=value` as a nested value. Quote a part that holds dots: `jobs."a.b".timeout`.
fn parse_set(set: &str) -> Result<FValue, String> {
    // `jobs.build[os=linux].timeout=5s` is a path and a value.
    let (path, value) = outside_brackets(set, '=')
        .map(|i| (&set[..i], &set[i + 1..]))
        .ok_or_else(|| format!("`--set {set}` has no `=`"))?;
    let parts = split_path(path).ok_or_else(|| format!("`{path}` is not a key path"))?;
    if parts[0] == "jobs"
        && let Some((name, _)) = parts.get(1).and_then(|id| id.split_once('['))
    {
        return Err(format!(
            "`{path}`: --set changes a matrix job for all its expansions: `jobs.{name}.…`"
        ));
    }
    if parts[0] == "include" {
        // Files are read before the layers are merged: a file named here would never be.
        return Err(
            "`include` names files to read, which --set cannot add: list them in the file"
                .to_owned(),
        );
    }
    if !TOP_LEVEL_KEYS.contains(&parts[0].as_str()) {
        let hint = did_you_mean(&parts[0], TOP_LEVEL_KEYS.iter().copied()).unwrap_or_default();
        return Err(format!("unknown key `{}` {hint}", parts[0])
            .trim_end()
            .to_owned());
    }
    let mut value: FValue = value
        .parse()
        .unwrap_or_else(|_| FValue::from(value.to_owned()));
    for part in parts.into_iter().rev() {
        let mut dict = Dict::new();
        dict.insert(part, value);
        value = FValue::from(dict);
    }
    Ok(value)
}

/// `--set PATH=VALUE` as shown where a value came from, with the value as `***` when it is
/// a secret's: its key's name is a secret's, or it is a table holding one.
fn set_flag(set: &str) -> String {
    let Some(at) = outside_brackets(set, '=') else {
        return format!("--set {set}");
    };
    let (path, value) = (&set[..at], &set[at + 1..]);
    let named_secret = split_path(path)
        .and_then(|parts| {
            parts
                .last()
                .map(|last| crate::secrets::is_secret_name(last))
        })
        .unwrap_or(false);
    if named_secret || value.parse::<FValue>().is_ok_and(|v| holds_secret(&v)) {
        format!("--set {path}={}", crate::secrets::MASK)
    } else {
        format!("--set {set}")
    }
}

/// Whether a table, at any depth, has a key with a secret's name.
fn holds_secret(value: &FValue) -> bool {
    match value {
        FValue::Dict(_, dict) => dict
            .iter()
            .any(|(key, v)| crate::secrets::is_secret_name(key) || holds_secret(v)),
        FValue::Array(_, items) => items.iter().any(holds_secret),
        _ => false,
    }
}

/// The byte index of the first `wanted` in `text` that is not inside `[...]`.
fn outside_brackets(text: &str, wanted: char) -> Option<usize> {
    let mut depth = 0usize;
    text.char_indices()
        .find(|&(_, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
            c == wanted && depth == 0
        })
        .map(|(i, _)| i)
}

/// Splits `a."b.c".d` into `["a", "b.c", "d"]`, and `a.b[v=1.2].c` into `["a", "b[v=1.2]", "c"]`.
pub fn split_path(path: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"')?;
            parts.push(quoted[..end].to_owned());
            rest = &quoted[end + 1..];
        } else {
            // A matrix expansion's id keeps its dots: `jobs.build[version=3.12].timeout`.
            let end = outside_brackets(rest, '.').unwrap_or(rest.len());
            parts.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
        rest = match rest.strip_prefix('.') {
            Some(r) if !r.is_empty() => r,
            Some(_) => return None,
            None if rest.is_empty() => rest,
            None => return None,
        };
    }
    (!parts.is_empty() && parts.iter().all(|p| !p.is_empty())).then_some(parts)
}

/// What a failed extraction found, and the spec without the invalid values.
struct Extracted {
    errors: Vec<Diagnostic>,
    partial: Option<PipelineSpec>,
    removed: Vec<Vec<String>>,
}

/// The merged document: every layer's values over the earlier layers'.
fn merged(p: &Provenance) -> FValue {
    let mut root = FValue::from(Dict::new());
    for layer in &p.layers {
        let value = match layer {
            Layer::File(i) => to_figment(&p.trees[*i].1),
            Layer::Legacy { value, .. } | Layer::Env(value) | Layer::Flag { value, .. } => {
                value.clone()
            }
            // The profile is looked up in the files merged so far; one that is not a map
            // sets nothing (validation says why).
            Layer::Profile => {
                let path = ["profiles".to_owned(), p.profile.clone().unwrap_or_default()];
                match find(&root, &path) {
                    Some(found) if found.as_dict().is_some() => found.clone(),
                    _ => continue,
                }
            }
        };
        root = merge(root, value);
    }
    root
}

/// Deserializes the merged document; on failure, isolates each key so that every problem
/// is reported, not just the first serde meets, and extracts what remains without them.
fn extract(p: &Provenance) -> Result<PipelineSpec, Extracted> {
    let root = merged(p);
    let mut found = tables::misread(&root);
    if found.is_empty()
        && let Some(spec) = extract_by_job(root)
    {
        return Ok(spec);
    }
    let root = merged(p);
    isolate_pipeline(&root, &[], &mut found);
    let errors = said_once(found.iter().map(|e| {
        diagnose(e, &|path: &[String], key: bool| {
            p.locate_inner(&[path.to_vec()], key)
        })
    }));
    let (partial, removed) = without_invalid(root, &found);
    Err(Extracted {
        errors,
        partial,
        removed,
    })
}

/// Each problem once. A key of the selected profile is checked twice, where it is written
/// (`profiles.ci.max_paralel`) and merged over the top level (`max_paralel`): both point at
/// the same place, and the one kept names it as written.
fn said_once(errors: impl Iterator<Item = Diagnostic>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut places: HashMap<(&'static str, PathBuf, usize, usize), usize> = HashMap::new();
    for d in errors {
        if let Some(At::Span { source, span }) = &d.at {
            let place = (d.code, source.path.clone(), span.start, span.end);
            if let Some(&first) = places.get(&place) {
                if d.message.contains("profiles.") {
                    out[first] = d;
                }
                continue;
            }
            places.insert(place, out.len());
        }
        out.push(d);
    }
    out
}

/// The spec of a valid document, its jobs deserialized one at a time and each freed once
/// read, so the merged document and the spec are never both whole in memory. `None` if
/// anything is invalid.
fn extract_by_job(mut root: FValue) -> Option<PipelineSpec> {
    let jobs = match &mut root {
        FValue::Dict(_, dict) => match dict.remove("jobs") {
            Some(FValue::Dict(_, jobs)) => Some(jobs),
            Some(other) => {
                dict.insert("jobs".to_owned(), other);
                None
            }
            None => None,
        },
        _ => None,
    };
    let mut spec = root.deserialize::<PipelineSpec>().ok()?;
    drop(root);
    if let Some(jobs) = jobs {
        let mut map = IndexMap::with_capacity(jobs.len());
        for (id, job) in jobs {
            map.insert(id, job.deserialize::<JobSpec>().ok()?);
        }
        spec.jobs = Some(map);
    }
    Some(spec)
}

/// The spec with every invalid value left out. Leaving one out can uncover another (a
/// table that now lacks a required key), so this repeats a few times, silently.
fn without_invalid(
    mut root: FValue,
    errors: &[figment::Error],
) -> (Option<PipelineSpec>, Vec<Vec<String>>) {
    let mut removed = Vec::new();
    let mut pending: Vec<Vec<String>> = errors.iter().map(error_path).collect();
    for _ in 0..8 {
        for path in pending.drain(..) {
            if let Some(path) = remove(&mut root, &path) {
                removed.push(path);
            }
        }
        if let Ok(spec) = root.deserialize::<PipelineSpec>() {
            return (Some(spec), removed);
        }
        let mut again = Vec::new();
        isolate_pipeline(&root, &[], &mut again);
        if again.is_empty() {
            break;
        }
        pending = again.iter().map(error_path).collect();
    }
    (None, removed)
}

/// The key path an error is about (for an unknown key, the key itself).
fn error_path(e: &figment::Error) -> Vec<String> {
    match &e.kind {
        figment::error::Kind::UnknownField(name, _) if e.path.last() != Some(name) => {
            e.path.iter().cloned().chain([name.clone()]).collect()
        }
        _ => e.path.clone(),
    }
}

/// Removes the entry at `path`, or the nearest map entry holding it (a bad list item takes
/// its list with it). Returns the path that was removed.
fn remove(root: &mut FValue, path: &[String]) -> Option<Vec<String>> {
    for len in (1..=path.len()).rev() {
        let (key, parent) = path[..len].split_last()?;
        let mut value = &mut *root;
        for part in parent {
            value = match value {
                FValue::Dict(_, dict) => dict.get_mut(part)?,
                FValue::Array(_, items) => items.get_mut(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        if let FValue::Dict(_, dict) = value {
            return dict.remove(key).map(|_| path[..len].to_vec());
        }
    }
    None
}

/// The error deserializing `value` as a whole `T` gives, placed under `prefix`.
fn whole<T: serde::de::DeserializeOwned>(
    value: &FValue,
    prefix: &[String],
) -> Option<figment::Error> {
    value.deserialize::<T>().err().map(|e| prefixed(e, prefix))
}

/// The error `{key: value}` alone gives as a `T` (every field of `T` is optional, so only
/// this key's problem shows).
fn alone<T: serde::de::DeserializeOwned>(key: &str, value: &FValue) -> Option<figment::Error> {
    FValue::from(Dict::from([(key.to_owned(), value.clone())]))
        .deserialize::<T>()
        .err()
}

fn isolate_pipeline(value: &FValue, prefix: &[String], errors: &mut Vec<figment::Error>) {
    let Some(dict) = value.as_dict() else {
        errors.extend(whole::<PipelineSpec>(value, prefix));
        return;
    };
    for (key, value) in dict {
        let Some(e) = alone::<PipelineSpec>(key, value) else {
            continue;
        };
        let here: Vec<String> = prefix.iter().cloned().chain([key.clone()]).collect();
        match (key.as_str(), value.as_dict()) {
            ("jobs" | "templates", Some(jobs)) => {
                for (id, job) in jobs {
                    let at: Vec<String> = here.iter().cloned().chain([id.clone()]).collect();
                    isolate_job(job, &at, errors);
                }
            }
            ("defaults", Some(_)) => isolate_job(value, &here, errors),
            ("profiles", Some(profiles)) => {
                for (name, profile) in profiles {
                    let at: Vec<String> = here.iter().cloned().chain([name.clone()]).collect();
                    isolate_pipeline(profile, &at, errors);
                }
            }
            _ => errors.push(prefixed(e, prefix)),
        }
    }
}

fn isolate_job(value: &FValue, prefix: &[String], errors: &mut Vec<figment::Error>) {
    let Some(dict) = value.as_dict() else {
        errors.extend(whole::<JobSpec>(value, prefix));
        return;
    };
    errors.extend(
        dict.iter()
            .filter_map(|(key, value)| alone::<JobSpec>(key, value))
            .map(|e| prefixed(e, prefix)),
    );
}

fn prefixed(mut e: figment::Error, prefix: &[String]) -> figment::Error {
    e.path = prefix.iter().cloned().chain(e.path).collect();
    e
}

/// Puts jobs in the order they were first written, across layers (in place: a second map
/// of 100,000 jobs would double the peak memory of a load).
fn order_jobs(spec: &mut PipelineSpec, p: &Provenance) {
    let Some(jobs) = spec.jobs.as_mut() else {
        return;
    };
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(jobs.len());
    let profile_path = p
        .profile
        .as_ref()
        .map(|name| vec!["profiles".to_owned(), name.clone(), "jobs".to_owned()]);
    let mut place = |id| {
        let next = position.len();
        position.entry(id).or_insert(next);
    };
    for file in p.merged_files() {
        let tree = match file {
            Merged::Tree(tree) => tree,
            Merged::Legacy(jobs) => {
                let mut ids: Vec<(&str, usize)> =
                    jobs.iter().map(|(id, &i)| (id.as_str(), i)).collect();
                ids.sort_unstable_by_key(|&(_, i)| i);
                for (id, _) in ids {
                    place(id);
                }
                continue;
            }
        };
        let mut maps = vec![tree.get("jobs")];
        if let Some(path) = &profile_path {
            maps.push(tree.find(path));
        }
        for map in maps.into_iter().flatten() {
            if let Value::Map(entries) = &map.value {
                for (key, _) in entries {
                    place(key.name.as_str());
                }
            }
        }
    }
    // Jobs no file names (from `--set` or the environment) come last, by id.
    jobs.sort_by_cached_key(|id, _| match position.get(id.as_str()) {
        Some(&at) => (at, String::new()),
        None => (usize::MAX, id.clone()),
    });
}

/// Turns a figment deserialization error into a diagnostic, placed by `at(path, on_key)`.
pub(crate) fn diagnose(
    e: &figment::Error,
    at: &impl Fn(&[String], bool) -> Option<At>,
) -> Diagnostic {
    use figment::error::Kind;
    let path = e.path.clone();
    let key_path = |name: &str| {
        if path.last().is_some_and(|l| l == name) {
            path.clone()
        } else {
            path.iter().cloned().chain([name.to_owned()]).collect()
        }
    };
    match &e.kind {
        Kind::UnknownField(name, expected) => {
            let key = key_path(name);
            let help = did_you_mean(name, expected.iter().copied())
                .unwrap_or_else(|| format!("valid keys here: {}", expected.join(", ")));
            Diagnostic::error(
                "exe::config::unknown_key",
                format!("unknown key `{name}`{}", context(&key[..key.len() - 1])),
            )
            .at(at(&key, true))
            .label("not a known key")
            .help(help)
        }
        Kind::MissingField(name) => Diagnostic::error(
            "exe::config::missing_key",
            format!("missing key `{name}`{}", context(&path)),
        )
        .at(at(&path, true))
        .help(format!("add `{name}`")),
        // A value of the wrong kind (`max_parallel = "four"`), or of the right kind out of
        // its range (`max_parallel = -3`).
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            let code = if matches!(e.kind, Kind::InvalidType(..)) {
                "exe::config::invalid_type"
            } else {
                "exe::config::invalid_value"
            };
            let expected = words::expected_for(path.last().map(String::as_str), expected);
            Diagnostic::error(
                code,
                format!(
                    "`{}` must be {expected}, found {}",
                    dotted(&path),
                    words::found(actual)
                ),
            )
            .at(at(&path, false))
            .label(format!("expected {expected}"))
        }
        Kind::UnknownVariant(name, expected) => {
            let help = did_you_mean(name, expected.iter().copied())
                .unwrap_or_else(|| format!("valid values: {}", expected.join(", ")));
            Diagnostic::error(
                "exe::config::invalid_value",
                format!("`{}`: unknown value `{name}`", dotted(&path)),
            )
            .at(at(&path, false))
            .label("not a valid value")
            .help(help)
        }
        kind => {
            let message = kind.to_string();
            let code = if message.starts_with("invalid duration") {
                "exe::config::invalid_duration"
            } else if message.starts_with("invalid size") {
                "exe::config::invalid_size"
            } else {
                "exe::config::invalid_value"
            };
            Diagnostic::error(code, format!("`{}`: {message}", dotted(&path))).at(at(&path, false))
        }
    }
}

fn context(path: &[String]) -> String {
    if path.is_empty() {
        " at the top level".to_owned()
    } else {
        format!(" in `{}`", dotted(path))
    }
}

/// The `EXE_*` variable that sets a key path: `EXE_JOBS__BUILD__TIMEOUT`. (figment's own
/// name for it drops the prefix and the `__` separators.)
fn env_var_name(path: &[String]) -> String {
    format!("EXE_{}", path.join("__").to_ascii_uppercase())
}

/// A key path for messages: `jobs.build.timeout`.
pub fn dotted(path: &[String]) -> String {
    path.iter()
        .map(|p| {
            if p.contains('.') {
                format!("\"{p}\"")
            } else {
                p.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_paths_split_on_dots_outside_quotes() {
        assert_eq!(
            split_path("jobs.build.timeout").unwrap(),
            ["jobs", "build", "timeout"]
        );
        assert_eq!(
            split_path("jobs.\"a.b\".timeout").unwrap(),
            ["jobs", "a.b", "timeout"]
        );
        assert_eq!(
            split_path("jobs.build[os=linux,version=3.12].timeout").unwrap(),
            ["jobs", "build[os=linux,version=3.12]", "timeout"]
        );
        assert!(split_path("jobs..x").is_none());
        assert!(split_path("").is_none());
    }

    #[test]
    fn set_values_are_typed() {
        let v = parse_set("max_parallel=4").unwrap();
        assert_eq!(
            find(&v, &["max_parallel".into()]).unwrap().to_u128(),
            Some(4)
        );
        assert!(
            parse_set("max_paralel=4")
                .unwrap_err()
                .contains("did you mean `max_parallel`")
        );
        assert!(parse_set("nothing").is_err());
        let v = parse_set("env.A=b=c").unwrap();
        let a = find(&v, &["env".into(), "A".into()]).unwrap();
        assert_eq!(a.as_str(), Some("b=c"));
        assert!(
            parse_set("jobs.build[os=linux].timeout=5s")
                .unwrap_err()
                .contains("for all its expansions: `jobs.build.…`")
        );
    }
}
