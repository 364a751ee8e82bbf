//! Where each value of the merged document came from: the layer that set it and, for a
//! file, the span it was written at.
//!
//! Only the parsed trees (and the small values of environment and flag layers) are kept,
//! not the merged document, which is as large as the pipeline: the layer that supplies a
//! key path is found by replaying figment's merge rule on that path alone (maps merge key
//! by key; any other value replaces what the earlier layers had there).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::value::Value as FValue;

use super::{diagnose, env_var_name, to_figment};
use crate::diagnostic::{At, Diagnostic};
use crate::source::{Node, SourceFile, Value};
use crate::spec::{PipelineSpec, legacy};

/// The layer a value came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A file (the main one or an include).
    File(Arc<SourceFile>),
    /// An `EXE_*` environment variable.
    Env(String),
    /// A `--set` flag.
    Flag(String),
}

/// One layer of the merged document.
#[derive(Debug)]
pub(super) enum Layer {
    /// A file, by its index in the trees.
    File(usize),
    /// A file in the older tool's format: its tree, the value it converts to, and each job
    /// id's index in its `jobs` array.
    Legacy {
        tree: usize,
        value: FValue,
        jobs: HashMap<String, usize>,
    },
    /// `profiles.<name>` of the files, merged.
    Profile,
    /// The `EXE_*` environment variables.
    Env(FValue),
    /// One `--set` flag.
    Flag { flag: String, value: FValue },
}

/// Answers "where did this value come from?" for any key path of the merged document.
#[derive(Debug)]
pub struct Provenance {
    pub(super) trees: Vec<(Arc<SourceFile>, Node)>,
    /// In merge order: later wins.
    pub(super) layers: Vec<Layer>,
    pub(super) profile: Option<String>,
}

/// What a layer holds at a key path.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    /// A map, merged key by key with the earlier layers' maps.
    Map,
    /// Any other value, which replaces what the earlier layers had.
    Other,
}

/// A file of the merged document, as [`Provenance::merged_files`] gives it.
pub(super) enum Merged<'a> {
    /// A file in the current format.
    Tree(&'a Node),
    /// A legacy file: each job id in exe, with its index in the file's `jobs` array.
    Legacy(&'a HashMap<String, usize>),
}

/// Where the value in force at a key path was written.
enum Source<'a> {
    /// In a file's tree, at this path of it (under `profiles.<name>` for a profile's value).
    Tree(usize, Vec<String>),
    /// In a legacy file's tree, through its job index.
    Legacy(usize, &'a HashMap<String, usize>),
    /// The `EXE_*` variables that set it (see [`env_names`]).
    Env(String),
    Flag(&'a str),
}

impl Provenance {
    /// The layer that supplied the value at `path` of the merged document.
    pub fn origin(&self, path: &[String]) -> Option<Origin> {
        Some(match self.source(path)? {
            Source::Tree(i, _) | Source::Legacy(i, _) => Origin::File(self.trees[i].0.clone()),
            Source::Env(names) => Origin::Env(names),
            Source::Flag(flag) => Origin::Flag(flag.to_owned()),
        })
    }

    /// Where the value at `path` was written: the first of `paths` that exists in the
    /// merged document is used (a job field may come from the job, a template or `defaults`).
    pub fn locate(&self, paths: &[Vec<String>]) -> Option<At> {
        self.locate_inner(paths, false)
    }

    /// Like [`Provenance::locate`], but points at the key rather than its value.
    pub fn locate_key(&self, paths: &[Vec<String>]) -> Option<At> {
        self.locate_inner(paths, true)
    }

    pub(crate) fn locate_inner(&self, paths: &[Vec<String>], key: bool) -> Option<At> {
        let in_file = |i: usize, path: Option<Vec<String>>| {
            let (source, tree) = &self.trees[i];
            match path.and_then(|p| span_in(tree, &p, key)) {
                Some(span) => At::Span {
                    source: source.clone(),
                    span,
                },
                None => At::File(source.path.clone()),
            }
        };
        let path = paths.iter().find_map(|p| Some((p, self.source(p)?)));
        Some(match path? {
            (_, Source::Tree(i, at)) => in_file(i, Some(at)),
            (path, Source::Legacy(i, jobs)) => in_file(i, legacy::source_path(path, jobs)),
            (_, Source::Env(names)) => At::Env(names),
            (_, Source::Flag(flag)) => At::Flag(flag.to_owned()),
        })
    }

    /// The files in the order they were merged (includes first): a file's tree, or a legacy
    /// file's job ids in exe, each with its index in the file's `jobs` array (exe renames the
    /// ids it cannot take, so the ids written in the tree are not all exe's).
    pub(super) fn merged_files(&self) -> impl Iterator<Item = Merged<'_>> {
        self.layers.iter().filter_map(|layer| match layer {
            Layer::File(i) => Some(Merged::Tree(&self.trees[*i].1)),
            Layer::Legacy { jobs, .. } => Some(Merged::Legacy(jobs)),
            _ => None,
        })
    }

    /// Where the value in force at `path` was written, if the merged document has one.
    fn source(&self, path: &[String]) -> Option<Source<'_>> {
        let all: Vec<usize> = (0..self.layers.len()).collect();
        let layer = self.base(&self.contributors(&all, path))?;
        if matches!(self.layers[layer], Layer::Profile) {
            let full = self.in_profile(path)?;
            let layer = self.supplier(&self.file_layers(), &full)?;
            return Some(self.file_source(layer, full));
        }
        Some(match &self.layers[layer] {
            Layer::Env(value) => Source::Env(env_names(value, path)),
            Layer::Flag { flag, .. } => Source::Flag(flag),
            _ => self.file_source(layer, path.to_vec()),
        })
    }

    /// Of the layers in play at a path (see [`Provenance::contributors`]), the one that
    /// wrote it: the last, unless that is an `EXE_*` variable or a `--set` adding to a map
    /// an earlier layer wrote. Then it is the last of those earlier layers, and the others
    /// are [`Provenance::overlays`].
    fn base(&self, live: &[usize]) -> Option<usize> {
        let last = *live.last()?;
        let overlay =
            |layer: usize| matches!(self.layers[layer], Layer::Env(_) | Layer::Flag { .. });
        if !overlay(last) {
            return Some(last);
        }
        Some(
            live.iter()
                .rev()
                .copied()
                .find(|&l| !overlay(l))
                .unwrap_or(last),
        )
    }

    /// The `EXE_*` variables and `--set` flags that add to the map at `path` over the layer
    /// that wrote it, in the order they were merged: none for a value that one layer set.
    pub fn overlays(&self, path: &[String]) -> Vec<String> {
        let all: Vec<usize> = (0..self.layers.len()).collect();
        let live = self.contributors(&all, path);
        let Some(base) = self.base(&live) else {
            return Vec::new();
        };
        (live.iter().skip_while(|&&l| l != base).skip(1))
            .filter_map(|&l| match &self.layers[l] {
                Layer::Env(value) => Some(env_names(value, path)),
                Layer::Flag { flag, .. } => Some(flag.clone()),
                _ => None,
            })
            .collect()
    }

    fn file_source(&self, layer: usize, path: Vec<String>) -> Source<'_> {
        match &self.layers[layer] {
            Layer::Legacy { tree, jobs, .. } => Source::Legacy(*tree, jobs),
            Layer::File(i) => Source::Tree(*i, path),
            _ => unreachable!("only file layers are passed"),
        }
    }

    fn file_layers(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| matches!(self.layers[i], Layer::File(_) | Layer::Legacy { .. }))
            .collect()
    }

    /// `path` under the selected profile: `profiles.<name>.<path>`.
    fn in_profile(&self, path: &[String]) -> Option<Vec<String>> {
        let name = self.profile.as_ref()?;
        Some(
            ["profiles".to_owned(), name.clone()]
                .into_iter()
                .chain(path.iter().cloned())
                .collect(),
        )
    }

    /// Which of `layers` (indexes in merge order) supplies the merged value at `path`.
    fn supplier(&self, layers: &[usize], path: &[String]) -> Option<usize> {
        self.contributors(layers, path).last().copied()
    }

    /// Which of `layers` (indexes in merge order) the merged value at `path` comes from, in
    /// merge order: one for a value, each that merges into it for a map.
    ///
    /// Walking down the path, the layers still in play at each depth are those holding a
    /// value there, from the last one back to (not including) the first that holds a
    /// non-map under a later map: that value was replaced. A non-map in the last layer in
    /// play replaces everything before it.
    fn contributors(&self, layers: &[usize], path: &[String]) -> Vec<usize> {
        let mut live = layers.to_vec();
        for depth in 0..=path.len() {
            let mut next = Vec::new();
            for &layer in live.iter().rev() {
                match self.held(layer, &path[..depth]) {
                    None => {}
                    Some(Held::Map) => next.push(layer),
                    Some(Held::Other) => {
                        if next.is_empty() {
                            next.push(layer);
                        }
                        break;
                    }
                }
            }
            next.reverse();
            live = next;
        }
        live
    }

    /// What `layer` holds at `path`, if anything.
    fn held(&self, layer: usize, path: &[String]) -> Option<Held> {
        let held_value = |v: &FValue| {
            if v.as_dict().is_some() {
                Held::Map
            } else {
                Held::Other
            }
        };
        match &self.layers[layer] {
            Layer::File(i) => self.trees[*i].1.find(path).map(|n| match n.value {
                Value::Map(_) => Held::Map,
                _ => Held::Other,
            }),
            Layer::Legacy { value, .. } | Layer::Env(value) | Layer::Flag { value, .. } => {
                find(value, path).map(held_value)
            }
            Layer::Profile => {
                let full = self.in_profile(path)?;
                let held = self.held(self.supplier(&self.file_layers(), &full)?, &full)?;
                // A profile that is not a map sets nothing.
                (!path.is_empty() || held == Held::Map).then_some(held)
            }
        }
    }

    /// The main file's own spec, without includes, profiles or other layers (for `migrate`).
    pub fn main_spec(&self) -> Result<PipelineSpec, Vec<Diagnostic>> {
        let Some((source, tree)) = self.trees.first() else {
            return Ok(PipelineSpec::default());
        };
        let mut spec: PipelineSpec = to_figment(tree).deserialize().map_err(|e| {
            let at = |path: &[String], key: bool| {
                let span = if key {
                    path.split_last()
                        .and_then(|(l, p)| tree.find(p)?.get_key(l))
                        .map(|k| k.span.clone())
                } else {
                    None
                };
                let span = span.or_else(|| tree.find(path).map(|n| n.span.clone()));
                Some(span.map_or_else(
                    || At::File(source.path.clone()),
                    |span| At::Span {
                        source: source.clone(),
                        span,
                    },
                ))
            };
            vec![diagnose(&e, &at)]
        })?;
        if let (Some(jobs), Some(Value::Map(order))) =
            (spec.jobs.as_mut(), tree.get("jobs").map(|j| &j.value))
        {
            let position: HashMap<&str, usize> = order
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.name.as_str(), i))
                .collect();
            jobs.sort_by_cached_key(|id, _| {
                position.get(id.as_str()).copied().unwrap_or(usize::MAX)
            });
        }
        Ok(spec)
    }

    /// Every file that was read, the main one included.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.trees.iter().map(|(source, _)| source.path.as_path())
    }

    /// The folder relative paths in the value at `path` are relative to: the folder of the
    /// file that set it, or the current folder for environment variables and flags.
    pub fn base_dir(&self, path: &[String]) -> Option<PathBuf> {
        match self.origin(path)? {
            Origin::File(source) => {
                Some(source.path.parent().unwrap_or(Path::new("")).to_path_buf())
            }
            Origin::Env(_) | Origin::Flag(_) => std::env::current_dir().ok(),
        }
    }
}

/// The `EXE_*` variables that set what the environment layer `env` holds at `path`: the
/// one variable for a value, each one below it for a map (`EXE_VARS__DB__PORT,
/// EXE_VARS__REGION`, where `EXE_VARS` itself was never set).
fn env_names(env: &FValue, path: &[String]) -> String {
    fn leaves(value: &FValue, path: &mut Vec<String>, names: &mut Vec<String>) {
        match value {
            FValue::Dict(_, dict) if !dict.is_empty() => {
                for (key, value) in dict {
                    path.push(key.clone());
                    leaves(value, path, names);
                    path.pop();
                }
            }
            _ => names.push(env_var_name(path)),
        }
    }
    let mut names = Vec::new();
    match find(env, path) {
        Some(value) => leaves(value, &mut path.to_vec(), &mut names),
        None => names.push(env_var_name(path)),
    }
    names.join(", ")
}

pub(super) fn find<'a>(root: &'a FValue, path: &[String]) -> Option<&'a FValue> {
    let mut value = root;
    for part in path {
        value = match value {
            FValue::Dict(_, dict) => dict.get(part)?,
            FValue::Array(_, items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

fn span_in(tree: &Node, path: &[String], key: bool) -> Option<std::ops::Range<usize>> {
    if key {
        let (last, parent) = path.split_last()?;
        if let Some(k) = tree.find(parent)?.get_key(last) {
            return Some(k.span.clone());
        }
    }
    tree.find(path).map(|n| n.span.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_text};
    use crate::source::Format;

    const TEXT: &str = r#"
[vars]
kept = 1
replaced = { inner = 1 }

[jobs.a]
command = "true"

[profiles.ci.vars]
from_profile = 2
"#;

    fn provenance(profile: Option<&str>, sets: &[&str]) -> Provenance {
        let options = LoadOptions {
            profile: profile.map(str::to_owned),
            sets: sets.iter().map(|s| (*s).to_owned()).collect(),
            use_env: false,
        };
        let (doc, _) = load_text(Path::new("p.toml"), TEXT.to_owned(), Format::Toml, &options)
            .unwrap_or_else(|e| panic!("{e:?}"));
        doc.provenance
    }

    fn path(dotted: &str) -> Vec<String> {
        dotted.split('.').map(str::to_owned).collect()
    }

    fn written(p: &Provenance, dotted: &str) -> Option<String> {
        match p.locate(&[path(dotted)])? {
            At::Span { source, span } => Some(source.text[span].to_owned()),
            other => Some(format!("{other:?}")),
        }
    }

    #[test]
    fn a_later_map_merges_and_a_later_value_replaces() {
        let p = provenance(None, &["vars.replaced=5", "vars.added=6"]);
        assert!(matches!(
            p.origin(&path("vars.kept")),
            Some(Origin::File(_))
        ));
        assert!(
            matches!(p.origin(&path("vars.replaced")), Some(Origin::Flag(f)) if f == "--set vars.replaced=5")
        );
        assert!(matches!(
            p.origin(&path("vars.added")),
            Some(Origin::Flag(_))
        ));
        // The map the flag replaced is gone from the merged document.
        assert!(p.origin(&path("vars.replaced.inner")).is_none());
        // The `vars` map itself was written in the file; the flags add to it.
        assert!(matches!(p.origin(&path("vars")), Some(Origin::File(_))));
        assert_eq!(
            p.overlays(&path("vars")),
            ["--set vars.replaced=5", "--set vars.added=6"]
        );
        assert!(p.overlays(&path("vars.kept")).is_empty());
        assert_eq!(written(&p, "vars.kept").as_deref(), Some("1"));
        assert!(p.origin(&path("vars.missing")).is_none());
    }

    #[test]
    fn profile_values_point_into_the_profile() {
        let p = provenance(Some("ci"), &[]);
        assert_eq!(written(&p, "vars.from_profile").as_deref(), Some("2"));
        assert_eq!(written(&p, "vars.kept").as_deref(), Some("1"));
        assert!(matches!(
            p.origin(&path("vars.from_profile")),
            Some(Origin::File(_))
        ));
        // Without the profile, its values are not in the merged document.
        assert!(
            provenance(None, &[])
                .origin(&path("vars.from_profile"))
                .is_none()
        );
    }
}
