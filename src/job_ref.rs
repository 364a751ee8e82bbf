//! What a job reference names, wherever a user names jobs: `needs`, `--only`, `--skip`,
//! `exe mark-success` and `exe logs`.
//!
//! A reference is a job id (`lint`), a matrix job's name for all of its expansions
//! (`build`), or a matrix job's name with some or all of its `key=value` pairs, in any
//! order (`build[os=linux]`, `build[version=3.12,os=linux]`): the expansions that have
//! them all. Ids are written with their keys sorted, and matrix keys and values cannot
//! hold `[`, `]`, `,` or `=` (`exe::config::invalid_matrix`), so an id splits back into
//! its pairs.

use crate::diagnostic::did_you_mean;

/// A parsed job reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef<'a> {
    /// The reference as written.
    text: &'a str,
    name: &'a str,
    /// The `key=value` pairs in brackets; None without brackets. A malformed pair (no `=`)
    /// makes the reference name nothing.
    pairs: Option<Vec<Option<(&'a str, &'a str)>>>,
}

impl<'a> JobRef<'a> {
    /// Reads a reference as the user wrote it.
    pub fn parse(text: &'a str) -> Self {
        match split(text) {
            (name, None) => JobRef {
                text,
                name,
                pairs: None,
            },
            (name, Some(inner)) => JobRef {
                text,
                name,
                pairs: Some(
                    inner
                        .split(',')
                        .map(|pair| pair.split_once('=').map(|(k, v)| (k.trim(), v)))
                        .collect(),
                ),
            },
        }
    }

    /// The job's name, without its pairs.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Whether it names the job with this id (as exe writes ids).
    pub fn names(&self, id: &str) -> bool {
        let (name, inner) = split(id);
        if name != self.name {
            return false;
        }
        let Some(wanted) = &self.pairs else {
            return true;
        };
        let has = |pair: &(&str, &str)| {
            inner.is_some_and(|inner| inner.split(',').any(|p| p.split_once('=') == Some(*pair)))
        };
        wanted.iter().all(|w| w.as_ref().is_some_and(has))
    }

    /// What to tell a user whose reference names none of `ids`: why its `key=value` pairs
    /// miss (see [`JobRef::miss`]), else the id closest to what they wrote ("did you mean").
    /// The older tool's id of a renamed legacy job (`Load customers`) finds exe's
    /// (`Load_customers`) so.
    pub fn hint<'i>(&self, ids: impl IntoIterator<Item = &'i str> + Clone) -> Option<String> {
        self.miss(ids.clone())
            .or_else(|| did_you_mean(self.text, ids))
    }

    /// Why a reference with `key=value` pairs names none of `ids`, when its name is a
    /// matrix job among them: the first pair whose key or value that job does not have.
    pub fn miss<'i>(&self, ids: impl IntoIterator<Item = &'i str>) -> Option<String> {
        let wanted = self.pairs.as_ref()?;
        // The job's keys, each with its values, in the order first seen.
        let mut keys: Vec<(&str, Vec<&str>)> = Vec::new();
        for id in ids {
            let (name, Some(inner)) = split(id) else {
                continue;
            };
            if name != self.name {
                continue;
            }
            for (key, value) in inner.split(',').filter_map(|p| p.split_once('=')) {
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, values)) if !values.contains(&value) => values.push(value),
                    Some(_) => {}
                    None => keys.push((key, vec![value])),
                }
            }
        }
        if keys.is_empty() {
            return None;
        }
        let list = |items: &[&str]| {
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let name = self.name;
        for pair in wanted {
            let Some((key, value)) = pair else {
                return Some(format!(
                    "name an expansion of `{name}` by `key=value` pairs: `{name}[{}={}]`",
                    keys[0].0, keys[0].1[0]
                ));
            };
            match keys.iter().find(|(k, _)| k == key) {
                None => {
                    let known: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
                    return Some(format!(
                        "`{name}` has no matrix key `{key}`; its keys: {}",
                        list(&known)
                    ));
                }
                Some((_, values)) if !values.contains(value) => {
                    return Some(format!(
                        "`{name}`'s matrix key `{key}` has no value `{value}`; its values: {}",
                        list(values)
                    ));
                }
                Some(_) => {}
            }
        }
        None
    }
}

/// An id or reference's name, and what is between its brackets if it ends with them.
fn split(text: &str) -> (&str, Option<&str>) {
    match text.strip_suffix(']').and_then(|t| t.split_once('[')) {
        Some((name, inner)) => (name, Some(inner)),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 5] = [
        "lint",
        "build[os=linux,version=3.11]",
        "build[os=linux,version=3.12]",
        "build[os=macos,version=3.11]",
        "build[os=macos,version=3.12]",
    ];

    fn named(reference: &str) -> Vec<&'static str> {
        let r = JobRef::parse(reference);
        IDS.into_iter().filter(|id| r.names(id)).collect()
    }

    #[test]
    fn a_name_an_id_or_some_pairs_in_any_order() {
        assert_eq!(named("lint"), ["lint"]);
        assert_eq!(named("build").len(), 4);
        assert_eq!(named("build[os=linux,version=3.12]"), [IDS[2]]);
        assert_eq!(named("build[version=3.12,os=linux]"), [IDS[2]]);
        assert_eq!(named("build[version=3.12, os=linux]"), [IDS[2]]);
        assert_eq!(named("build[os=macos]"), [IDS[3], IDS[4]]);
    }

    #[test]
    fn pairs_that_do_not_fit_name_nothing() {
        for reference in [
            "lint[os=linux]",
            "build[os=linux,os=macos]",
            "build[os]",
            "build[]",
            "build[os=lin]",
            "buil",
            "build[os=linux",
        ] {
            assert!(named(reference).is_empty(), "{reference}");
        }
    }

    #[test]
    fn a_miss_names_the_key_or_value_that_is_not_there() {
        let miss = |r: &str| JobRef::parse(r).miss(IDS);
        assert_eq!(
            miss("build[os=linux,vers=3.11]").as_deref(),
            Some("`build` has no matrix key `vers`; its keys: `os`, `version`")
        );
        assert_eq!(
            miss("build[os=linx]").as_deref(),
            Some("`build`'s matrix key `os` has no value `linx`; its values: `linux`, `macos`")
        );
        assert_eq!(
            miss("build[linux]").as_deref(),
            Some("name an expansion of `build` by `key=value` pairs: `build[os=linux]`")
        );
        assert_eq!(miss("lint[os=linux]"), None);
        assert_eq!(miss("build"), None);
    }

    #[test]
    fn a_hint_is_the_miss_else_the_closest_id() {
        let hint = |r: &str| JobRef::parse(r).hint(["Load_customers", "lint"]);
        assert_eq!(
            hint("Load customers").as_deref(),
            Some("did you mean `Load_customers`?")
        );
        assert_eq!(
            JobRef::parse("build[os=linx]").hint(IDS).as_deref(),
            Some("`build`'s matrix key `os` has no value `linx`; its values: `linux`, `macos`")
        );
        assert_eq!(hint("zzz"), None);
    }
}
