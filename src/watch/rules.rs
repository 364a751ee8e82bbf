//! Which changes start a rerun, and which folders must be watched to see them.
//!
//! A change counts when it is to a pipeline file (always), or when it matches a job's
//! `inputs` and nothing ignores it. Ignored: anything in `.git`, the history database and
//! its `-wal`/`-shm`/`-journal` files and run journals, every `log_dir` and the folders exe
//! makes to hold them and the history, every job's `outputs` (and what is below them), and
//! what the repository's `.gitignore` files ignore. So a job that writes
//! its outputs, or exe writing logs and history, never starts a rerun.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use glob::Pattern;
use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::globs::{self, MATCH};
use crate::model::Pipeline;

/// A folder to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// Its absolute path.
    pub path: PathBuf,
    /// Whether its sub-folders are watched too.
    pub recursive: bool,
}

/// What the watch looks at and what it ignores, for one loaded pipeline.
#[derive(Debug)]
pub struct Rules {
    files: BTreeSet<PathBuf>,
    inputs: Vec<Pattern>,
    outputs: Vec<Pattern>,
    log_dirs: Vec<PathBuf>,
    /// The history database's folder and file name; its `-wal`/`-shm` files share the name.
    db: (PathBuf, OsString),
    /// Input folders that did not exist: creating one (or a folder above it) counts.
    missing: Vec<PathBuf>,
    /// Where `.gitignore` files are looked for, from a changed path up to here.
    repo: PathBuf,
    /// The working folder (or the pipeline file's): the folders exe makes are below it.
    root: PathBuf,
    gitignores: HashMap<PathBuf, Option<Gitignore>>,
    folders: Vec<Folder>,
}

impl Rules {
    /// The rules for `pipeline` (`None` when it could not be loaded: then only its files
    /// count), read from `files`, with the history at `db`.
    pub fn new(pipeline: Option<&Pipeline>, files: &[PathBuf], db: &Path) -> Self {
        let files: BTreeSet<PathBuf> = files.iter().map(|f| globs::resolve(f)).collect();
        let mut wanted: BTreeMap<PathBuf, bool> = BTreeMap::new();
        for file in &files {
            let folder = file.parent().unwrap_or(Path::new("/"));
            wanted
                .entry(globs::existing_ancestor(folder).to_path_buf())
                .or_default();
        }
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut log_dirs = Vec::new();
        let mut missing = Vec::new();
        let mut dirs = Vec::new();
        if let Some(pipeline) = pipeline {
            dirs.push(&pipeline.working_dir);
            log_dirs.push(globs::resolve(&pipeline.log_dir));
            for job in &pipeline.jobs {
                log_dirs.push(globs::resolve(&job.log_dir));
                for text in &job.inputs {
                    let Some(glob) = globs::absolute(&pipeline.working_dir, text) else {
                        continue;
                    };
                    let at = globs::existing_ancestor(&glob.base).to_path_buf();
                    if at == glob.base {
                        *wanted.entry(at).or_default() |= glob.recursive;
                    } else {
                        missing.push(glob.base.clone());
                        wanted.entry(at).or_default();
                    }
                    inputs.push(glob.pattern);
                }
                outputs.extend(
                    job.outputs
                        .iter()
                        .filter_map(|text| globs::absolute(&pipeline.working_dir, text))
                        .map(|glob| glob.pattern),
                );
            }
        }
        let db = globs::resolve(db);
        let db = (
            db.parent().unwrap_or(Path::new("/")).to_path_buf(),
            db.file_name().unwrap_or_default().to_owned(),
        );
        let start = dirs
            .first()
            .map(|d| globs::resolve(d))
            .or_else(|| {
                files
                    .first()
                    .and_then(|f| f.parent())
                    .map(Path::to_path_buf)
            })
            .unwrap_or_default();
        Rules {
            folders: fold(wanted),
            files,
            inputs,
            outputs,
            log_dirs,
            db,
            missing,
            repo: repository_root(&start),
            root: start,
            gitignores: HashMap::new(),
        }
    }

    /// The folders to watch: none inside another one watched recursively.
    pub fn folders(&self) -> &[Folder] {
        &self.folders
    }

    /// The pipeline files.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(PathBuf::as_path)
    }

    /// Whether a change to `path` (absolute, as an event names it) starts a rerun.
    pub fn triggers(&mut self, path: &Path) -> bool {
        // A pipeline file, or a folder above one: made again (a checkout, a regenerated
        // folder), it must be looked into and watched again.
        if self.files.iter().any(|f| f.starts_with(path)) {
            return true;
        }
        let counts = self.inputs.iter().any(|p| p.matches_path_with(path, MATCH))
            || self.missing.iter().any(|m| m.starts_with(path));
        counts && !self.ignored(path)
    }

    fn ignored(&mut self, path: &Path) -> bool {
        path.components().any(|c| c.as_os_str() == ".git")
            || self.is_history(path)
            || self.made_by_exe(path)
            || self.log_dirs.iter().any(|d| path.starts_with(d))
            || path.ancestors().any(|p| {
                self.outputs
                    .iter()
                    .any(|pattern| pattern.matches_path_with(p, MATCH))
            })
            || self.gitignored(path)
    }

    /// Whether `path` is a folder exe makes to hold its logs or its history (`.exe` itself,
    /// made at a run's start when the history is elsewhere): a folder above a `log_dir`, or
    /// the history's folder or one above it, below the working folder. Not when an input
    /// folder that did not exist is below it: making that counts.
    fn made_by_exe(&self, path: &Path) -> bool {
        path.starts_with(&self.root)
            && path != self.root
            && (self.log_dirs.iter().any(|d| d.starts_with(path)) || self.db.0.starts_with(path))
            && !self.missing.iter().any(|m| m.starts_with(path))
    }

    fn is_history(&self, path: &Path) -> bool {
        let (dir, name) = &self.db;
        path.parent() == Some(dir.as_path())
            && path.file_name().is_some_and(|n| {
                n == name
                    || n.to_string_lossy()
                        .strip_prefix(&*name.to_string_lossy())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
    }

    /// Whether the `.gitignore` files between `path` and the repository root ignore it: the
    /// deepest file that has a say decides, as in git.
    fn gitignored(&mut self, path: &Path) -> bool {
        if !path.starts_with(&self.repo) {
            return false;
        }
        let is_dir = path.is_dir();
        for dir in path.ancestors().skip(1) {
            let at_root = dir == self.repo;
            let matcher = self
                .gitignores
                .entry(dir.to_path_buf())
                .or_insert_with(|| read_gitignore(dir, at_root));
            if let Some(matcher) = matcher {
                match matcher.matched_path_or_any_parents(path, is_dir) {
                    Match::None => {}
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => return false,
                }
            }
            if dir == self.repo {
                break;
            }
        }
        false
    }
}

/// The folders to watch: a folder inside one watched recursively is left out.
fn fold(wanted: BTreeMap<PathBuf, bool>) -> Vec<Folder> {
    let mut folders: Vec<Folder> = Vec::new();
    // Sorted, so a folder comes after every folder above it.
    for (path, recursive) in wanted {
        let covered = folders
            .iter()
            .any(|f| f.recursive && path.starts_with(&f.path));
        if !covered {
            folders.push(Folder { path, recursive });
        }
    }
    folders
}

/// The git repository `dir` is in (the nearest folder above it with a `.git`), or `dir`.
fn repository_root(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(dir)
        .to_path_buf()
}

/// The `.gitignore` of `dir` (and, at the repository root, `.git/info/exclude` under it).
fn read_gitignore(dir: &Path, root: bool) -> Option<Gitignore> {
    let mut builder = GitignoreBuilder::new(dir);
    let mut any = false;
    let exclude = dir.join(".git/info/exclude");
    for file in [exclude.as_path(), &dir.join(".gitignore")] {
        if (root || file != exclude) && file.is_file() {
            // A line that is not a valid pattern is skipped, as git does.
            let _ = builder.add(file);
            any = true;
        }
    }
    builder.build().ok().filter(|g| any && !g.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::{LoadOptions, load_text};
    use crate::source::Format;
    use crate::validate::{Options, validate};

    /// A sandbox with a pipeline of `text` in it, and the rules for it.
    fn rules(text: &str) -> (tempfile::TempDir, PathBuf, Rules) {
        rules_with_history(text, ".exe/history.db")
    }

    /// [`rules`] with the history at `db`, under the sandbox.
    fn rules_with_history(text: &str, db: &str) -> (tempfile::TempDir, PathBuf, Rules) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        let file = root.join("p.toml");
        std::fs::write(&file, text).unwrap();
        let (doc, _) = load_text(
            &file,
            text.to_owned(),
            Format::Toml,
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let pipeline = validate(&doc, &Options::default()).0.unwrap();
        let rules = Rules::new(Some(&pipeline), &[file], &root.join(db));
        (dir, root, rules)
    }

    const SELF_WRITING: &str = r#"
log_dir = "src/logs"
[jobs.gen]
command = "true"
inputs = ["src/**"]
outputs = ["src/gen.txt", "src/out"]
"#;

    #[test]
    fn inputs_count_and_what_exe_or_the_job_writes_does_not() {
        let (_dir, root, mut rules) = rules(SELF_WRITING);
        assert!(rules.triggers(&root.join("p.toml")));
        assert!(rules.triggers(&root.join("src/a.c")));
        assert!(rules.triggers(&root.join("src/deep/new.c")));
        assert!(!rules.triggers(&root.join("other.c")), "not an input");
        assert!(!rules.triggers(&root.join("src/gen.txt")), "an output");
        assert!(
            !rules.triggers(&root.join("src/out/x/y.txt")),
            "below an output"
        );
        assert!(
            !rules.triggers(&root.join("src/logs/1/gen.log")),
            "in log_dir"
        );
    }

    #[test]
    fn the_history_and_git_are_ignored() {
        let (_dir, root, mut rules) = rules("[jobs.a]\ncommand = \"true\"\ninputs = [\"**\"]\n");
        assert!(rules.triggers(&root.join("src/a.c")));
        for name in [
            "history.db",
            "history.db-wal",
            "history.db-shm",
            "history.db-journal",
        ] {
            assert!(!rules.triggers(&root.join(".exe").join(name)), "{name}");
        }
        assert!(rules.triggers(&root.join(".exe/history.dbx")));
        assert!(!rules.triggers(&root.join(".git/index")));
        // The folder exe makes for its logs and history, made at a run's start.
        assert!(!rules.triggers(&root.join(".exe")));
        assert_eq!(
            rules.folders(),
            [Folder {
                path: root.clone(),
                recursive: true
            }]
        );
    }

    #[test]
    fn folders_exe_makes_for_logs_and_history_are_ignored_unless_an_input_awaits_below() {
        let text = "log_dir = \"data/logs\"\n[jobs.a]\ncommand = \"true\"\n\
                    inputs = [\"**/*\", \"data/in/**\"]\n";
        let (_dir, root, mut rules) = rules_with_history(text, "h/x.db");
        assert!(rules.triggers(&root.join("src/a.c")));
        assert!(
            rules.triggers(&root.join("stuff")),
            "a folder of the user's"
        );
        // The history's folder, made when it is opened.
        assert!(!rules.triggers(&root.join("h")));
        // `data` is above the log folder, but also above `data/in`, an input folder that
        // does not exist yet: making it counts.
        assert!(rules.triggers(&root.join("data")));
        let (_dir, root, mut rules) = rules_with_history(
            "[jobs.a]\ncommand = \"true\"\ninputs = [\"**/*\"]\n",
            "h/x.db",
        );
        // `.exe`, made at a run's start for the logs when the history is elsewhere.
        assert!(!rules.triggers(&root.join(".exe")));
        assert!(rules.triggers(&root.join("exe")));
    }

    #[test]
    fn gitignore_files_decide_deepest_first() {
        let (_dir, root, mut rules) =
            rules("[jobs.a]\ncommand = \"true\"\ninputs = [\"src/**\"]\n");
        std::fs::write(root.join(".gitignore"), "*.tmp\nbuild/\n").unwrap();
        std::fs::write(root.join("src/deep/.gitignore"), "!keep.tmp\n").unwrap();
        std::fs::create_dir_all(root.join(".git/info")).unwrap();
        std::fs::write(root.join(".git/info/exclude"), "*.bak\n").unwrap();
        assert!(!rules.triggers(&root.join("src/a.bak")));
        assert!(!rules.triggers(&root.join("src/x.tmp")));
        assert!(!rules.triggers(&root.join("src/build/a.c")));
        assert!(rules.triggers(&root.join("src/deep/keep.tmp")));
        assert!(rules.triggers(&root.join("src/a.c")));
    }

    #[test]
    fn input_folders_are_watched_at_their_depth_and_missing_ones_above() {
        let (_dir, root, mut rules) = rules(
            r#"
[jobs.a]
command = "true"
inputs = ["src/*.c", "src/deep/**/*.h", "gen/sub/*.txt", "README.md"]
"#,
        );
        let folders: Vec<(PathBuf, bool)> = rules
            .folders()
            .iter()
            .map(|f| {
                (
                    f.path.strip_prefix(&root).unwrap().to_path_buf(),
                    f.recursive,
                )
            })
            .collect();
        assert_eq!(
            folders,
            [
                (PathBuf::new(), false),
                (PathBuf::from("src"), false),
                (PathBuf::from("src/deep"), true),
            ]
        );
        // Creating the missing `gen` (or `gen/sub`) counts: its inputs appear with it.
        assert!(rules.triggers(&root.join("gen")));
        assert!(rules.triggers(&root.join("gen/sub")));
        assert!(!rules.triggers(&root.join("gone")));
        assert!(rules.triggers(&root.join("README.md")));
        assert!(!rules.triggers(&root.join("src/a.h")));
    }

    #[test]
    fn a_broken_pipeline_still_watches_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let mut rules = Rules::new(None, &[root.join("p.toml")], &root.join("h.db"));
        assert!(rules.triggers(&root.join("p.toml")));
        assert!(!rules.triggers(&root.join("q.toml")));
        assert_eq!(rules.folders().len(), 1);
    }
}
