//! `exe plan --explain PATH`: the value in force at a key path and where it came from.
//!
//! A value comes from a file (the pipeline or an included file, possibly inside the
//! selected profile), an `EXE_*` environment variable, a `--set` flag, or nowhere (the
//! built-in default). A job field may also reach the job from a template it `extends` or
//! from `defaults`, in the order validation merges them: the job's own field, then its
//! templates (last named first), then `defaults`. The path is checked against the format's
//! JSON Schema, so a misspelt key gets a "did you mean" instead of "not set".
//!
//! Values are shown as written (before templating), with secrets masked.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use crate::diagnostic::{At, Diagnostic, did_you_mean, position};
use crate::job_ref::JobRef;
use crate::load::{Document, dotted, split_path};
use crate::model::Pipeline;
use crate::plan::{duration_text, tidy_path};
use crate::secrets::{MASK, Masker, is_secret_name};
use crate::spec::RetryStatus;

/// Where an explained value was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file: the pipeline itself, or a file it includes.
    File {
        /// The file, as the user should read it.
        file: PathBuf,
        /// 1-based line and column of the value, when known.
        position: Option<(usize, usize)>,
        /// Whether the file is an include rather than the pipeline file.
        included: bool,
    },
    /// An `EXE_*` environment variable (its name).
    Env(String),
    /// A `--set` flag (as typed).
    Flag(String),
    /// Nothing sets it: the built-in default.
    Default,
}

/// How a job received a field it does not set itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// From the named template (`extends`).
    Template(String),
    /// From the top-level `defaults`.
    Defaults,
}

/// The answer to one `--explain PATH`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The key path, written as messages write it (`jobs.build.timeout`).
    pub path: String,
    /// The value in force, as written, secrets masked; for [`Source::Default`] the
    /// built-in default (`null`: none, or not known here).
    pub value: Value,
    /// Where it was set.
    pub source: Source,
    /// The selected profile, when the value was written inside it.
    pub profile: Option<String>,
    /// How a job field reached the job, when not from the job itself.
    pub via: Option<Via>,
    /// The templates and `defaults` whose same map was merged under a map value, in the
    /// order of precedence.
    pub merged_with: Vec<Via>,
    /// The `EXE_*` variables and `--set` flags that add to a map value over where it was
    /// written, in the order they were merged.
    pub overlaid_by: Vec<String>,
}

/// Answers `--explain` questions about one loaded document.
pub struct Explainer<'a> {
    doc: &'a Document,
    pipeline: &'a Pipeline,
    profile: Option<&'a str>,
    masker: &'a Masker,
    /// The merged spec as JSON: the values in force, and which keys exist.
    spec: Value,
    /// The format's JSON Schema: which keys could exist.
    schema: Value,
}

impl<'a> Explainer<'a> {
    /// An explainer for `doc` (loaded with `profile`), validated as `pipeline`.
    pub fn new(
        doc: &'a Document,
        pipeline: &'a Pipeline,
        profile: Option<&'a str>,
        masker: &'a Masker,
    ) -> Self {
        Explainer {
            doc,
            pipeline,
            profile,
            masker,
            spec: serde_json::to_value(&doc.spec).unwrap_or(Value::Null),
            schema: serde_json::from_str(&crate::spec::json_schema()).unwrap_or(Value::Null),
        }
    }

    /// Explains one key path, or says why it names nothing.
    pub fn explain(&self, text: &str) -> Result<Explanation, Diagnostic> {
        let Some(mut parts) = split_path(text) else {
            return Err(Diagnostic::error(
                "exe::cli::invalid_explain",
                format!("`--explain {text}`: not a key path"),
            )
            .help("write a key path like `max_parallel` or `jobs.build.timeout`"));
        };
        // A matrix expansion's fields are the matrix job's fields.
        if parts.len() >= 2 && parts[0] == "jobs" && parts[1].contains('[') {
            let reference = JobRef::parse(&parts[1]);
            let ids = || self.pipeline.jobs.iter().map(|j| j.id.0.as_str());
            if ids().any(|id| reference.names(id)) {
                let name = reference.name().to_owned();
                parts[1] = name;
            } else if let Some(help) = reference.miss(ids()) {
                return Err(Diagnostic::error(
                    "exe::cli::unknown_explain",
                    format!("`--explain {text}`: there is no job `{}`", parts[1]),
                )
                .help(help));
            }
        }
        self.check(&parts).map_err(|(message, help)| {
            let d = Diagnostic::error(
                "exe::cli::unknown_explain",
                format!("`--explain {text}`: {message}"),
            );
            match help {
                Some(help) => d.help(help),
                None => d,
            }
        })?;
        let candidates = self.candidates(&parts);
        for (i, (candidate, via)) in candidates.iter().enumerate() {
            let Some(value) = lookup(&self.spec, candidate) else {
                continue;
            };
            // A map (`retry`, `env`) is merged with the same map of the templates and
            // `defaults` below it, as validation merges them: shown as it is in force.
            let mut value = value.clone();
            let mut merged_with = Vec::new();
            for (lower, lower_via) in &candidates[i + 1..] {
                if let (Value::Object(_), Some(base @ Value::Object(_)), Some(lower_via)) =
                    (&value, lookup(&self.spec, lower), lower_via)
                {
                    value = merge_under(&value, base);
                    merged_with.push(lower_via.clone());
                }
            }
            let secret = candidate.iter().any(|p| is_secret_name(p));
            let value = mask_json(&value, secret, self.masker);
            let locate = |path: &[String]| self.doc.provenance.locate(&[path.to_vec()]);
            // A list of one written as its value (`extends = "t"`): item 0 is the value.
            let at = locate(candidate).or_else(|| match candidate.split_last() {
                Some((last, parent)) if last == "0" => locate(parent),
                _ => None,
            });
            let source = match at {
                Some(At::Span { source, span }) => {
                    let pos = position(&source.text, span.start);
                    Source::File {
                        included: source.path != self.doc.main.path,
                        file: source.path.clone(),
                        position: Some((pos.line, pos.column)),
                    }
                }
                Some(At::File(file)) => Source::File {
                    included: file != self.doc.main.path,
                    file,
                    position: None,
                },
                Some(At::Env(var)) => Source::Env(var),
                Some(At::Flag(flag)) => Source::Flag(flag),
                None => Source::Default,
            };
            let profile = match (&source, self.profile) {
                (Source::File { .. }, Some(name)) => {
                    let inside: Vec<String> = ["profiles", name]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .chain(candidate.iter().cloned())
                        .collect();
                    lookup(&self.spec, &inside).map(|_| name.to_owned())
                }
                _ => None,
            };
            return Ok(Explanation {
                path: dotted(&parts),
                value,
                source,
                profile,
                via: via.clone(),
                merged_with,
                overlaid_by: self.doc.provenance.overlays(candidate),
            });
        }
        Ok(Explanation {
            path: dotted(&parts),
            value: self.default_value(&parts),
            source: Source::Default,
            profile: None,
            via: None,
            merged_with: Vec::new(),
            overlaid_by: Vec::new(),
        })
    }

    /// The paths a value may have been written at, highest precedence first.
    fn candidates(&self, parts: &[String]) -> Vec<(Vec<String>, Option<Via>)> {
        let mut out = vec![(parts.to_vec(), None)];
        if parts.len() < 3 || parts[0] != "jobs" {
            return out;
        }
        let field = &parts[2..];
        let extends = lookup(&self.spec, &parts[..2])
            .and_then(|job| job.get("extends"))
            .or_else(|| self.spec.get("defaults").and_then(|d| d.get("extends")));
        let templates = self.spec.get("templates").and_then(Value::as_object);
        let mut chain = Vec::new();
        if let (Some(extends), Some(templates)) = (extends, templates) {
            template_chain(templates, &names(extends), &mut chain, 0);
        }
        for name in chain.into_iter().rev() {
            let path = ["templates".to_owned(), name.clone()]
                .into_iter()
                .chain(field.iter().cloned())
                .collect();
            out.push((path, Some(Via::Template(name))));
        }
        let path = std::iter::once("defaults".to_owned())
            .chain(field.iter().cloned())
            .collect();
        out.push((path, Some(Via::Defaults)));
        out
    }

    /// The value at `path`, inside a job's field, as a template the job extends or
    /// `defaults` gives it (`jobs.a.env.A` from `defaults.env.A`).
    fn inherited(&self, path: &[String]) -> Option<&Value> {
        if path.len() < 4 || path[0] != "jobs" {
            return None;
        }
        (self.candidates(path).iter().skip(1)).find_map(|(at, _)| lookup(&self.spec, at))
    }

    /// Does the path name a key the format knows, and every map entry on the way exist?
    fn check(&self, parts: &[String]) -> Result<(), (String, Option<String>)> {
        let mut schema = &self.schema;
        let mut value = Some(&self.spec);
        for (i, part) in parts.iter().enumerate() {
            let here = &parts[..i];
            let shapes = resolve(&self.schema, schema);
            let known: Vec<&str> = shapes
                .iter()
                .filter_map(|s| s.get("properties").and_then(Value::as_object))
                .flat_map(|p| p.keys().map(String::as_str))
                .collect();
            if let Some(next) = shapes
                .iter()
                .find_map(|s| s.get("properties").and_then(|p| p.get(part)))
            {
                schema = next;
                value = value.and_then(|v| v.get(part));
                continue;
            }
            let entries = shapes
                .iter()
                .find_map(|s| match s.get("additionalProperties") {
                    Some(Value::Bool(true)) => Some(None),
                    Some(sub @ Value::Object(_)) => Some(Some(sub)),
                    _ => None,
                });
            if let Some(entry_schema) = entries {
                // A map (jobs, env, vars, ...): the entry must exist to be explained.
                let existing = value.and_then(Value::as_object);
                let found = existing.and_then(|m| m.get(part));
                // An entry of a job's map field may come from a template or `defaults`.
                let found = found.or_else(|| self.inherited(&parts[..=i]));
                let Some(found) = found else {
                    let keys = existing
                        .into_iter()
                        .flat_map(|m| m.keys().map(String::as_str));
                    let what = if here.is_empty() {
                        "the top level".to_owned()
                    } else {
                        format!("`{}`", dotted(here))
                    };
                    let keys: Vec<&str> = keys.collect();
                    // `jobs.deploy.prod.timeout` for the job `deploy.prod`.
                    let quoted = (i + 2..=parts.len()).find_map(|end| {
                        let key = parts[i..end].join(".");
                        keys.contains(&key.as_str()).then(|| {
                            let path: Vec<String> = (here
                                .iter()
                                .cloned()
                                .chain([key])
                                .chain(parts[end..].iter().cloned()))
                            .collect();
                            format!("a key with dots is quoted: `{}`", dotted(&path))
                        })
                    });
                    let help = quoted
                        .or_else(|| did_you_mean(part, keys.iter().copied()))
                        .or_else(|| {
                            match keys.len() {
                                0 => None,
                                // A short list helps; a 100,000-job list does not.
                                1..=12 => Some(format!("{what} has: {}", keys.join(", "))),
                                n => Some(format!("{what} has {n} entries; none is close")),
                            }
                        });
                    return Err((format!("there is no `{part}` in {what}"), help));
                };
                match entry_schema {
                    // Free-form values (`vars`, `with`): anything below exists or not.
                    None => {
                        return if lookup(found, &parts[i + 1..]).is_some() {
                            Ok(())
                        } else {
                            Err((format!("`{}` is not set", dotted(parts)), None))
                        };
                    }
                    Some(sub) => {
                        schema = sub;
                        value = Some(found);
                        continue;
                    }
                }
            }
            if let Some(items) = shapes.iter().find_map(|s| s.get("items"))
                && let Ok(index) = part.parse::<usize>()
            {
                if let Some(Value::Array(list)) = value
                    && index >= list.len()
                {
                    let items = if list.len() == 1 { "item" } else { "items" };
                    return Err((
                        format!(
                            "there is no item {index} in `{}`: it has {} {items}, from 0",
                            dotted(here),
                            list.len()
                        ),
                        None,
                    ));
                }
                schema = items;
                value = value.and_then(|v| v.get(index));
                continue;
            }
            let what = if here.is_empty() {
                "the pipeline".to_owned()
            } else {
                format!("`{}`", dotted(here))
            };
            let help = if known.is_empty() {
                Some(format!("`{}` has no keys below it", dotted(here)))
            } else {
                did_you_mean(part, known.iter().copied())
                    .or_else(|| Some(format!("keys here: {}", known.join(", "))))
            };
            return Err((format!("`{part}` is not a key of {what}"), help));
        }
        Ok(())
    }

    /// The built-in default of a key nothing sets, from the validated pipeline where it
    /// keeps one; `null` for none.
    fn default_value(&self, parts: &[String]) -> Value {
        let p = self.pipeline;
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        match parts.as_slice() {
            ["name"] => json!(p.name),
            ["working_dir"] => json!(tidy_path(&p.working_dir)),
            ["log_dir"] => json!(".exe/logs"),
            ["max_parallel"] => json!(1),
            ["continue_on_error"] => json!(false),
            ["inherit_env"] => json!(true),
            ["security_policy"] => json!("warn"),
            ["version"] => json!(crate::spec::FORMAT_VERSION),
            ["jobs", id, field @ ..] => {
                let Some(job) = p
                    .jobs
                    .iter()
                    .find(|j| j.id.0 == *id || j.id.0.split('[').next() == Some(id))
                else {
                    return Value::Null;
                };
                let r = &job.retry;
                match field {
                    ["timeout"] => json!(job.timeout.map(duration_text)),
                    ["timeout_grace"] => json!(duration_text(job.timeout_grace)),
                    ["priority"] => json!(job.priority),
                    ["needs" | "pre_checks" | "post_checks" | "inputs" | "outputs"] => json!([]),
                    ["when"] => json!(true),
                    ["retry", "max"] => json!(r.max),
                    ["retry", "delay"] => json!(duration_text(r.delay)),
                    ["retry", "backoff"] => json!(r.backoff),
                    ["retry", "jitter"] => json!(r.jitter),
                    ["retry", "max_time"] => json!(r.max_time.map(duration_text)),
                    ["retry", "on_exit_codes"] => json!(r.on_exit_codes),
                    ["retry", "on_status"] => json!(
                        r.on_status
                            .iter()
                            .map(|s| match s {
                                RetryStatus::Failed => "FAILED",
                                RetryStatus::Timeout => "TIMEOUT",
                            })
                            .collect::<Vec<_>>()
                    ),
                    _ => Value::Null,
                }
            }
            _ => Value::Null,
        }
    }
}

/// The templates a job extends, base-most first, each once (validation's merge order).
fn template_chain(
    templates: &Map<String, Value>,
    list: &[String],
    out: &mut Vec<String>,
    depth: usize,
) {
    // Validation has rejected cycles; the depth bound only keeps a bug from recursing forever.
    if depth > 64 {
        return;
    }
    for name in list {
        if out.contains(name) {
            continue;
        }
        if let Some(parent) = templates.get(name).and_then(|t| t.get("extends")) {
            template_chain(templates, &names(parent), out, depth + 1);
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
}

/// A string-or-list value as a list.
fn names(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The schemas a schema stands for: `$ref`s followed, `anyOf`/`oneOf`/`allOf` flattened.
fn resolve<'s>(root: &'s Value, schema: &'s Value) -> Vec<&'s Value> {
    let mut out = Vec::new();
    let mut pending = vec![schema];
    // Bounded: a schema that refers to itself through `anyOf` would otherwise loop.
    while let Some(s) = pending.pop() {
        if out.len() > 64 {
            break;
        }
        if let Some(reference) = s.get("$ref").and_then(Value::as_str) {
            let target = match reference.strip_prefix("#/$defs/") {
                Some(name) => root.get("$defs").and_then(|d| d.get(name)),
                None if reference == "#" => Some(root),
                None => None,
            };
            pending.extend(target);
            continue;
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(list) = s.get(key).and_then(Value::as_array) {
                pending.extend(list.iter().rev());
            }
        }
        out.push(s);
    }
    out
}

/// The value at a key path of a JSON document (list items by index).
fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut value = root;
    for part in path {
        value = match value {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

/// `top` with what `base` has that it lacks, maps merged at every depth (lists and other
/// values are taken from `top` whole), as a job's own fields are merged over a template's.
fn merge_under(top: &Value, base: &Value) -> Value {
    match (top, base) {
        (Value::Object(top), Value::Object(base)) => {
            let mut out = base.clone();
            for (key, value) in top {
                let merged = match base.get(key) {
                    Some(under) => merge_under(value, under),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (top, _) => top.clone(),
    }
}

/// A copy of `value` safe to show: whole when `secret`, else every string masked and
/// every entry under a secret name replaced.
fn mask_json(value: &Value, secret: bool, masker: &Masker) -> Value {
    match value {
        _ if secret => json!(MASK),
        Value::String(s) => Value::String(masker.mask(s).into_owned()),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| mask_json(v, false, masker)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask_json(v, is_secret_name(k), masker)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `  path = value` and `    from where`, for the text plan.
pub fn render_text(e: &Explanation) -> String {
    let mut value = match &e.value {
        Value::Null => "none".to_owned(),
        v => serde_json::to_string(v).unwrap_or_default(),
    };
    if value.chars().count() > 100 {
        value = value.chars().take(99).collect::<String>() + "…";
    }
    format!("  {} = {value}\n    {}\n", e.path, origin_text(e))
}

/// "from pipeline.toml:3:16 (profile `ci`), via template `base`", "default (nothing sets it)".
fn origin_text(e: &Explanation) -> String {
    let mut text = match &e.source {
        Source::File {
            file,
            position,
            included,
        } => {
            let kind = if *included { "included file " } else { "" };
            let at = match position {
                Some((line, column)) => format!("{}:{line}:{column}", file.display()),
                None => file.display().to_string(),
            };
            format!("from {kind}{at}")
        }
        Source::Env(var) if var.contains(", ") => format!("from environment variables {var}"),
        Source::Env(var) => format!("from environment variable {var}"),
        Source::Flag(flag) => format!("from {flag}"),
        Source::Default => return "default (nothing sets it)".to_owned(),
    };
    if let Some(profile) = &e.profile {
        text.push_str(&format!(" (profile `{profile}`)"));
    }
    match &e.via {
        Some(Via::Template(name)) => text.push_str(&format!(", via template `{name}`")),
        Some(Via::Defaults) => text.push_str(", via `defaults`"),
        None => {}
    }
    if !e.merged_with.is_empty() {
        let under: Vec<String> = (e.merged_with.iter())
            .map(|via| match via {
                Via::Template(name) => format!("template `{name}`"),
                Via::Defaults => "`defaults`".to_owned(),
            })
            .collect();
        text.push_str(&format!(", merged with {}", under.join(" and ")));
    }
    if !e.overlaid_by.is_empty() {
        text.push_str(&format!(", with {} added", e.overlaid_by.join(" and ")));
    }
    text
}

/// One explanation in `--format json`.
pub fn to_json(e: &Explanation) -> Value {
    let mut out = Map::new();
    out.insert("path".into(), json!(e.path));
    out.insert("value".into(), e.value.clone());
    let (source, file, line, column, variable, flag) = match &e.source {
        Source::File {
            file,
            position,
            included,
        } => (
            if *included { "include" } else { "file" },
            Some(file.display().to_string()),
            position.map(|p| p.0),
            position.map(|p| p.1),
            None,
            None,
        ),
        Source::Env(var) => ("env", None, None, None, Some(var.clone()), None),
        Source::Flag(f) => ("set", None, None, None, None, Some(f.clone())),
        Source::Default => ("default", None, None, None, None, None),
    };
    out.insert("source".into(), json!(source));
    out.insert("file".into(), json!(file));
    out.insert("line".into(), json!(line));
    out.insert("column".into(), json!(column));
    out.insert("variable".into(), json!(variable));
    out.insert("flag".into(), json!(flag));
    out.insert("profile".into(), json!(e.profile));
    let (via, template) = match &e.via {
        Some(Via::Template(name)) => (Some("template"), Some(name.clone())),
        Some(Via::Defaults) => (Some("defaults"), None),
        None => (None, None),
    };
    out.insert("via".into(), json!(via));
    out.insert("template".into(), json!(template));
    let merged: Vec<Value> = (e.merged_with.iter())
        .map(|via| match via {
            Via::Template(name) => json!({ "via": "template", "template": name }),
            Via::Defaults => json!({ "via": "defaults", "template": null }),
        })
        .collect();
    out.insert("merged_with".into(), json!(merged));
    out.insert("overlaid_by".into(), json!(e.overlaid_by));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_chains_put_the_base_first() {
        let templates: Map<String, Value> = serde_json::from_value(json!({
            "a": { "extends": "c" },
            "b": {},
            "c": { "extends": ["d"] },
            "d": {},
        }))
        .unwrap();
        let mut chain = Vec::new();
        template_chain(&templates, &["a".into(), "b".into()], &mut chain, 0);
        assert_eq!(chain, ["d", "c", "a", "b"]);
    }

    #[test]
    fn secrets_are_masked_in_explained_values() {
        let masker = Masker::new([("DB_PASSWORD", "hunter22")]);
        let value = json!({ "DB_PASSWORD": "hunter22", "URL": "pg://u:hunter22@h" });
        assert_eq!(
            mask_json(&value, false, &masker),
            json!({ "DB_PASSWORD": "***", "URL": "pg://u:***@h" })
        );
        assert_eq!(mask_json(&json!("x"), true, &masker), json!("***"));
    }

    #[test]
    fn maps_merge_at_every_depth_and_the_rest_is_taken_whole() {
        let top = json!({ "max": 5, "env": { "B": "2" }, "on": [1] });
        let base = json!({ "max": 3, "delay": "30s", "env": { "A": "1" }, "on": [2, 3] });
        assert_eq!(
            merge_under(&top, &base),
            json!({ "max": 5, "delay": "30s", "env": { "A": "1", "B": "2" }, "on": [1] })
        );
        assert_eq!(merge_under(&json!("x"), &base), json!("x"));
    }

    #[test]
    fn origins_read_as_a_phrase() {
        let e = Explanation {
            path: "jobs.a.timeout".into(),
            value: json!("5m"),
            source: Source::File {
                file: "common/t.toml".into(),
                position: Some((3, 11)),
                included: true,
            },
            profile: Some("ci".into()),
            via: Some(Via::Template("base".into())),
            merged_with: Vec::new(),
            overlaid_by: Vec::new(),
        };
        assert_eq!(
            render_text(&e),
            "  jobs.a.timeout = \"5m\"\n    from included file common/t.toml:3:11 (profile `ci`), via template `base`\n"
        );
        let e = Explanation {
            path: "vars".into(),
            value: json!({ "db": { "host": "h", "port": 1 } }),
            source: Source::File {
                file: "p.toml".into(),
                position: Some((1, 1)),
                included: false,
            },
            profile: None,
            via: None,
            merged_with: Vec::new(),
            overlaid_by: vec!["EXE_VARS__DB__PORT".into(), "--set vars.x=1".into()],
        };
        assert!(
            render_text(&e)
                .ends_with("from p.toml:1:1, with EXE_VARS__DB__PORT and --set vars.x=1 added\n"),
            "{}",
            render_text(&e)
        );
    }
}
