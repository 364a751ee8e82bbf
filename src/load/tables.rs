//! Values serde would read as something else, found before deserializing, each an error:
//!
//! - a list where the format wants a table: serde reads a struct from a list too, its items
//!   taken as the fields in order, so `jobs.a = ["echo x", "echo y"]` would be a job whose
//!   `command` is `echo x` and whose `description` is `echo y`;
//! - an infinite or NaN number in `vars`, `with` or `matrix`, free-form values kept as JSON,
//!   which has no such numbers: `.inf` would become null.

use figment::error::{Actual, Kind};
use figment::value::Value as FValue;

/// Every list in `root` that stands where a table of keys belongs, and every infinite or
/// NaN number in free-form values (`vars`, `with`, `matrix`: they are JSON values, which
/// have no such numbers, so `.inf` would become null), as an error at its path.
pub(super) fn misread(root: &FValue) -> Vec<figment::Error> {
    let mut found = Vec::new();
    pipeline(root, &mut Vec::new(), &mut found);
    non_finite(root, &mut Vec::new(), false, &mut found);
    found
}

/// Infinite or NaN numbers below a `vars`, `with` or `matrix` key.
fn non_finite<'v>(
    value: &'v FValue,
    path: &mut Vec<&'v str>,
    free: bool,
    found: &mut Vec<figment::Error>,
) {
    match value {
        FValue::Num(_, figment::value::Num::F64(f)) if free && !f.is_finite() => {
            let mut e = figment::Error::from(Kind::Message(format!(
                "{f} cannot be kept as a number here (a template sees numbers as JSON, which \
                 has no infinity or NaN): quote it to pass it as text"
            )));
            e.path = path.iter().map(|p| (*p).to_owned()).collect();
            found.push(e);
        }
        FValue::Dict(_, dict) => {
            for (key, value) in dict {
                path.push(key);
                let free = free || matches!(key.as_str(), "vars" | "with" | "matrix");
                non_finite(value, path, free, found);
                path.pop();
            }
        }
        // Lists outside free-form values hold no `vars`, `with` or `matrix`.
        FValue::Array(_, items) if free => {
            let indexes: Vec<String> = (0..items.len()).map(|i| i.to_string()).collect();
            for (item, index) in items.iter().zip(&indexes) {
                let mut at = path.clone();
                at.push(index);
                non_finite(item, &mut at, free, found);
            }
        }
        _ => {}
    }
}

/// A pipeline file, or a profile.
fn pipeline<'v>(value: &'v FValue, path: &mut Vec<&'v str>, found: &mut Vec<figment::Error>) {
    let Some(dict) = table(value, path, found) else {
        return;
    };
    for (key, value) in dict {
        path.push(key);
        match key.as_str() {
            "defaults" => job(value, path, found),
            "jobs" | "templates" => entries(value, path, found, job),
            "profiles" => entries(value, path, found, pipeline),
            "notify" => {
                if let Some(notify) = table(value, path, found) {
                    for (key, value) in notify {
                        path.push(key);
                        table(value, path, found);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// A job, a template or `defaults`.
fn job<'v>(value: &'v FValue, path: &mut Vec<&'v str>, found: &mut Vec<figment::Error>) {
    let Some(dict) = table(value, path, found) else {
        return;
    };
    for (key, value) in dict {
        path.push(key);
        match (key.as_str(), value) {
            ("retry" | "resources", _) => {
                table(value, path, found);
            }
            ("pre_checks" | "post_checks", FValue::Array(_, checks)) => {
                for (i, check) in checks.iter().enumerate() {
                    if matches!(check, FValue::Array(..)) {
                        let mut at: Vec<&str> = path.clone();
                        let index = i.to_string();
                        at.push(&index);
                        table(check, &at, found);
                    }
                }
            }
            _ => {}
        }
        path.pop();
    }
}

/// Each entry of a map of jobs, templates or profiles.
fn entries<'v>(
    value: &'v FValue,
    path: &mut Vec<&'v str>,
    found: &mut Vec<figment::Error>,
    each: fn(&'v FValue, &mut Vec<&'v str>, &mut Vec<figment::Error>),
) {
    if let Some(dict) = value.as_dict() {
        for (name, value) in dict {
            path.push(name);
            each(value, path, found);
            path.pop();
        }
    }
}

/// The value as a table; a list there is recorded as an error. Other kinds are left to
/// deserializing, which names what it expected.
fn table<'v>(
    value: &'v FValue,
    path: &[&str],
    found: &mut Vec<figment::Error>,
) -> Option<&'v figment::value::Dict> {
    if let FValue::Array(..) = value {
        let mut e = figment::Error::from(Kind::InvalidType(Actual::Seq, "a map".to_owned()));
        e.path = path.iter().map(|p| (*p).to_owned()).collect();
        found.push(e);
    }
    value.as_dict()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(toml: &str) -> Vec<String> {
        let node = crate::source::parse(toml, crate::source::Format::Toml).unwrap();
        let value = crate::load::to_figment(&node);
        misread(&value).iter().map(|e| e.path.join(".")).collect()
    }

    #[test]
    fn lists_where_tables_belong_are_found() {
        assert_eq!(
            paths(
                "[jobs]\na = [\"echo x\", \"echo y\"]\n\
                 [jobs.b]\ncommand = \"true\"\nretry = [3, \"10ms\"]\nresources = [1]\n\
                 pre_checks = [[\"file_exists\", \"/etc/passwd\"], { check = \"file_exists\", path = \"x\" }]\n\
                 [templates]\nt = [1]\n[profiles.ci]\ndefaults = [\"echo\"]\n"
            ),
            [
                "jobs.a",
                "jobs.b.pre_checks.0",
                "jobs.b.resources",
                "jobs.b.retry",
                "profiles.ci.defaults",
                "templates.t",
            ]
        );
        assert!(
            paths("[jobs.a]\ncommand = \"true\"\nneeds = [\"b\"]\nenv = { A = \"1\" }\n")
                .is_empty()
        );
    }
}
