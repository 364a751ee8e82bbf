//! The file checks a job runs before or after its command (`command` checks are run as
//! processes by `attempt.rs`). Each returns why it failed, in words for the summary.

use std::io::{BufRead, BufReader};
use std::path::Path;

use regex::Regex;

/// Passes when `path` is an existing regular file.
pub fn file_exists(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(format!("{} is not a regular file", path.display())),
        Err(_) => Err(format!("{} does not exist", path.display())),
    }
}

/// Passes when `path` is an existing file with at least one byte.
pub fn file_not_empty(path: &Path) -> Result<(), String> {
    file_exists(path)?;
    match std::fs::metadata(path) {
        Ok(meta) if meta.len() > 0 => Ok(()),
        _ => Err(format!("{} is empty", path.display())),
    }
}

/// Passes when files match `glob` and no line of them matches a pattern. Files are read a
/// line at a time, so a log of any size costs one line of memory.
pub fn log_clean(glob: &str, patterns: &[Regex]) -> Result<(), String> {
    let paths = glob::glob(glob).map_err(|e| format!("invalid glob `{glob}`: {}", e.msg))?;
    let mut matched = 0;
    for path in paths.filter_map(Result::ok).filter(|p| p.is_file()) {
        matched += 1;
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
            }
            number += 1;
            // Without its line ending (`\n` or `\r\n`), so that `$` matches at the line's end.
            let end = line.strip_suffix(b"\n").unwrap_or(&line);
            let end = end.strip_suffix(b"\r").unwrap_or(end);
            let text = String::from_utf8_lossy(end);
            if let Some(p) = patterns.iter().find(|p| p.is_match(&text)) {
                let shown: String = text.trim_end().chars().take(200).collect();
                return Err(format!(
                    "{}:{number} matches `{}`: {shown}",
                    path.display(),
                    p.as_str()
                ));
            }
        }
    }
    if matched == 0 {
        return Err(format!("no file matches `{glob}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_checks() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert!(file_exists(&empty).is_ok());
        assert!(file_not_empty(&empty).unwrap_err().contains("is empty"));
        assert!(
            file_exists(dir.path())
                .unwrap_err()
                .contains("not a regular file")
        );
        assert!(
            file_exists(&dir.path().join("nope"))
                .unwrap_err()
                .contains("does not exist")
        );
    }

    #[test]
    fn log_clean_reports_the_first_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.log"),
            "ok\nstill ok\nORA-00942: table or view does not exist\n",
        )
        .unwrap();
        let glob = dir.path().join("*.log").display().to_string();
        let ora = [Regex::new(r"ORA-\d{5}").unwrap()];
        let err = log_clean(&glob, &ora).unwrap_err();
        assert!(
            err.ends_with("a.log:3 matches `ORA-\\d{5}`: ORA-00942: table or view does not exist"),
            "{err}"
        );
        assert!(log_clean(&glob, &[Regex::new("SP2-").unwrap()]).is_ok());
        let none = dir.path().join("*.txt").display().to_string();
        assert!(
            log_clean(&none, &ora)
                .unwrap_err()
                .starts_with("no file matches")
        );
    }

    #[test]
    fn a_pattern_anchored_at_the_end_matches_each_line_whatever_its_ending() {
        let dir = tempfile::tempdir().unwrap();
        let whole = [Regex::new(r"^ORA-\d{5}$").unwrap()];
        for (name, text) in [
            ("lf.log", "ok\nORA-00001\nok\n"),
            ("crlf.log", "ok\r\nORA-00001\r\nok\r\n"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
            let glob = dir.path().join(name).display().to_string();
            let err = log_clean(&glob, &whole).unwrap_err();
            assert!(
                err.ends_with(":2 matches `^ORA-\\d{5}$`: ORA-00001"),
                "{name}: {err}"
            );
        }
    }
}
