//! A job's fingerprint: what it runs (its rendered command), with what (its environment)
//! and on what (the content of the files its `inputs` match), as BLAKE3 hashes. Only this
//! module and its children use blake3.
//!
//! - The command is hashed as rendered, with `{{ run.id }}` as 0 and `{{ attempt }}` as 1,
//!   so a command that uses them is not new on every run.
//! - The environment is the job's whole environment ([`Pipeline::job_env`]) less what it
//!   inherits wholesale under `inherit_env = true` ([`Pipeline::ambient_env`]: the shell's
//!   own variables change from one command to the next). Each value is kept only as a
//!   hash, keyed by its variable's name, so no value, secret or not, is stored in clear.
//! - The inputs are the files [`files::inputs`] lists, each with the hash of its content
//!   ([`cache::Cache`] saves reading unchanged ones).
//!
//! A [`Manifest`] keeps names with their hashes, so a comparison can say which variables
//! or files changed; its digest stands for all of it.

pub mod cache;
pub mod files;

use std::cell::{OnceCell, RefCell};
use std::path::{Path, PathBuf};

use crate::model::{Job, Pipeline};
use crate::store::{Digests, JobFingerprint};

use self::cache::Cache;
use self::files::Excluded;

/// A BLAKE3 hash.
pub type Hash = [u8; 32];

/// Names with the hashes of their values, sorted by name, each name once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest(Vec<(String, Hash)>);

/// What differs between two manifests, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// In both, with different hashes.
    pub changed: Vec<String>,
    /// Only in the newer one.
    pub added: Vec<String>,
    /// Only in the older one.
    pub removed: Vec<String>,
}

impl Diff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }
}

/// The layout version of an encoded manifest.
const MANIFEST_V1: u8 = 1;

impl Manifest {
    /// A manifest of `entries`, sorted by name (the last of equal names wins).
    pub fn new(mut entries: Vec<(String, Hash)>) -> Manifest {
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        Manifest(entries)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    /// The names with their hashes, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Hash)> {
        self.0.iter().map(|(name, hash)| (name.as_str(), hash))
    }

    /// One hash for the whole manifest.
    pub fn digest(&self) -> Hash {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// A version byte, then per entry the name's length (u32, little-endian), the name
    /// and the 32-byte hash.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.0.iter().map(|(n, _)| 4 + n.len() + 32).sum();
        let mut out = Vec::with_capacity(1 + size);
        out.push(MANIFEST_V1);
        for (name, hash) in &self.0 {
            let len = u32::try_from(name.len()).expect("a name shorter than 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(hash);
        }
        out
    }

    /// The manifest [`Manifest::encode`] wrote; `None` if these bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Manifest> {
        let (&version, mut rest) = bytes.split_first()?;
        if version != MANIFEST_V1 {
            return None;
        }
        let mut entries = Vec::new();
        while !rest.is_empty() {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
            let (name, tail) = tail.split_at_checked(len)?;
            let (hash, tail) = tail.split_first_chunk::<32>()?;
            entries.push((String::from_utf8(name.to_vec()).ok()?, *hash));
            rest = tail;
        }
        Some(Manifest(entries))
    }

    /// What changed from `self` (older) to `now`.
    pub fn diff(&self, now: &Manifest) -> Diff {
        let mut diff = Diff::default();
        let (mut old, mut new) = (self.0.iter().peekable(), now.0.iter().peekable());
        loop {
            match (old.peek(), new.peek()) {
                (Some(a), Some(b)) if a.0 == b.0 => {
                    if a.1 != b.1 {
                        diff.changed.push(a.0.clone());
                    }
                    old.next();
                    new.next();
                }
                (Some(a), Some(b)) if a.0 < b.0 => {
                    diff.removed.push(a.0.clone());
                    old.next();
                }
                (_, Some(b)) => {
                    diff.added.push(b.0.clone());
                    new.next();
                }
                (Some(a), None) => {
                    diff.removed.push(a.0.clone());
                    old.next();
                }
                (None, None) => return diff,
            }
        }
    }
}

/// A job's fingerprint; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash of the rendered command.
    pub command: Hash,
    /// Variable names with hashes of their values.
    pub env: Manifest,
    /// Input paths (relative to the working directory when below it) with content hashes.
    pub inputs: Manifest,
}

impl Fingerprint {
    /// As the history keeps it.
    pub fn to_stored(&self) -> JobFingerprint {
        JobFingerprint {
            command: self.command.to_vec(),
            env: self.env.digest().to_vec(),
            env_manifest: self.env.encode(),
            inputs: self.inputs.digest().to_vec(),
            inputs_manifest: self.inputs.encode(),
        }
    }

    /// Whether each part equals a recorded fingerprint's: (command, environment, inputs).
    pub fn matches(&self, recorded: &Digests) -> (bool, bool, bool) {
        (
            recorded.command == self.command,
            recorded.env == self.env.digest(),
            recorded.inputs == self.inputs.digest(),
        )
    }
}

/// The hash of a job's command as rendered for a run (see the module docs).
pub fn command_hash(job: &Job) -> Hash {
    let rendered = job.command.for_attempt(0, 1);
    text_hash(rendered.as_deref().unwrap_or(job.command.display()))
}

/// The hash of a text.
pub fn text_hash(text: &str) -> Hash {
    *blake3::hash(text.as_bytes()).as_bytes()
}

/// The hash of an environment variable's value, keyed by its name: equal values under two
/// names differ.
pub fn env_value_hash(name: &str, value: &str) -> Hash {
    let mut hasher = blake3::Hasher::new_derive_key("exe 2026 environment value");
    hasher.update(name.as_bytes());
    hasher.update(&[0]);
    hasher.update(value.as_bytes());
    *hasher.finalize().as_bytes()
}

/// The first 8 bytes of a hash, in hex: enough to tell a change, for records that keep
/// many.
pub fn short(hash: &Hash) -> String {
    let mut first = [0; 8];
    first.copy_from_slice(&hash[..8]);
    format!("{:016x}", u64::from_be_bytes(first))
}

/// The job's environment as a manifest of value hashes (see the module docs).
pub fn env_manifest(pipeline: &Pipeline, job: &Job) -> Manifest {
    let declared = |name: &str| {
        job.env
            .iter()
            .chain(&pipeline.env_overrides)
            .any(|(k, _)| k == name)
    };
    let entries = pipeline
        .job_env(job)
        .into_iter()
        .filter(|(name, _)| !pipeline.ambient_env.contains(name) || declared(name))
        .map(|(name, value)| {
            let hash = env_value_hash(&name, &value);
            (name, hash)
        })
        .collect();
    Manifest::new(entries)
}

/// Takes fingerprints of a pipeline's jobs, with one hash cache for all of them.
///
/// Used from one thread (the command's, then the run's coordinator); the cache is in a
/// `RefCell` because fingerprinting reads it and fills it in.
#[derive(Debug)]
pub struct Fingerprinter<'p> {
    pipeline: &'p Pipeline,
    db: PathBuf,
    /// Made, and the cache loaded, at the first job fingerprinted: a run or plan of jobs
    /// without `inputs` pays for neither.
    excluded: OnceCell<Excluded>,
    cache: RefCell<Option<Cache>>,
    cache_file: PathBuf,
}

impl<'p> Fingerprinter<'p> {
    /// Fingerprints `pipeline`'s jobs, with the hash cache of the history database `db`.
    pub fn new(pipeline: &'p Pipeline, db: &Path) -> Fingerprinter<'p> {
        Fingerprinter {
            pipeline,
            db: db.to_path_buf(),
            excluded: OnceCell::new(),
            cache: RefCell::new(None),
            cache_file: Cache::path_for(db),
        }
    }

    /// Job `job`'s fingerprint now; an error names an input that could not be read.
    pub fn job(&self, job: usize) -> Result<Fingerprint, String> {
        let spec = &self.pipeline.jobs[job];
        let base = &self.pipeline.working_dir;
        let excluded = self.excluded.get_or_init(|| {
            let mut logs: Vec<&Path> = std::iter::once(self.pipeline.log_dir.as_path())
                .chain(self.pipeline.jobs.iter().map(|j| j.log_dir.as_path()))
                .collect();
            logs.sort_unstable();
            logs.dedup();
            Excluded::new(&self.db, logs.into_iter().map(Path::to_path_buf))
        });
        let paths = files::inputs(base, &spec.inputs, &spec.outputs, excluded)?;
        let base = std::path::absolute(base).unwrap_or_else(|_| base.clone());
        let mut cache = self.cache.borrow_mut();
        let cache = cache.get_or_insert_with(|| Cache::load(&self.cache_file));
        let mut entries = Vec::with_capacity(paths.len());
        for path in paths {
            let hash = cache
                .hash(&path)
                .map_err(|e| format!("cannot read input {}: {e}", path.display()))?;
            let name = files::below(&path, &base).unwrap_or(path.as_os_str());
            entries.push((name.to_string_lossy().into_owned(), hash));
        }
        Ok(Fingerprint {
            command: command_hash(spec),
            env: env_manifest(self.pipeline, spec),
            inputs: Manifest::new(entries),
        })
    }

    /// What job `job` starts with, for the history: `None` for a job without `inputs`,
    /// `Some(None)` when its fingerprint cannot be taken (the start is still recorded, so
    /// an earlier success does not count for it).
    pub fn at_start(&self, job: usize) -> Option<Option<JobFingerprint>> {
        if self.pipeline.jobs[job].inputs.is_empty() {
            return None;
        }
        match self.job(job) {
            Ok(f) => Some(Some(f.to_stored())),
            Err(e) => {
                tracing::warn!(job = %self.pipeline.jobs[job].id, "no fingerprint: {e}");
                Some(None)
            }
        }
    }

    /// The `outputs` patterns of job `job` that match nothing.
    pub fn missing_outputs(&self, job: usize) -> Vec<&'p str> {
        files::missing_outputs(&self.pipeline.working_dir, &self.pipeline.jobs[job].outputs)
    }

    /// Writes the hash cache beside the history, if it changed. A failure (a read-only
    /// folder) only costs the next command some hashing, so it is logged, not reported.
    pub fn save_cache(&self) {
        let mut cache = self.cache.borrow_mut();
        let Some(cache) = cache.as_mut() else {
            return;
        };
        if let Err(e) = cache.save(&self.cache_file) {
            tracing::debug!(file = %self.cache_file.display(), "hash cache not saved: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Options, from_toml};

    fn h(byte: u8) -> Hash {
        [byte; 32]
    }

    fn manifest(entries: &[(&str, u8)]) -> Manifest {
        Manifest::new(
            entries
                .iter()
                .map(|(n, b)| ((*n).to_owned(), h(*b)))
                .collect(),
        )
    }

    #[test]
    fn manifests_are_sorted_and_round_trip() {
        let m = manifest(&[("b", 2), ("a", 1), ("b", 3)]);
        assert_eq!(m.names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.0[1].1, h(3), "the last of equal names wins");
        assert_eq!(Manifest::decode(&m.encode()), Some(m.clone()));
        assert_eq!(
            Manifest::decode(&Manifest::default().encode()),
            Some(Manifest::default())
        );
        assert_eq!(Manifest::decode(&[]), None);
        assert_eq!(Manifest::decode(&[9]), None, "another layout");
        let bytes = m.encode();
        assert_eq!(Manifest::decode(&bytes[..bytes.len() - 1]), None);
        // The digest covers names and hashes, so equal sets give equal digests.
        assert_eq!(m.digest(), manifest(&[("a", 1), ("b", 3)]).digest());
        assert_ne!(m.digest(), manifest(&[("a", 1), ("c", 3)]).digest());
        assert_ne!(m.digest(), manifest(&[("a", 1), ("b", 4)]).digest());
    }

    /// A pipeline from TOML, with this caller environment and these `--env` values.
    fn pipeline(text: &str, process_env: &[(&str, &str)], cli_env: &[(&str, &str)]) -> Pipeline {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let options = Options {
            process_env: pairs(process_env),
            cli_env: pairs(cli_env),
        };
        from_toml(text, &options)
    }

    fn env_of(p: &Pipeline) -> Manifest {
        env_manifest(p, &p.jobs[0])
    }

    #[test]
    fn the_environment_leaves_out_what_is_inherited_wholesale() {
        let shell = [("OLDPWD", "/a"), ("SHLVL", "2"), ("REGION", "eu")];
        let text = "env = { REGION = \"{{ env.REGION }}\" }\n\
                    [jobs.a]\ncommand = \"true\"\nenv = { MODE = \"fast\" }\n";
        let p = pipeline(text, &shell, &[("EXTRA", "1")]);
        assert_eq!(
            env_of(&p).names().collect::<Vec<_>>(),
            ["EXTRA", "MODE", "REGION"]
        );
        // The shell's own state moving does not change the fingerprint; a value the
        // pipeline takes from the caller does.
        let moved = pipeline(
            text,
            &[("OLDPWD", "/b"), ("SHLVL", "3"), ("REGION", "eu")],
            &[("EXTRA", "1")],
        );
        assert_eq!(env_of(&moved), env_of(&p));
        let other = pipeline(text, &[("REGION", "us")], &[("EXTRA", "1")]);
        assert_eq!(env_of(&p).diff(&env_of(&other)).changed, ["REGION"]);
        // Naming what to inherit makes it part of the fingerprint.
        let listed = pipeline(&format!("inherit_env = [\"OLDPWD\"]\n{text}"), &shell, &[]);
        assert_eq!(
            env_of(&listed).names().collect::<Vec<_>>(),
            ["MODE", "OLDPWD", "REGION"]
        );
    }

    #[test]
    fn values_are_kept_only_as_hashes() {
        let secret = "hunter2-very-secret";
        let p = pipeline(
            "[jobs.a]\ncommand = \"true\"\n",
            &[],
            &[("DB_PASSWORD", secret)],
        );
        let encoded = env_of(&p).encode();
        assert!(
            !encoded
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
        );
        let changed = pipeline(
            "[jobs.a]\ncommand = \"true\"\n",
            &[],
            &[("DB_PASSWORD", "other")],
        );
        assert_eq!(env_of(&p).diff(&env_of(&changed)).changed, ["DB_PASSWORD"]);
        // The name is part of what is hashed: equal values under two names differ.
        let a = pipeline("[jobs.a]\ncommand = \"true\"\n", &[], &[("A", "v")]);
        let b = pipeline("[jobs.a]\ncommand = \"true\"\n", &[], &[("B", "v")]);
        assert_ne!(env_of(&a).0[0].1, env_of(&b).0[0].1);
    }

    #[test]
    fn commands_hash_as_rendered_with_a_fixed_run_id() {
        let job = |command: &str, x: &str| {
            let text = format!("vars = {{ x = \"{x}\" }}\n[jobs.a]\ncommand = \"{command}\"\n");
            command_hash(&pipeline(&text, &[], &[]).jobs[0])
        };
        assert_eq!(job("echo {{ vars.x }}", "1"), job("echo 1", "0"));
        assert_ne!(job("echo {{ vars.x }}", "1"), job("echo {{ vars.x }}", "2"));
        // `run.id` is rendered when the job starts; the fingerprint sees it as 0 every run,
        // but still sees the load-time values around it.
        assert_eq!(job("echo {{ run.id }}", "1"), job("echo 0", "1"));
        assert_ne!(
            job("echo {{ run.id }} {{ vars.x }}", "1"),
            job("echo {{ run.id }} {{ vars.x }}", "2")
        );
    }

    #[test]
    fn diffs_name_changed_added_and_removed() {
        let old = manifest(&[("a", 1), ("b", 2), ("d", 4)]);
        let new = manifest(&[("a", 1), ("b", 9), ("c", 3), ("e", 5)]);
        assert_eq!(
            old.diff(&new),
            Diff {
                changed: vec!["b".into()],
                added: vec!["c".into(), "e".into()],
                removed: vec!["d".into()],
            }
        );
        assert!(old.diff(&old).is_empty());
        assert_eq!(Manifest::default().diff(&old).added.len(), 3);
    }
}
