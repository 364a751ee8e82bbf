//! The fingerprints jobs started with, and the manifests they refer to: written with a
//! job's first RUNNING transition, read to tell whether a job is up to date.
//!
//! Both tables only grow. A manifest is inserted once per distinct content (`INSERT OR
//! IGNORE` on its digest), so unchanged inputs cost one small row per start.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::schema::FINGERPRINTS_FROM;
use super::{Digests, JobFingerprint, JobRow, LastStart, Store, StoreError};

impl Store {
    /// For each of `jobs` (ids), its most recent recorded start in a run of pipeline
    /// `name`, with the job's state in that run; `None` for a job never started with a
    /// fingerprint. A database older than fingerprints has none.
    pub fn last_starts(
        &self,
        name: &str,
        jobs: &[&str],
    ) -> Result<Vec<Option<LastStart>>, StoreError> {
        if self.version < FINGERPRINTS_FROM {
            return Ok(vec![None; jobs.len()]);
        }
        let mut st = self
            .conn
            // `+?1`, `+?2`: the values without the parameters themselves. Compared to a bound
            // parameter in a LIMIT query, a column makes SQLite prepare the statement again
            // for each new value, which cost more than the query itself.
            .prepare_cached(
                "SELECT f.run, f.job, f.command, f.env, f.inputs
                 FROM fingerprints f
                 WHERE f.name = +?1 AND f.job_id = +?2
                 ORDER BY f.run DESC LIMIT 1",
            )
            .map_err(|e| self.err("reading fingerprints", e))?;
        let found: Vec<Option<(i64, i64, Option<Digests>)>> = jobs
            .iter()
            .map(|job| {
                st.query_row(params![name, job], |row| {
                    let command: Option<Vec<u8>> = row.get(2)?;
                    let env: Option<Vec<u8>> = row.get(3)?;
                    let inputs: Option<Vec<u8>> = row.get(4)?;
                    let digests = match (command, env, inputs) {
                        (Some(command), Some(env), Some(inputs)) => Some(Digests {
                            command,
                            env,
                            inputs,
                        }),
                        _ => None,
                    };
                    Ok((row.get(0)?, row.get(1)?, digests))
                })
                .optional()
                .map_err(|e| self.err("reading fingerprints", e))
            })
            .collect::<Result<_, _>>()?;
        // The jobs' states, read once per run they last started in (usually one or two).
        let mut runs: HashMap<i64, Vec<JobRow>> = HashMap::new();
        for &(run, ..) in found.iter().flatten() {
            if let Entry::Vacant(slot) = runs.entry(run) {
                slot.insert(self.jobs(run)?);
            }
        }
        Ok(found
            .into_iter()
            .map(|start| {
                start.map(|(run, job, digests)| LastStart {
                    run,
                    // A run's jobs are listed by index, from 0.
                    state: usize::try_from(job)
                        .ok()
                        .and_then(|job| runs[&run].get(job))
                        .map_or_else(|| "PENDING".to_owned(), |row| row.state.clone()),
                    digests,
                })
            })
            .collect())
    }

    /// The manifest with this digest, if the history has it.
    pub fn manifest(&self, digest: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .prepare_cached("SELECT body FROM manifests WHERE digest = ?1")
            .and_then(|mut st| st.query_row([digest], |row| row.get(0)).optional())
            .map_err(|e| self.err("reading a manifest", e))
    }
}

/// Records the fingerprint job `job` of `run` started with (`None`: it could not be
/// taken). `Ok(false)` when the run has no such job.
pub(super) fn insert(
    tx: &Connection,
    run: i64,
    job: i64,
    fingerprint: Option<&JobFingerprint>,
) -> rusqlite::Result<bool> {
    if let Some(f) = fingerprint {
        let mut manifest =
            tx.prepare_cached("INSERT OR IGNORE INTO manifests (digest, body) VALUES (?1, ?2)")?;
        manifest.execute(params![f.env, f.env_manifest])?;
        manifest.execute(params![f.inputs, f.inputs_manifest])?;
    }
    let changed = tx
        .prepare_cached(
            "INSERT INTO fingerprints (run, job, name, job_id, command, env, inputs)
             SELECT j.run, j.idx, r.name, j.job_id, ?3, ?4, ?5
             FROM jobs j JOIN runs r ON r.id = j.run
             WHERE j.run = ?1 AND j.idx = ?2",
        )?
        .execute(params![
            run,
            job,
            fingerprint.map(|f| &f.command),
            fingerprint.map(|f| &f.env),
            fingerprint.map(|f| &f.inputs),
        ])?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::super::{NewRun, Record};
    use super::*;

    fn fingerprint(inputs: &[u8]) -> JobFingerprint {
        JobFingerprint {
            command: b"cmd".to_vec(),
            env: b"env".to_vec(),
            env_manifest: b"env body".to_vec(),
            inputs: inputs.to_vec(),
            inputs_manifest: [b"body of ", inputs].concat(),
        }
    }

    fn run(s: &mut Store, name: &str, jobs: &[String]) -> i64 {
        s.create_run(&NewRun {
            name,
            file: "p.toml",
            digest: "d",
            plan_json: "{}",
            host: "h",
            user: "u",
            pid: 1,
            exe_version: "0",
            resumed_from: None,
            started_at_ms: 1,
            jobs,
        })
        .unwrap()
    }

    fn to(job: usize, to: &str) -> Record<'_> {
        Record::Transition {
            job,
            from: "RUNNING",
            to,
            at_ms: 2,
            reason: "",
        }
    }

    #[test]
    fn the_last_start_of_each_job_with_its_state() {
        let mut s = Store::open_in_memory().unwrap();
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let first = run(&mut s, "p", &ids);
        let (one, two) = (fingerprint(b"1"), fingerprint(b"2"));
        s.record(
            first,
            &[
                Record::Fingerprint {
                    job: 0,
                    fingerprint: Some(&one),
                },
                Record::Fingerprint {
                    job: 1,
                    fingerprint: Some(&one),
                },
                to(0, "SUCCESS"),
                to(1, "SUCCESS"),
            ],
        )
        .unwrap();
        // A later run of the same pipeline starts `a` again; another pipeline's runs and
        // fingerprints do not count.
        let second = run(&mut s, "p", &ids);
        s.record(
            second,
            &[
                Record::Fingerprint {
                    job: 0,
                    fingerprint: Some(&two),
                },
                to(0, "FAILED"),
            ],
        )
        .unwrap();
        let other = run(&mut s, "q", &ids);
        s.record(
            other,
            &[Record::Fingerprint {
                job: 1,
                fingerprint: None,
            }],
        )
        .unwrap();

        let got = s.last_starts("p", &["a", "b", "c"]).unwrap();
        let a = got[0].as_ref().unwrap();
        assert_eq!((a.run, a.state.as_str()), (second, "FAILED"));
        assert_eq!(a.digests.as_ref().unwrap().inputs, b"2");
        let b = got[1].as_ref().unwrap();
        assert_eq!((b.run, b.state.as_str()), (first, "SUCCESS"));
        assert!(got[2].is_none());
        let q = s.last_starts("q", &["b"]).unwrap();
        assert_eq!(q[0].as_ref().unwrap().digests, None, "could not be taken");

        assert_eq!(s.manifest(b"1").unwrap().unwrap(), b"body of 1");
        assert_eq!(s.manifest(b"nope").unwrap(), None);
        let manifests: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM manifests", [], |r| r.get(0))
            .unwrap();
        assert_eq!(manifests, 3, "env once, inputs 1 and 2 once each");
    }

    #[test]
    fn a_fingerprint_for_an_unknown_job_records_nothing() {
        let mut s = Store::open_in_memory().unwrap();
        let id = run(&mut s, "p", &["a".to_owned()]);
        let f = fingerprint(b"1");
        let err = s.record(
            id,
            &[Record::Fingerprint {
                job: 3,
                fingerprint: Some(&f),
            }],
        );
        assert!(
            matches!(&err, Err(StoreError::UnknownJob { job, .. }) if job == "3"),
            "{err:?}"
        );
        assert_eq!(s.manifest(b"1").unwrap(), None, "the batch was rolled back");
    }

    #[test]
    fn a_v1_database_read_only_has_no_fingerprints() {
        let fixture =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/history/v1.db");
        let ro = Store::open(
            &fixture,
            super::super::Access::ReadOnly,
            super::super::Durability::Normal,
        )
        .unwrap();
        assert_eq!(ro.last_starts("v1-first", &["a"]).unwrap(), vec![None]);
    }
}
