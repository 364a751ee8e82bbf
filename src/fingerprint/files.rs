//! Which files a job's `inputs` name, and whether its `outputs` exist.
//!
//! Patterns are relative to the pipeline's working directory (an absolute one stays as it
//! is) and read like the shell's: `*`, `?` and `[...]` match within one path component and
//! not a leading `.`, so hidden files and folders (`.git`, `.exe`) match only a pattern that
//! names the dot; `**` matches any number of (non-hidden) folders. A directory an input
//! pattern matches stands for every non-hidden file below it. A pattern that matches
//! nothing adds nothing: a file it later matches is a new input. The list is sorted and
//! has no duplicates, whatever order the patterns come in, so equal inputs give an equal
//! fingerprint.
//!
//! exe's own files are never inputs: the history database with its side files
//! (`history.db-wal`, `-shm`, `-hashes`) and the log folders change on every run. Log
//! folders are not even walked, so a `**` beside thousands of old logs stays quick. A
//! job's own `outputs` are not its inputs either.
//!
//! A pattern is walked from its longest literal leading folder, only as deep as it can
//! match (any depth with `**`), without entering hidden folders unless a component of the
//! pattern starts with a dot; links are followed (a link loop is skipped).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use glob::{MatchOptions, Pattern};

/// Shell-like matching: no `/` and no leading `.` from a wildcard.
const SHELL: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: true,
};

/// Paths no input pattern may match.
#[derive(Debug, Clone, Default)]
pub struct Excluded {
    /// Files whose path starts with one of these (the history database and its side files).
    prefixes: Vec<PathBuf>,
    /// Folders never walked and whose contents are never inputs (log folders).
    folders: Arc<Vec<PathBuf>>,
}

impl Excluded {
    /// Excludes the history database `db` (and every file named like `db` with a suffix)
    /// and everything in `folders`.
    pub fn new(db: &Path, folders: impl IntoIterator<Item = PathBuf>) -> Excluded {
        let mut folders: Vec<PathBuf> = folders.into_iter().map(|f| absolute(&f)).collect();
        folders.sort_unstable();
        folders.dedup();
        Excluded {
            prefixes: vec![absolute(db)],
            folders: Arc::new(folders),
        }
    }

    fn contains(&self, path: &Path) -> bool {
        let text = path.as_os_str().as_bytes();
        self.prefixes
            .iter()
            .any(|p| text.starts_with(p.as_os_str().as_bytes()))
            || in_folders(&self.folders, path)
    }
}

/// Is `path` one of `folders` or below one? (By bytes: this runs for every path walked.)
fn in_folders(folders: &[PathBuf], path: &Path) -> bool {
    folders
        .iter()
        .any(|f| path == f || below(path, f).is_some())
}

/// `path` relative to `dir` when it is below it (`a/b` for `/x/a/b` below `/x`), compared
/// by bytes rather than by parsed components. Both are paths exe built, without `.` or
/// doubled separators.
pub fn below<'a>(path: &'a Path, dir: &Path) -> Option<&'a OsStr> {
    let dir = dir.as_os_str().as_bytes();
    let dir = dir.strip_suffix(b"/").unwrap_or(dir);
    let rest = path
        .as_os_str()
        .as_bytes()
        .strip_prefix(dir)?
        .strip_prefix(b"/")?;
    Some(OsStr::from_bytes(rest))
}

/// `path` made absolute against the current directory, without resolving links.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// One path a pattern matched.
struct Found {
    path: PathBuf,
    is_dir: bool,
}

/// The files `patterns` match under `base`, sorted, without duplicates, as absolute paths.
/// An error names a folder that could not be read or a pattern that is not a glob.
/// Files the job's own `outputs` name (or that are below a folder they name) are left
/// out: a job that writes into its own input folders would otherwise never be up to date.
pub fn inputs(
    base: &Path,
    patterns: &[String],
    outputs: &[String],
    excluded: &Excluded,
) -> Result<Vec<PathBuf>, String> {
    let base = absolute(base);
    let outputs: Vec<Pattern> = outputs
        .iter()
        .filter_map(|o| Pattern::new(&anchored(&base, o)).ok())
        .collect();
    let own_output = |path: &Path| {
        !outputs.is_empty()
            && path
                .ancestors()
                .any(|p| outputs.iter().any(|o| o.matches_path_with(p, SHELL)))
    };
    let mut files = Vec::new();
    for pattern in patterns {
        for found in matches(&base, pattern, excluded)? {
            if excluded.contains(&found.path) {
                continue;
            }
            if found.is_dir {
                for file in walk(&found.path, None, false, excluded, Vec::new())? {
                    if !file.is_dir && !excluded.contains(&file.path) {
                        files.push(file.path);
                    }
                }
            } else {
                files.push(found.path);
            }
        }
    }
    files.retain(|f| !own_output(f));
    // By bytes, not by `Path`'s component order, which parses both paths at every compare.
    files.sort_unstable_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    files.dedup();
    Ok(files)
}

/// `pattern` as an absolute pattern: under `base` (escaped: its `[` or `*` are literal)
/// unless it is absolute already.
fn anchored(base: &Path, pattern: &str) -> String {
    if Path::new(pattern).is_absolute() {
        pattern.to_owned()
    } else {
        let base = Pattern::escape(&base.to_string_lossy());
        format!("{}/{pattern}", base.trim_end_matches('/'))
    }
}

/// The `outputs` patterns that match no existing path (file, folder or link target).
pub fn missing_outputs<'a>(base: &Path, patterns: &'a [String]) -> Vec<&'a str> {
    let base = absolute(base);
    patterns
        .iter()
        .filter(|pattern| {
            matches(&base, pattern, &Excluded::default()).map_or(true, |found| found.is_empty())
        })
        .map(String::as_str)
        .collect()
}

fn has_wildcard(component: &str) -> bool {
    component.contains(['*', '?', '['])
}

/// What one pattern matches under `base` (see the module docs for how it is walked).
fn matches(base: &Path, pattern: &str, excluded: &Excluded) -> Result<Vec<Found>, String> {
    let invalid = |e: glob::PatternError| format!("invalid glob `{pattern}`: {}", e.msg);
    Pattern::new(pattern).map_err(invalid)?;
    // The base is a literal path: only the pattern's own components can be wildcards.
    let mut root = base.to_path_buf();
    let mut rest: Vec<String> = Vec::new();
    for component in Path::new(pattern).components() {
        if component == Component::CurDir {
            continue; // `./src/*.c` is `src/*.c`: one spelling, one set of paths
        }
        let text = component.as_os_str().to_string_lossy();
        if rest.is_empty() && !has_wildcard(&text) {
            root.push(component);
        } else {
            rest.push(text.into_owned());
        }
    }
    if rest.is_empty() {
        return Ok(match std::fs::metadata(&root) {
            Ok(meta) => vec![Found {
                path: root,
                is_dir: meta.is_dir(),
            }],
            Err(_) => Vec::new(),
        });
    }
    let rest_pattern = Pattern::new(&rest.join("/")).map_err(invalid)?;
    // Components before the first `**` each match one level: the walk prunes by them.
    let levels = rest
        .iter()
        .take_while(|c| !c.contains("**"))
        .map(|c| Pattern::new(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let depth = (levels.len() == rest.len()).then_some(rest.len());
    let dotted = rest.iter().any(|c| c.starts_with('.'));
    let mut found = walk(&root, depth, dotted, excluded, levels)?;
    found.retain(|f| {
        below(&f.path, &root)
            .and_then(OsStr::to_str)
            .is_some_and(|rel| rest_pattern.matches_with(rel, SHELL))
    });
    Ok(found)
}

/// Every path below `root` (not `root` itself), at most `depth` deep, whose name at each
/// depth `d` matches `levels[d - 1]` (while there are levels), entering hidden folders
/// only when `hidden` is set, never entering excluded folders. A missing root has nothing
/// below it.
fn walk(
    root: &Path,
    depth: Option<usize>,
    hidden: bool,
    excluded: &Excluded,
    levels: Vec<Pattern>,
) -> Result<Vec<Found>, String> {
    let folders = Arc::clone(&excluded.folders);
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(!hidden)
        .follow_links(true)
        .max_depth(depth)
        .filter_entry(move |e| {
            let level = e.depth().checked_sub(1).and_then(|d| levels.get(d));
            let named = level.is_none_or(|p| {
                e.file_name()
                    .to_str()
                    .is_some_and(|name| p.matches_with(name, SHELL))
            });
            named && !in_folders(&folders, e.path())
        })
        .build();
    let mut found = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.io_error().is_none() => continue, // a link loop
            Err(e) if e.depth() == Some(0) && root.symlink_metadata().is_err() => break,
            Err(e) => return Err(format!("cannot read below {}: {e}", root.display())),
        };
        if entry.depth() == 0 {
            continue;
        }
        let Some(kind) = entry.file_type() else {
            continue;
        };
        found.push(Found {
            path: entry.into_path(),
            is_dir: kind.is_dir(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let path = dir.path().join(f);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, f).unwrap();
        }
        dir
    }

    fn names(base: &Path, paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.strip_prefix(base).unwrap().display().to_string())
            .collect()
    }

    fn list(dir: &Path, patterns: &[&str], excluded: &Excluded) -> Vec<String> {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        names(dir, &inputs(dir, &patterns, &[], excluded).unwrap())
    }

    #[test]
    fn patterns_match_like_the_shell_sorted_and_once() {
        let dir = tree(&[
            "sql/b.sql",
            "sql/a.sql",
            "sql/deep/c.sql",
            "sql/.hidden.sql",
            "sql/.old/d.sql",
            ".git/config",
            "notes.txt",
        ]);
        let none = Excluded::default();
        assert_eq!(
            list(dir.path(), &["sql/*.sql"], &none),
            ["sql/a.sql", "sql/b.sql"]
        );
        assert_eq!(
            list(dir.path(), &["sql/**/*.sql", "sql/a.sql"], &none),
            ["sql/a.sql", "sql/b.sql", "sql/deep/c.sql"]
        );
        assert_eq!(
            list(dir.path(), &["sql/.*.sql"], &none),
            ["sql/.hidden.sql"]
        );
        assert_eq!(
            list(dir.path(), &["**/config"], &none),
            Vec::<String>::new()
        );
        assert_eq!(list(dir.path(), &[".git/*"], &none), [".git/config"]);
        assert_eq!(
            list(dir.path(), &["./sql/./*.sql"], &none),
            ["sql/a.sql", "sql/b.sql"]
        );
        assert_eq!(
            list(dir.path(), &["*"], &none),
            ["notes.txt", "sql/a.sql", "sql/b.sql", "sql/deep/c.sql"]
        );
        assert_eq!(
            list(dir.path(), &["nothing/*", "gone.txt"], &none),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_matched_folder_stands_for_its_files() {
        let dir = tree(&["sql/b.sql", "sql/deep/c.sql", "sql/.hidden/x", "other.txt"]);
        assert_eq!(
            list(dir.path(), &["sql"], &Excluded::default()),
            ["sql/b.sql", "sql/deep/c.sql"]
        );
    }

    #[test]
    fn exe_files_are_never_inputs() {
        let dir = tree(&[
            "state/history.db",
            "state/history.db-wal",
            "state/history.db-hashes",
            "state/other.db",
            "logs/1/a.log",
            "src/a.rs",
        ]);
        let excluded = Excluded::new(
            &dir.path().join("state/history.db"),
            [dir.path().join("logs")],
        );
        assert_eq!(
            list(dir.path(), &["state/*", "logs", "src/*"], &excluded),
            ["src/a.rs", "state/other.db"]
        );
    }

    #[test]
    fn a_jobs_own_outputs_are_not_its_inputs() {
        let dir = tree(&["src/a.c", "src/gen.c", "src/out/x.o", "src/out/y.o"]);
        let strings =
            |list: &[&str]| -> Vec<String> { list.iter().map(|s| (*s).to_owned()).collect() };
        let found = inputs(
            dir.path(),
            &strings(&["src"]),
            &strings(&["src/gen.c", "src/out"]),
            &Excluded::default(),
        )
        .unwrap();
        assert_eq!(names(dir.path(), &found), ["src/a.c"]);
    }

    #[test]
    fn wildcards_in_the_base_are_literal() {
        let dir = tree(&["we[ir]d/a.txt", "wed/a.txt"]);
        let base = dir.path().join("we[ir]d");
        let found = inputs(&base, &["*.txt".to_owned()], &[], &Excluded::default()).unwrap();
        assert_eq!(names(&base, &found), ["a.txt"]);
    }

    #[test]
    fn outputs_are_missing_when_nothing_matches() {
        let dir = tree(&["out/a.csv", "out/dir/x"]);
        let outputs: Vec<String> = ["out/a.csv", "out/*.csv", "out/dir", "out/b.csv", "logs/*"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            missing_outputs(dir.path(), &outputs),
            ["out/b.csv", "logs/*"]
        );
    }

    #[test]
    fn below_compares_whole_components() {
        let rel = |p: &str, d: &str| below(Path::new(p), Path::new(d)).map(ToOwned::to_owned);
        assert_eq!(rel("/x/a/b", "/x"), Some("a/b".into()));
        assert_eq!(rel("/x/a", "/x/"), Some("a".into()));
        assert_eq!(rel("/a", "/"), Some("a".into()));
        assert_eq!(rel("/xy/a", "/x"), None, "a sibling that shares a prefix");
        assert_eq!(rel("/x", "/x"), None);
        let logs = [PathBuf::from("/w/.exe/logs")];
        assert!(in_folders(&logs, Path::new("/w/.exe/logs")));
        assert!(in_folders(&logs, Path::new("/w/.exe/logs/3/a.log")));
        assert!(!in_folders(&logs, Path::new("/w/.exe/logs-old/a.log")));
    }

    #[test]
    fn a_bad_pattern_is_an_error_not_a_panic() {
        let dir = tree(&[]);
        let err = inputs(dir.path(), &["[".to_owned()], &[], &Excluded::default()).unwrap_err();
        assert!(err.starts_with("invalid glob `[`"), "{err}");
    }
}
