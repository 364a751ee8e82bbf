//! A pipeline's globs in the form a file system watch needs: absolute patterns, matched
//! against the absolute paths events carry, and the folder below which each can match.

use std::path::{Component, Path, PathBuf};

use glob::{MatchOptions, Pattern};

/// How patterns match: `*` stays within one folder, as in the shell; `**` crosses folders.
pub const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// A glob made absolute.
#[derive(Debug, Clone)]
pub struct Glob {
    /// Matches the absolute paths the glob names.
    pub pattern: Pattern,
    /// The deepest folder every match is below.
    pub base: PathBuf,
    /// Whether matches can be deeper than `base`'s own entries.
    pub recursive: bool,
}

/// `text` (relative to `dir` unless absolute) as an absolute glob; `None` when it is not a
/// valid pattern.
pub fn absolute(dir: &Path, text: &str) -> Option<Glob> {
    let parts: Vec<Component<'_>> = Path::new(text).components().collect();
    let first_glob = parts
        .iter()
        .position(|c| c.as_os_str().to_string_lossy().contains(['*', '?', '[']));
    // A literal path matches itself: its folder is where it changes.
    let split = first_glob.unwrap_or(parts.len().saturating_sub(1));
    // `dir` is literal, whatever it contains; an absolute `text` replaces it.
    let base = resolve(&dir.join(parts[..split].iter().collect::<PathBuf>()));
    let rest: Vec<String> = parts[split..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let recursive = rest.len() > 1 || rest.iter().any(|part| part.contains("**"));
    let mut text = Pattern::escape(&base.to_string_lossy());
    for part in &rest {
        if !text.ends_with('/') {
            text.push('/');
        }
        text.push_str(part);
    }
    Some(Glob {
        pattern: Pattern::new(&text).ok()?,
        base,
        recursive,
    })
}

/// The absolute form of `path` as events name it: symbolic links of the part that exists
/// resolved, `.` and `..` of the rest taken away.
pub fn resolve(path: &Path) -> PathBuf {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut missing = Vec::new();
    let mut existing = path.as_path();
    loop {
        if let Ok(mut real) = existing.canonicalize() {
            for part in missing.iter().rev() {
                match part {
                    Component::ParentDir => {
                        real.pop();
                    }
                    Component::CurDir => {}
                    other => real.push(other),
                }
            }
            return real;
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                missing.push(last);
                existing = parent;
            }
            _ => return path,
        }
    }
}

/// The nearest folder at or above `path` that exists.
pub fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.is_dir())
        .unwrap_or(Path::new("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(text: &str) -> Glob {
        absolute(Path::new("/w"), text).unwrap()
    }

    #[test]
    fn the_base_is_the_literal_part_and_depth_decides_recursion() {
        let g = glob("src/*.c");
        assert_eq!(g.base, Path::new("/w/src"));
        assert!(!g.recursive);
        assert!(g.pattern.matches_path_with(Path::new("/w/src/a.c"), MATCH));
        assert!(
            !g.pattern
                .matches_path_with(Path::new("/w/src/sub/a.c"), MATCH)
        );
        let g = glob("src/**/*.c");
        assert!(g.recursive);
        assert!(
            g.pattern
                .matches_path_with(Path::new("/w/src/sub/a.c"), MATCH)
        );
        assert!(glob("src/*/x.c").recursive);
    }

    #[test]
    fn a_literal_path_is_watched_in_its_folder_and_matches_only_itself() {
        let g = glob("site/layout.html");
        assert_eq!(g.base, Path::new("/w/site"));
        assert!(!g.recursive);
        assert!(
            g.pattern
                .matches_path_with(Path::new("/w/site/layout.html"), MATCH)
        );
        assert!(
            !g.pattern
                .matches_path_with(Path::new("/w/site/layout.htm"), MATCH)
        );
        // The folder part is matched literally, whatever it contains.
        let g = absolute(Path::new("/w/a[1]"), "*.c").unwrap();
        assert!(g.pattern.matches_path_with(Path::new("/w/a[1]/x.c"), MATCH));
    }

    #[test]
    fn dots_in_missing_parts_are_taken_away() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&dir.path().join("a/../b/./c")), real.join("b/c"));
        let g = absolute(dir.path(), "../x/*.txt").unwrap();
        assert_eq!(g.base, real.parent().unwrap().join("x"));
    }

    #[test]
    fn invalid_patterns_are_left_out() {
        assert!(absolute(Path::new("/w"), "src/[a.c").is_none());
    }
}
