//! The run history through the real binary: runs, show, logs, resume, mark-success, and
//! databases that are newer, corrupt or shared by concurrent runs.

use crate::harness::{Run, Sandbox, pid_alive};

pub(crate) fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\nstderr: {}", run.stdout, run.stderr))
}

/// A pipeline whose job `b` fails until the file `fixed` exists; `a` and `c` count their runs.
fn flaky(sb: &Sandbox) {
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"echo a >> a.count\"\n\
         [jobs.b]\ncommand = \"echo b >> b.count; test -e fixed\"\nneeds = [\"a\"]\n\
         [jobs.c]\ncommand = \"echo c >> c.count\"\nneeds = [\"b\"]\n",
    );
}

/// The id of the newest recorded run.
fn newest_run(sb: &Sandbox) -> String {
    json(&sb.exe(&["runs", "--format", "json"]))[0]["id"]
        .as_i64()
        .expect("a recorded run")
        .to_string()
}

/// How many runs the history holds.
fn runs_recorded(sb: &Sandbox) -> usize {
    json(&sb.exe(&["runs", "--format", "json"]))
        .as_array()
        .expect("a list of runs")
        .len()
}

fn count(sb: &Sandbox, file: &str) -> usize {
    std::fs::read_to_string(sb.path().join(file)).map_or(0, |t| t.lines().count())
}

#[test]
fn runs_are_recorded_and_listed_newest_first() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "name = \"nightly\"\n[jobs.a]\ncommand = \"echo hi\"\n",
    );
    for _ in 0..3 {
        assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    }
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    let ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "SUCCESS" && r["name"] == "nightly")
    );
    let limited = json(&sb.exe(&["runs", "--format", "json", "--limit", "1"]));
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(limited[0]["id"], ids[0]);
    let text = sb.exe(&["runs"]);
    assert!(text.stdout.starts_with("RUN"), "{}", text.stdout);
    let show = sb.exe(&["show", &ids[0].to_string()]);
    show.assert_stdout_has("a    SUCCESS");
    let logs = sb.exe(&["logs", &ids[0].to_string(), "a"]);
    assert_eq!(logs.stdout, "hi\n");
}

#[test]
fn runs_are_filtered_by_name_state_and_time() {
    let sb = Sandbox::new();
    // A bad time is a usage error even before anything is recorded.
    let early = sb.exe(&["runs", "--since", "yesterdayish"]);
    assert_eq!(early.code, 2, "{}", early.stderr);
    early.assert_stderr_has("`--since yesterdayish`: not a time");
    sb.file("ok.toml", "name = \"ok\"\n[jobs.a]\ncommand = \"true\"\n");
    sb.file(
        "bad.toml",
        "name = \"bad\"\n[jobs.a]\ncommand = \"false\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "ok.toml"]).code, 0);
    assert_eq!(sb.exe(&["apply", "-q", "bad.toml"]).code, 1);
    assert_eq!(sb.exe(&["apply", "-q", "ok.toml"]).code, 0);
    let names = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["runs", "--format", "json"];
        all.extend_from_slice(args);
        let listed = json(&sb.exe(&all));
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["name"].as_str().unwrap(),
                    r["state"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names(&["--name", "ok"]), ["ok SUCCESS", "ok SUCCESS"]);
    assert_eq!(names(&["--status", "failed"]), ["bad FAILED"]);
    assert_eq!(
        names(&["--name", "bad", "--status", "SUCCESS"]),
        Vec::<String>::new()
    );
    assert_eq!(names(&["--since", "1h"]).len(), 3);
    assert_eq!(
        names(&["--since", "1h", "--limit", "2"]),
        ["ok SUCCESS", "bad FAILED"]
    );
    assert_eq!(names(&["--until", "2000-01-01"]), Vec::<String>::new());
    assert_eq!(
        names(&["--since", "2999-01-01T08:00"]),
        Vec::<String>::new()
    );
    let bad = sb.exe(&["runs", "--until", "soon"]);
    assert_eq!(bad.code, 2);
    bad.assert_stderr_has("`--until soon`: not a time");
}

#[test]
fn the_resume_hint_names_the_history_it_is_for() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"false\"\n");
    let elsewhere = sb.exe(&["--db", "other.db", "apply", "p.toml"]);
    elsewhere.assert_stderr_has("Resume with: exe --db other.db apply p.toml --resume 1\n");
    // Through EXE_DB, as set now, the hint works as printed.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_exe"));
    cmd.args(["apply", "p.toml"]).env("EXE_DB", "env.db");
    sb.run(cmd, None)
        .assert_stderr_has("Resume with: exe apply p.toml --resume 1\n");
    // The layers that make the pipeline: a profile is repeated, values (maybe secrets) named.
    sb.file(
        "q.toml",
        "[jobs.a]\ncommand = \"false\"\n[profiles.ci]\nmax_parallel = 2\n",
    );
    let layered = sb.exe(&[
        "apply",
        "q.toml",
        "--profile",
        "ci",
        "--set",
        "vars.x=1",
        "--env",
        "K=V",
    ]);
    layered.assert_stderr_has(
        "Resume with: exe apply q.toml --profile ci --resume 1\n  with the same --set and --env as this run\n",
    );
    // Only an `EXE_*` variable that is a layer of the pipeline is one to give again.
    let other = sb.sh(r#"EXE_FOO=1 "$0" apply p.toml"#);
    other.assert_stderr_has("Resume with: exe apply p.toml --resume 2\n");
    other.assert_stderr_lacks("with the same");
    let layer = sb.sh(r#"EXE_VARS__X=1 "$0" apply p.toml"#);
    layer.assert_stderr_has("--resume 3\n  with the same EXE_* variables as this run\n");
}

#[test]
fn a_failed_run_is_resumed_exactly() {
    let sb = Sandbox::new();
    flaky(&sb);
    let first = sb.exe(&["apply", "p.toml"]);
    assert_eq!(first.code, 1);
    let hint = first
        .stderr
        .lines()
        .find(|l| l.starts_with("Resume with: "))
        .expect("a resume command");
    let run_id: i64 = hint.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        hint,
        format!("Resume with: exe apply p.toml --resume {run_id}")
    );
    sb.file("fixed", "");
    let resumed = sb.exe(&["apply", "p.toml", "--resume", &run_id.to_string()]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        (
            count(&sb, "a.count"),
            count(&sb, "b.count"),
            count(&sb, "c.count")
        ),
        (1, 2, 1)
    );
    let again = sb.exe(&["apply", "p.toml", "--resume", &run_id.to_string()]);
    assert_eq!(
        again.code, 0,
        "the first run still failed, so resuming it again reruns its failures"
    );
    let runs_before = runs_recorded(&sb);
    let newest = json(&sb.exe(&["runs", "--format", "json"]))[0]["id"]
        .as_i64()
        .unwrap();
    let done = sb.exe(&["apply", "p.toml", "--resume", &newest.to_string()]);
    assert_eq!(done.code, 0);
    done.assert_stderr_has("nothing to do");
    assert_eq!(runs_recorded(&sb), runs_before, "nothing recorded");
}

#[test]
fn failed_only_leaves_never_run_jobs_for_a_plain_resume() {
    let sb = Sandbox::new();
    flaky(&sb);
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let first = newest_run(&sb);
    sb.file("fixed", "");
    let run = sb.exe(&["apply", "p.toml", "--resume", &first, "--failed-only"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (count(&sb, "b.count"), count(&sb, "c.count")),
        (2, 0),
        "c never ran, so it waits"
    );
    let second = newest_run(&sb);
    run.assert_stderr_has(&format!(
        "Not run, left for a plain resume: c. Run it with: exe apply p.toml --resume {second}\n"
    ));
    assert_eq!(sb.exe(&["apply", "p.toml", "--resume", &second]).code, 0);
    assert_eq!(
        (
            count(&sb, "a.count"),
            count(&sb, "b.count"),
            count(&sb, "c.count")
        ),
        (1, 2, 1)
    );
}

#[test]
fn a_succeeded_run_is_done_only_for_the_pipeline_it_ran() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo a\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    sb.file(
        "other.toml",
        "[jobs.deploy]\ncommand = \"touch deployed\"\n",
    );
    let other = sb.exe(&["apply", "other.toml", "--resume", "1"]);
    assert_eq!(other.code, 2, "{}", other.stderr);
    other.assert_stderr_has("run 1 was of the pipeline `p` (p.toml), not `other`");
    other.assert_stderr_has("check the file and the run id (`exe runs` lists runs");
    // A job added since: said, then run with --allow-changes; the job done stays done.
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"echo a\"\n[jobs.b]\ncommand = \"touch b\"\n",
    );
    let changed = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    changed.assert_stderr_has("job `b` was added");
    let allowed = sb.exe(&["apply", "p.toml", "--resume", "1", "--allow-changes"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert!(sb.path().join("b").exists());
    allowed.assert_stderr_has("1 succeeded, 0 failed, 1 skipped");
    let again = sb.exe(&["apply", "p.toml", "--resume", "2"]);
    again.assert_stderr_has("run 2 succeeded: nothing to do");
    assert_eq!(runs_recorded(&sb), 2);
}

#[test]
fn a_job_marked_successful_lets_what_needs_it_run_on_resume() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.b]\ncommand = \"false\"\n[jobs.c]\ncommand = \"true\"\nneeds = [\"b\"]\n\
         [jobs.f]\ncommand = \"touch f\"\nneeds = [\"c\"]\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let marked = sb.exe(&[
        "mark-success",
        "1",
        "c",
        "--reason",
        "done by hand",
        "--yes",
    ]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    // b fails again; c is done, so f, which needs only c, runs.
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1", "--continue-on-error"]);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    assert!(sb.path().join("f").exists(), "{}", resumed.stderr);
}

#[test]
fn a_run_is_resumed_by_one_exe_at_a_time() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"test -f fixed && touch started && sleep 1\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    sb.file("fixed", "");
    let mut first = sb.spawn(&["apply", "-q", "p.toml", "--resume", "1"]);
    sb.wait_for("started");
    let second = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(second.code, 2, "{}", second.stderr);
    second.assert_stderr_has("run 1 is being resumed already, by run 2, which is still running");
    assert!(first.wait().unwrap().success());
    // Once that resume has ended, run 1 may be resumed again.
    let again = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn a_resume_chain_is_resumed_by_one_exe_at_a_time() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.f]\ncommand = \"test -f okf\"\n\
         [jobs.s]\ncommand = \"test -f oks && touch started && sleep 1\"\nneeds = [\"f\"]\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    sb.file("okf", "");
    // Run 2 resumes run 1: f succeeds, s fails.
    assert_eq!(sb.exe(&["apply", "-q", "p.toml", "--resume", "1"]).code, 1);
    sb.file("oks", "");
    let mut second = sb.spawn(&["apply", "-q", "p.toml", "--resume", "2"]);
    sb.wait_for("started");
    // Run 1 is not resumed directly by run 3, but s would run in both.
    let first = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(first.code, 2, "{}", first.stderr);
    first.assert_stderr_has(
        "run 1 is being resumed already, by run 3 (which resumes run 2, of the same resume chain), which is still running",
    );
    assert!(second.wait().unwrap().success());
    assert_eq!(runs_recorded(&sb), 3);
}

#[test]
fn a_resume_whose_jobs_left_are_up_to_date_records_nothing() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.u]\ncommand = \"cp in.txt out.txt\"\ninputs = [\"in.txt\"]\noutputs = [\"out.txt\"]\n\
         [jobs.f]\ncommand = \"false\"\n",
    );
    sb.file("in.txt", "v1");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    // Run 2: u is up to date, f fails again.
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    assert_eq!(
        sb.exe(&["mark-success", "2", "f", "--reason", "manual", "--yes"])
            .code,
        0
    );
    // u, up to date in run 2, is done there like a success: no SKIPPED-to-SUCCESS row.
    let marked = sb.exe(&["mark-success", "2", "u", "--reason", "manual", "--yes"]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    marked.assert_stderr_has("u already succeeded in run 2: nothing recorded for it.");
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "2"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    resumed.assert_stderr_has("every job of run 2 (FAILED) has succeeded: nothing to do");
    assert_eq!(runs_recorded(&sb), 2);
    let transitions = json(&sb.exe(&["show", "2", "--format", "json"]))["transitions"].clone();
    let to_success = (transitions.as_array().unwrap().iter())
        .filter(|t| t["job_id"] == "u" && t["to"] == "SUCCESS")
        .count();
    assert_eq!(to_success, 0);
}

#[test]
fn a_resume_of_jobs_since_made_up_to_date_records_nothing() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.f]\ncommand = \"false\"\n\
         [jobs.u]\ncommand = \"cp in.txt out.txt\"\ninputs = [\"in.txt\"]\noutputs = [\"out.txt\"]\nneeds = [\"f\"]\n",
    );
    sb.file("in.txt", "v1");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    // Run 2 brings u up to date; f of run 1 is then marked done.
    assert_eq!(sb.exe(&["apply", "-q", "p.toml", "--skip", "f"]).code, 0);
    assert_eq!(
        sb.exe(&["mark-success", "1", "f", "--reason", "manual", "--yes"])
            .code,
        0
    );
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    resumed.assert_stderr_has("the jobs left to run from run 1 are up to date: nothing to do");
    assert_eq!(runs_recorded(&sb), 2, "nothing recorded");
}

#[test]
fn jobs_a_resume_leaves_unselected_wait_for_a_plain_resume() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"true\"\n[jobs.b]\ncommand = \"test -f okb\"\nneeds = [\"a\"]\n\
         [jobs.c]\ncommand = \"true\"\nneeds = [\"a\"]\n\
         [jobs.d]\ncommand = \"touch d.ran\"\nneeds = [\"b\", \"c\"]\n",
    );
    assert_eq!(
        sb.exe(&["apply", "-q", "p.toml", "--continue-on-error"])
            .code,
        1
    );
    sb.file("okb", "");
    let only = sb.exe(&["apply", "p.toml", "--resume", "1", "--only", "b"]);
    assert_eq!(only.code, 0, "{}", only.stderr);
    only.assert_stderr_has(
        "Not run, left for a plain resume: d. Run it with: exe apply p.toml --resume 2\n",
    );
    assert!(!sb.path().join("d.ran").exists());
    let plain = sb.exe(&["apply", "p.toml", "--resume", "2"]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(sb.path().join("d.ran").exists(), "{}", plain.stderr);
    // a was carried over as done into run 2: marking it there records nothing.
    let marked = sb.exe(&["mark-success", "2", "a", "--reason", "x", "--yes"]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    marked.assert_stderr_has("a already succeeded in run 1: nothing recorded for it.");
    let again = sb.exe(&["apply", "p.toml", "--resume", "3"]);
    again.assert_stderr_has("run 3 succeeded: nothing to do");
}

#[test]
fn failed_only_with_no_failure_left_records_nothing() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"true\"\n[jobs.b]\ncommand = \"false\"\nneeds = [\"a\"]\n\
         [jobs.c]\ncommand = \"true\"\nneeds = [\"b\"]\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    assert_eq!(
        sb.exe(&["mark-success", "1", "b", "--reason", "by hand", "--yes"])
            .code,
        0
    );
    // b is done by hand and c never ran: --failed-only has nothing to run.
    let run = sb.exe(&["apply", "p.toml", "--resume", "1", "--failed-only"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("no job of run 1 failed or timed out: nothing to do");
    assert_eq!(runs_recorded(&sb), 1);
}

#[test]
fn resume_refuses_unknown_runs_and_changed_pipelines() {
    let sb = Sandbox::new();
    flaky(&sb);
    let unknown = sb.exe(&["apply", "p.toml", "--resume", "999"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    unknown.assert_stderr_has("there is no run 999 in the history");
    assert!(
        !sb.path().join(".exe").exists(),
        "no history was made for it"
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let id = newest_run(&sb);
    let text = std::fs::read_to_string(sb.path().join("p.toml")).unwrap();
    sb.file(
        "p.toml",
        text.replace("echo c >> c.count", "echo C >> c.count"),
    );
    let changed = sb.exe(&["apply", "p.toml", "--resume", &id]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    changed.assert_stderr_has("job `c` changed: command");
    changed.assert_stderr_lacks("was of the pipeline");
    // Another pipeline altogether: most likely the wrong file, and the message says so.
    sb.file("other.toml", "[jobs.x]\ncommand = \"true\"\n");
    let other = sb.exe(&["apply", "other.toml", "--resume", &id]);
    assert_eq!(other.code, 2, "{}", other.stderr);
    other.assert_stderr_has(&format!(
        "run {id} was of the pipeline `p` (p.toml), not `other`"
    ));
    sb.file("fixed", "");
    assert_eq!(
        sb.exe(&["apply", "-q", "p.toml", "--resume", &id, "--allow-changes"])
            .code,
        0
    );
}

#[test]
fn a_resume_sees_a_change_in_any_resolved_setting() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "name = \"w\"\n[vars]\ndeploy = true\n[jobs.build]\ncommand = \"false\"\n\
         [jobs.deploy]\nwhen = \"{{ vars.deploy }}\"\ncommand = \"echo DEPLOYING\"\n",
    );
    let first = sb.exe(&[
        "apply",
        "p.toml",
        "--set",
        "vars.deploy=false",
        "--continue-on-error",
    ]);
    assert_eq!(first.code, 1, "{}", first.stderr);
    // Without the --set, deploy's `when` is true now: a change, not a job left to run.
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1", "--continue-on-error"]);
    assert_eq!(resumed.code, 2, "{}", resumed.stderr);
    resumed.assert_stderr_has(
        "the pipeline changed since run 1:\n  │   job `deploy` changed: when false → true\n",
    );
    resumed.assert_stdout_lacks("DEPLOYING");
    // So is an environment value, named without its value, and a top-level setting.
    let env = sb.exe(&[
        "apply",
        "p.toml",
        "--resume",
        "1",
        "--set",
        "vars.deploy=false",
        "--env",
        "API_TOKEN=s3cr3t-value",
        "--set",
        "max_parallel=4",
    ]);
    assert_eq!(env.code, 2, "{}", env.stderr);
    env.assert_stderr_has("the pipeline's max_parallel 1 → 4");
    env.assert_stderr_has("the pipeline's env `API_TOKEN` added\n");
    env.assert_stderr_lacks("job `build` changed: env");
    env.assert_stderr_lacks("s3cr3t");
    // --allow-changes resumes, and still says what changed.
    let allowed = sb.exe(&[
        "apply",
        "p.toml",
        "--resume",
        "1",
        "--continue-on-error",
        "--allow-changes",
    ]);
    assert_eq!(allowed.code, 1, "{}", allowed.stderr);
    allowed.assert_stderr_has(
        "note: the pipeline changed since run 1 (resumed anyway, --allow-changes):\n  job `deploy` changed: when false → true\n",
    );
    allowed.assert_stdout_has("DEPLOYING");
}

#[test]
fn the_same_file_named_another_way_is_the_same_pipeline() {
    let sb = Sandbox::new();
    flaky(&sb);
    std::fs::create_dir(sb.path().join("sub")).unwrap();
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    for script in [
        r#""$0" apply ./p.toml --resume 1"#,
        r#""$0" apply "$PWD/p.toml" --resume 1"#,
        r#"cd sub && "$0" --db ../.exe/history.db apply ../p.toml --resume 1"#,
    ] {
        let resumed = sb.sh(script);
        assert_eq!(resumed.code, 1, "{script}: {}", resumed.stderr);
        resumed.assert_stderr_lacks("changed");
    }
    assert_eq!(count(&sb, "a.count"), 1, "a succeeded in run 1");
    assert_eq!(count(&sb, "b.count"), 4);
}

#[test]
fn a_command_rendered_when_the_job_starts_is_compared_as_rendered() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[vars]\ntarget = \"staging\"\n[jobs.a]\ncommand = \"echo a\"\n\
         [jobs.b]\nneeds = [\"a\"]\n\
         command = \"echo deploy {{ vars.target }} attempt {{ attempt }} of run {{ run.id }}; exit 1\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let changed = sb.exe(&[
        "apply",
        "p.toml",
        "--set",
        "vars.target=production",
        "--resume",
        "1",
    ]);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    changed.assert_stderr_has("job `b` changed: command\n");
    changed.assert_stderr_lacks("production");
    // The same command is the same, whatever its run and attempt.
    let same = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(same.code, 1, "{}", same.stderr);
    same.assert_stderr_lacks("changed");
}

#[test]
fn a_secret_in_the_callers_environment_does_not_change_the_pipeline() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"echo deploy production; exit 1\"\n",
    );
    assert_eq!(sb.sh(r#"unset SSH_KEY_NAME; "$0" apply -q p.toml"#).code, 1);
    let resumed = sb.sh(r#"SSH_KEY_NAME=production "$0" apply p.toml --resume 1"#);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    resumed.assert_stderr_lacks("changed");
}

#[test]
fn changes_to_secrets_are_named_never_shown_nor_recorded() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[vars]\napi_token = \"\"\n[jobs.a]\n\
         command = \"echo -u {{ env.DB_PASSWORD }} --token {{ vars.api_token }} x; exit 1\"\n",
    );
    let apply = |password: &str, token: &str, resume: bool| {
        let (env, set) = (
            format!("DB_PASSWORD={password}"),
            format!("vars.api_token={token}"),
        );
        let mut args = vec!["apply", "-q", "p.toml", "--env", &env, "--set", &set];
        if resume {
            args.extend(["--resume", "1"]);
        }
        sb.exe(&args)
    };
    assert_eq!(apply("pw1", "hunter22", false).code, 1);
    let changed = apply("pw2", "hunter33", true);
    assert_eq!(changed.code, 2, "{}", changed.stderr);
    changed.assert_stderr_has("job `a` changed: command\n");
    changed.assert_stderr_has("the pipeline's env `DB_PASSWORD` changed\n");
    for secret in ["pw1", "pw2", "hunter22", "hunter33"] {
        changed.assert_stderr_lacks(secret);
    }
    let mut history = Vec::new();
    for file in [".exe/history.db", ".exe/history.db-wal"] {
        history.extend(std::fs::read(sb.path().join(file)).unwrap_or_default());
    }
    for secret in ["pw1", "hunter22"] {
        assert!(
            !history
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{secret} is in the history"
        );
    }
}

#[test]
fn the_environment_compared_is_what_the_pipeline_sets() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "inherit_env = \"default\"\nenv = { PATH = \"/opt/tools/bin:${PATH}\" }\n\
         [jobs.a]\ncommand = \"exit 1\"\n[jobs.b]\ncommand = \"true\"\n",
    );
    assert_eq!(sb.sh(r#"LC_TERMINAL=a "$0" apply -q p.toml"#).code, 1);
    // Inherited only: not the pipeline's.
    let inherited = sb.sh(r#"LC_TERMINAL=iTerm2 "$0" apply p.toml --resume 1"#);
    assert_eq!(inherited.code, 1, "{}", inherited.stderr);
    inherited.assert_stderr_lacks("changed");
    // Named by the pipeline: compared with the value the job gets, said once.
    let path = sb.sh(r#"PATH="/usr/local/sbin:$PATH" "$0" apply p.toml --resume 1"#);
    assert_eq!(path.code, 2, "{}", path.stderr);
    path.assert_stderr_has("the pipeline's env `PATH` changed\n");
    path.assert_stderr_lacks("job `a`");
    // Which variables are inherited is a setting; what is inherited still is not.
    let all = sb.exe(&[
        "apply",
        "p.toml",
        "--set",
        "inherit_env=true",
        "--resume",
        "1",
    ]);
    assert_eq!(all.code, 2, "{}", all.stderr);
    all.assert_stderr_has(
        "the pipeline changed since run 1:\n  │   the pipeline's inherit_env \"default\" → true\n",
    );
    all.assert_stderr_lacks("removed");
    all.assert_stderr_lacks("added");
    sb.file("q.toml", "[jobs.a]\ncommand = \"exit 1\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "q.toml"]).code, 1);
    let none = sb.exe(&[
        "apply",
        "q.toml",
        "--set",
        "inherit_env=false",
        "--resume",
        &newest_run(&sb),
    ]);
    assert_eq!(none.code, 2, "{}", none.stderr);
    none.assert_stderr_has("the pipeline's inherit_env true → false\n");
}

#[test]
fn an_absolute_check_path_in_the_working_folder_is_the_same_however_the_file_is_named() {
    let sb = Sandbox::new();
    let folder = std::fs::canonicalize(sb.path()).unwrap();
    sb.file(
        "p.toml",
        format!(
            "[jobs.a]\ncommand = \"touch out.txt\"\n\
             post_checks = [{{ check = \"file_exists\", path = \"{}/out.txt\" }}]\n\
             [jobs.b]\nneeds = [\"a\"]\ncommand = \"test -e fixed\"\n",
            folder.display()
        ),
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let resumed = sb.sh(r#""$0" apply "$PWD/p.toml" --resume 1"#);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    resumed.assert_stderr_lacks("changed");
}

#[test]
fn a_run_recorded_by_an_older_exe_is_resumed_with_what_it_recorded() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"exit 1\"\ntimeout = \"1m\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    // As the exe of this morning recorded it: the command as text, the checks counted,
    // every variable the job saw.
    sb.sql(
        ".exe/history.db",
        r#"UPDATE plans SET json = json_set(json_remove(json,
               '$.pipeline.inherit_env', '$.pipeline.set_env_hashes',
               '$.jobs[0].command_hash', '$.jobs[0].set_env_hashes',
               '$.jobs[0].pre_checks_hash', '$.jobs[0].post_checks_hash'),
             '$.jobs[0].command', 'exit 1', '$.jobs[0].checks', json('{"pre": 0, "post": 0}'),
             '$.jobs[0].env_hashes', json('{"HOME": "1"}'));
           UPDATE runs SET digest = 'older';"#,
    );
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    resumed.assert_stderr_has(
        "which did not record command, env, inherit_env, post_checks, pre_checks as this one compares them: changes to those cannot be checked\n",
    );
    resumed.assert_stderr_lacks("changed since");
    // What it recorded as now is still compared, by the file's names.
    let longer = sb.exe(&[
        "apply",
        "p.toml",
        "--set",
        "jobs.a.timeout=2m",
        "--resume",
        "1",
    ]);
    assert_eq!(longer.code, 2, "{}", longer.stderr);
    longer.assert_stderr_has("job `a` changed: timeout 1m → 2m\n");
}

#[test]
fn an_imported_run_is_resumed_without_a_made_up_change_list() {
    let sb = Sandbox::new();
    two_old_runs(&sb, "old.db");
    assert_eq!(sb.exe(&["migrate", "--history", "old.db"]).code, 0);
    let failed = newest_run(&sb);
    sb.file(
        "p.toml",
        "name = \"legacy_app\"\n[jobs.a]\ncommand = \"touch a.ran\"\n",
    );
    let resumed = sb.exe(&["apply", "p.toml", "--resume", &failed]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    resumed.assert_stderr_has(&format!(
        "note: run {failed} was imported from the older executioner, which recorded no plan: changes to the pipeline since cannot be checked\n"
    ));
    resumed.assert_stderr_lacks("was added");
    assert!(sb.path().join("a.ran").exists());
}

#[test]
fn mark_success_is_audited_and_lets_a_resume_pass() {
    let sb = Sandbox::new();
    flaky(&sb);
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let id = newest_run(&sb);
    let refused = sb.exe_with(
        &["mark-success", &id, "b", "--reason", "fixed by hand"],
        Some(b""),
    );
    assert_eq!(refused.code, 2, "no terminal, no --yes: {}", refused.stderr);
    let marked = sb.exe(&[
        "mark-success",
        &id,
        "b",
        "--reason",
        "fixed by hand",
        "--yes",
    ]);
    assert_eq!(marked.code, 0, "{}", marked.stderr);
    let detail = json(&sb.exe(&["show", &id, "--format", "json"]));
    let audit = detail["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["to"] == "SUCCESS" && t["job_id"] == "b")
        .unwrap();
    assert_eq!(audit["reason"], "fixed by hand");
    // user@host, with the user named by the uid even where USER is unset (cron, CI).
    let actor = audit["actor"].as_str().unwrap();
    assert!(
        actor
            .split_once('@')
            .is_some_and(|(user, _)| !user.is_empty()),
        "{actor}"
    );
    let b_attempts: Vec<_> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["job_id"] == "b")
        .collect();
    assert_eq!(b_attempts.len(), 1);
    assert_eq!(
        b_attempts[0]["outcome"], "FAILED",
        "the failed attempt stays as it was"
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml", "--resume", &id]).code, 0);
    assert_eq!(
        (count(&sb, "b.count"), count(&sb, "c.count")),
        (1, 1),
        "b was passed, c ran"
    );
    let bad = sb.exe(&["mark-success", &id, "zz", "--reason", "x", "--yes"]);
    assert_eq!(bad.code, 2);
    // A run started where USER and LOGNAME are unset records the same user.
    let mut unset = std::process::Command::new(env!("CARGO_BIN_EXE_exe"));
    unset
        .args(["apply", "-q", "p.toml"])
        .env_remove("USER")
        .env_remove("LOGNAME");
    sb.run(unset, None);
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    assert!(!runs[0]["user"].as_str().unwrap().is_empty(), "{runs}");
    assert_eq!(runs[0]["user"], runs[1]["user"], "{runs}");
}

#[test]
fn logs_of_each_attempt() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.f]\ncommand = \"n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; echo try $n; [ $n -ge 2 ]\"\nretry = { max = 2 }\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    let id = newest_run(&sb);
    assert_eq!(sb.exe(&["logs", &id, "f"]).stdout, "try 2\n");
    assert_eq!(
        sb.exe(&["logs", &id, "f", "--attempt", "1"]).stdout,
        "try 1\n"
    );
    assert_eq!(sb.exe(&["logs", &id, "f", "--attempt", "5"]).code, 2);
    assert_eq!(sb.exe(&["logs", &id, "nope"]).code, 2);
}

#[test]
fn a_removed_log_is_gone_whether_followed_or_not() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo hi\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    std::fs::remove_file(sb.path().join(".exe/logs/1/a.log")).unwrap();
    for args in [&["logs", "1", "a"][..], &["logs", "1", "a", "--follow"]] {
        let run = sb.exe_or_hang(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        run.assert_stderr_has(".exe/logs/1/a.log is gone");
    }
}

#[test]
fn bad_databases_get_a_clear_error_and_are_not_touched() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    sb.file(
        "garbage.db",
        "this is not a database, just text that is long enough to look like a file........",
    );
    let run = sb.exe(&["--db", "garbage.db", "runs"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_lacks("panicked");
    assert_eq!(sb.exe(&["--db", "garbage.db", "apply", "p.toml"]).code, 1);
    assert_eq!(
        std::fs::read(sb.path().join("garbage.db")).unwrap(),
        b"this is not a database, just text that is long enough to look like a file........"
    );
    // A database from a newer exe (its schema version is above ours).
    assert_eq!(sb.exe(&["--db", "new.db", "apply", "-q", "p.toml"]).code, 0);
    sb.sql("new.db", "PRAGMA user_version=999");
    let before = std::fs::read(sb.path().join("new.db")).unwrap();
    let newer = sb.exe(&["--db", "new.db", "apply", "p.toml"]);
    assert_eq!(newer.code, 1);
    newer.assert_stderr_has("newer");
    assert_eq!(
        std::fs::read(sb.path().join("new.db")).unwrap(),
        before,
        "a newer database is never modified"
    );
}

#[test]
fn a_db_that_is_not_a_file_is_refused_at_once() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    std::fs::create_dir(sb.path().join("hist")).unwrap();
    let folder = sb.exe(&["--db", "hist", "apply", "p.toml"]);
    assert_eq!(folder.code, 2, "{}", folder.stderr);
    insta::assert_snapshot!("db_is_a_folder", folder.stderr);
    assert_eq!(sb.exe(&["--db", "hist", "runs"]).code, 2);
    assert_eq!(
        std::fs::read_dir(sb.path().join("hist")).unwrap().count(),
        0
    );
    // A named pipe would block the open until something writes to it.
    let made = std::process::Command::new("mkfifo")
        .arg("pipe")
        .current_dir(sb.path())
        .status();
    assert!(made.unwrap().success());
    for command in [&["runs"][..], &["show", "1"], &["apply", "p.toml"]] {
        let run = sb.exe_or_hang(&[&["--db", "pipe"][..], command].concat());
        assert_eq!(run.code, 2, "{command:?}: {}", run.stderr);
        run.assert_stderr_has("pipe is a named pipe, not a file");
    }
    let device = sb.exe(&["--db", "/dev/null", "runs"]);
    assert_eq!(device.code, 2, "{}", device.stderr);
    device.assert_stderr_has("/dev/null is a device, not a file");
    // `.exe` made a file by hand: the default history's folder cannot be made.
    sb.file(".exe", "");
    let mark = ["mark-success", "1", "a", "--reason", "r", "--yes"];
    for command in [&["runs"][..], &["apply", "p.toml"], &mark] {
        let run = sb.exe(command);
        assert_eq!(run.code, 2, "{command:?}: {}", run.stderr);
        run.assert_stderr_has(
            "the history database .exe/history.db cannot be reached: .exe is a file, not a folder",
        );
        run.assert_stderr_lacks("permissions");
    }
}

#[test]
fn history_flags_refuse_what_they_cannot_mean() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    // A state that no run can be in is a typo, not an empty result.
    let bogus = sb.exe(&["runs", "--status", "succeeded"]);
    assert_eq!(bogus.code, 2, "{}", bogus.stderr);
    assert!(
        bogus
            .stderr
            .contains("[possible values: RUNNING, SUCCESS, FAILED, CANCELLED]"),
        "{}",
        bogus.stderr
    );
    let lower = json(&sb.exe(&["runs", "--status", "success", "--format", "json"]));
    assert_eq!(lower.as_array().unwrap().len(), 1);
    // An audit entry must say why.
    for reason in ["", "   "] {
        let blank = sb.exe(&["mark-success", "1", "a", "--reason", reason, "--yes"]);
        assert_eq!(blank.code, 2, "{}", blank.stderr);
        assert!(
            blank
                .stderr
                .contains("the reason is kept in the audit trail"),
            "{}",
            blank.stderr
        );
    }
    let detail = json(&sb.exe(&["show", "1", "--format", "json"]));
    assert!(
        detail["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["actor"] == "exe"),
        "nothing was recorded: {detail}"
    );
    // An empty file is a history with no runs, not a missing one.
    sb.file("empty.db", "");
    let empty = sb.exe(&["--db", "empty.db", "runs"]);
    assert_eq!(
        (empty.code, empty.stderr.as_str()),
        (0, "No runs recorded yet (empty.db holds none).\n")
    );
    // In JSON, no history is an empty list, as a history with no matching run is.
    for command in ["runs", "stats"] {
        for db in ["empty.db", "missing.db"] {
            let listed = sb.exe(&["--db", db, command, "--format", "json"]);
            assert_eq!(
                (listed.code, listed.stdout.as_str()),
                (0, "[]\n"),
                "{command} {db}"
            );
        }
    }
}

#[test]
fn concurrent_applies_on_one_database_get_unique_ids() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    let exe = env!("CARGO_BIN_EXE_exe");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let dir = sb.path().to_path_buf();
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| {
                        std::process::Command::new(exe)
                            .args(["apply", "-q", "--output", "quiet", "p.toml"])
                            .current_dir(&dir)
                            .output()
                            .unwrap()
                    })
                    .filter(|o| !o.status.success())
                    .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    let runs = json(&sb.exe(&["runs", "--format", "json", "--limit", "1000"]));
    let mut ids: Vec<i64> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 160);
    ids.dedup();
    assert_eq!(ids.len(), 160, "every run id is unique");
}

/// Kills what is left of the job whose shell was `pid` (its process group).
fn kill_group(pid: &str) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}

/// Starts `p.toml` (its job `long` sleeps in the background of its shell), kills exe with
/// SIGKILL once the job's process group is recorded, and returns the job shell's pid: its
/// group's id.
fn orphan_a_long_job(sb: &Sandbox) -> String {
    sb.file("p.toml", "[jobs.long]\ncommand = \"echo $$ > pid; sleep 100\"\n[jobs.after]\ncommand = \"touch after\"\nneeds = [\"long\"]\n");
    let mut child = sb.spawn(&["apply", "-q", "p.toml"]);
    let pid_file = sb.path().join("pid");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !pid_file.exists()
        || std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .is_empty()
    {
        assert!(std::time::Instant::now() < until, "the job never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The attempt is recorded before the job starts; its process group within 0.2 s after
    // (2 s here, for a slow machine; it used to wait up to 5 s for the heartbeat).
    let group_due = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while json(&sb.exe(&["show", "1", "--format", "json"]))["attempts"][0]["pgid"].is_null() {
        assert!(
            std::time::Instant::now() < group_due,
            "the attempt's process group was not recorded within 2 s of its start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: exe gets no chance to record anything more
    child.wait().unwrap();
    std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn applies_that_start_together_after_a_crash_close_the_dead_run_once() {
    let sb = Sandbox::new();
    let job_pid = orphan_a_long_job(&sb);
    sb.file("q.toml", "[jobs.x]\ncommand = \"true\"\n");
    let started: Vec<_> = (0..4)
        .map(|_| sb.spawn(&["apply", "-q", "q.toml"]))
        .collect();
    for child in started {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    kill_group(&job_pid);
    let shown = json(&sb.exe(&["show", "1", "--format", "json"]));
    assert_eq!(shown["run"]["state"], "CANCELLED");
    let died: Vec<_> = (shown["transitions"].as_array().unwrap().iter())
        .filter(|t| t["reason"] == "exe died")
        .collect();
    assert_eq!(died.len(), 2, "each job closed once: {died:?}");
}

#[test]
fn a_check_still_running_when_exe_died_is_found_by_recovery() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.j]\ncommand = \"true\"\n\
         post_checks = [{ check = \"command\", run = \"echo $$ > check.pid; exec sleep 30\" }]\n",
    );
    let mut child = sb.spawn(&["apply", "-q", "p.toml"]);
    let pid_file = sb.path().join("check.pid");
    let recorded = || {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3; print(sqlite3.connect('.exe/history.db').execute('SELECT COUNT(*) FROM attempt_groups').fetchone()[0])",
            ])
            .current_dir(sb.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(pid_file.exists() && recorded()) {
        assert!(
            std::time::Instant::now() < until,
            "the check's group was not recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL, while the post-check runs
    child.wait().unwrap();
    let check_pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    sb.file("q.toml", "[jobs.x]\ncommand = \"true\"\n");
    let next = sb.exe(&["apply", "q.toml"]);
    kill_group(&check_pid);
    assert_eq!(next.code, 0, "{}", next.stderr);
    next.assert_stderr_has("left RUNNING by an exe that died");
    next.assert_stderr_has(&format!("kill -- -{check_pid}"));
}

#[test]
fn a_run_whose_exe_was_killed_is_closed_and_resumable() {
    let sb = Sandbox::new();
    let job_pid = orphan_a_long_job(&sb);
    // Readers say the run's exe is gone; they leave it as recorded.
    sb.exe(&["runs"]).assert_stdout_has("RUNNING (exe gone)");
    let shown = sb.exe(&["show", "1"]);
    shown.assert_stdout_has("Run 1: p RUNNING (exe gone)");
    // It lasted until its last sign of life, not until now: however long it is dead.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let duration = |text: &str, marker: &str| -> f64 {
        let line = text.lines().find(|l| l.contains(marker)).unwrap();
        let took = line
            .split_whitespace()
            .find(|w| w.ends_with('s') || w.ends_with("s+"));
        took.unwrap()
            .trim_end_matches('+')
            .trim_end_matches('s')
            .parse()
            .unwrap()
    };
    let shown = sb.exe(&["show", "1"]).stdout;
    assert!(duration(&shown, "duration:") < 1.0, "{shown}");
    let listed = sb.exe(&["runs"]).stdout;
    assert!(duration(&listed, "exe gone") < 1.0, "{listed}");
    assert_eq!(
        json(&sb.exe(&["runs", "--format", "json"]))[0]["state"],
        "RUNNING"
    );
    // The next exe that opens the history closes the orphaned run and reports the job's group.
    sb.file("q.toml", "[jobs.x]\ncommand = \"true\"\n");
    let next = sb.exe(&["apply", "q.toml"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    next.assert_stderr_has("left RUNNING by an exe that died");
    next.assert_stderr_has(&format!("kill -- -{job_pid}"));
    kill_group(&job_pid);
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    let dead = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "p")
        .unwrap();
    assert_eq!(dead["state"], "CANCELLED");
    let detail = json(&sb.exe(&["show", &dead["id"].to_string(), "--format", "json"]));
    let long = detail["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == "long")
        .unwrap();
    assert_eq!(long["state"], "CANCELLED");
    assert_eq!(long["reason"], "exe died");
    // Every attempt that started is recorded, and ended honestly.
    assert_eq!(detail["attempts"][0]["outcome"], "CANCELLED");
    let resumed = sb.exe(&[
        "apply",
        "-q",
        "p.toml",
        "--resume",
        &dead["id"].to_string(),
        "--set",
        "jobs.long.command=echo resumed",
    ]);
    assert_eq!(
        resumed.code, 2,
        "the pipeline changed, so resuming needs --allow-changes: {}",
        resumed.stderr
    );
    let resumed = sb.exe(&[
        "apply",
        "-q",
        "p.toml",
        "--resume",
        &dead["id"].to_string(),
        "--set",
        "jobs.long.command=echo resumed",
        "--allow-changes",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(sb.path().join("after").exists());
}

#[test]
fn following_the_log_of_a_run_whose_exe_died_stops() {
    let sb = Sandbox::new();
    let job_pid = orphan_a_long_job(&sb);
    // The attempt will never end in the history: --follow says so instead of waiting forever.
    let follow = sb.exe_or_hang(&["logs", "1", "long", "--follow"]);
    kill_group(&job_pid);
    assert_eq!(follow.code, 1, "{}", follow.stderr);
    follow.assert_stderr_has("the exe running run 1 is gone");
}

/// `exe apply q.toml` on a terminal (`script` gives it one), answering `answer`.
fn apply_on_a_terminal(sb: &Sandbox, answer: &[u8]) -> Run {
    sb.file("q.toml", "[jobs.x]\ncommand = \"true\"\n");
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("'{}' apply q.toml", env!("CARGO_BIN_EXE_exe")),
        "/dev/null",
    ]);
    sb.run(cmd, Some(answer))
}

#[test]
fn on_a_terminal_exe_offers_to_end_a_dead_runs_group() {
    let sb = Sandbox::new();
    let job_pid = orphan_a_long_job(&sb);
    let next = apply_on_a_terminal(&sb, b"y\n");
    assert_eq!(next.code, 0, "{}", next.stdout);
    next.assert_stdout_has(&format!(
        "process group {job_pid} of job `long` (run 1) is still running. \
             End it (SIGTERM, then SIGKILL after 5.0s)? [y/N]"
    ));
    assert!(
        next.stdout
            .contains(&format!("Ended process group {job_pid}.")),
        "{}",
        next.stdout
    );
    assert!(!pid_alive(&job_pid), "the job's shell is gone");
}

#[test]
fn a_group_the_user_keeps_is_left_running() {
    let sb = Sandbox::new();
    let job_pid = orphan_a_long_job(&sb);
    let next = apply_on_a_terminal(&sb, b"n\n");
    assert_eq!(next.code, 0, "{}", next.stdout);
    next.assert_stdout_has(&format!(
        "Left running; end it later with: kill -- -{job_pid}"
    ));
    assert!(pid_alive(&job_pid), "the job's shell was left alone");
    kill_group(&job_pid);
}

#[test]
fn every_group_of_a_dead_run_is_offered_however_long_the_user_takes() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 2\n\
         [jobs.a]\ncommand = \"sleep 100\"\n\
         [jobs.b]\ncommand = \"sleep 100\"\n",
    );
    let mut child = sb.spawn(&["apply", "-q", "p.toml"]);
    let due = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let groups = loop {
        let shown = sb.exe(&["show", "1", "--format", "json"]);
        let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap_or_default();
        let groups: Vec<String> = (shown["attempts"].as_array().into_iter().flatten())
            .filter_map(|a| a["pgid"].as_i64().map(|g| g.to_string()))
            .collect();
        if groups.len() == 2 {
            break groups;
        }
        assert!(std::time::Instant::now() < due, "both groups recorded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // The first question is answered after 3 s: the second group is still asked about.
    sb.file("q.toml", "[jobs.x]\ncommand = \"true\"\n");
    let next =
        sb.sh("(sleep 3; echo n; sleep 1; echo n) | script -qec \"'$0' apply q.toml\" /dev/null");
    for group in &groups {
        kill_group(group);
    }
    assert_eq!(next.code, 0, "{}", next.stdout);
    assert_eq!(next.stdout.matches("[y/N]").count(), 2, "{}", next.stdout);
    next.assert_stdout_lacks("is still running; end it with");
}

#[test]
fn stats_give_durations_and_failure_rates_per_job() {
    let sb = Sandbox::new();
    flaky(&sb);
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    sb.file("fixed", "");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    let stats = json(&sb.exe(&["stats", "--format", "json"]));
    let b = job_stats(&stats, "b");
    assert_eq!(
        (b["runs"].as_u64(), b["failed"].as_u64()),
        (Some(3), Some(1))
    );
    let c = job_stats(&stats, "c");
    assert_eq!(c["runs"], 2, "c never ran in the failed run");
    assert!(b["p95_ms"].as_i64().unwrap() >= b["p50_ms"].as_i64().unwrap());
    let last_two = json(&sb.exe(&["stats", "--format", "json", "--last", "2"]));
    let b = job_stats(&last_two, "b");
    assert_eq!(
        (b["runs"].as_u64(), b["failed"].as_u64()),
        (Some(2), Some(0))
    );
    // Marking the failure successful does not make it a success in the statistics.
    let mark = sb.exe(&["mark-success", "1", "b", "--reason", "by hand", "--yes"]);
    assert_eq!(mark.code, 0, "{}", mark.stderr);
    let stats = json(&sb.exe(&["stats", "--format", "json"]));
    assert_eq!(job_stats(&stats, "b")["failed"], 1);
    let text = sb.exe(&["stats"]);
    assert!(
        text.stdout
            .starts_with("Over the last 3 finished runs:\nPIPELINE  JOB"),
        "{}",
        text.stdout
    );
    let other = sb.exe(&["stats", "--name", "nightly-typo"]);
    assert_eq!(
        (other.code, other.stdout.as_str(), other.stderr.as_str()),
        (0, "", "No finished runs of `nightly-typo` to look at.\n")
    );
}

/// The older executioner's table of job results (its `run_summary` came in schema version 5).
const JOB_HISTORY: &str = "CREATE TABLE job_history (run_id INTEGER, id TEXT, description TEXT,
    command TEXT, status TEXT, application_name TEXT, last_run TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    retry_count INTEGER DEFAULT 0, last_error TEXT, PRIMARY KEY (run_id, id));";

/// The older tool's history at `db`, from before its `run_summary`: two runs of `legacy_app`,
/// the first succeeded, the second failed.
fn two_old_runs(sb: &Sandbox, db: &str) {
    sb.sql(
        db,
        &format!(
            "{JOB_HISTORY}
             INSERT INTO job_history (run_id, id, status, application_name, last_run) VALUES
               (1, 'a', 'SUCCESS', 'legacy_app', '2024-01-01 00:00:00'), (2, 'a', 'FAILED', 'legacy_app', '2024-01-02 00:00:00');"
        ),
    );
}

#[test]
fn the_older_tools_history_is_imported_once() {
    let sb = Sandbox::new();
    two_old_runs(&sb, "old.db");
    let run = sb.exe(&["migrate", "--history", "old.db"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("Imported 2 runs (2 jobs)");
    let runs = json(&sb.exe(&["runs", "--format", "json", "--name", "legacy_app"]));
    let states: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["FAILED", "SUCCESS"], "newest first");
    let shown = sb.exe(&["show", &runs[0]["id"].to_string()]);
    shown.assert_stdout_has("UTC by the older executioner (imported)\n");
    let again = sb.exe(&["migrate", "--history", "old.db"]);
    again.assert_stderr_has("2 were already imported");
    let missing = sb.exe(&["migrate", "--history", "missing.db"]);
    assert_eq!(missing.code, 2);
    missing.assert_stderr_has("missing.db does not exist");
    // A file that is not the older tool's history is a mistake on the command line; the
    // help is about what --history takes, not about exe's own database.
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    let wrong = sb.exe(&["migrate", "--history", "p.toml"]);
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains("p.toml is not a history of the older executioner"),
        "{}",
        wrong.stderr
    );
    wrong.assert_stderr_has("--history takes");
    wrong.assert_stderr_lacks("move p.toml aside");
    // exe's own history is SQLite too, but not the older tool's: said once, plainly.
    let own = sb.exe(&["migrate", "--history", ".exe/history.db"]);
    assert_eq!(own.code, 2, "{}", own.stderr);
    own.assert_stderr_has(
        ".exe/history.db is not a history of the older executioner: it has no `job_history` table\n",
    );
}

#[test]
fn an_old_history_is_recognised_however_its_path_is_written() {
    let sb = Sandbox::new();
    two_old_runs(&sb, "executioner.db");
    let first = sb.exe(&["migrate", "--history", "executioner.db"]);
    first.assert_stderr_has("Imported 2 runs (2 jobs)");
    std::os::unix::fs::symlink("executioner.db", sb.path().join("link.db")).unwrap();
    let absolute = sb.path().join("executioner.db");
    for again in ["./executioner.db", absolute.to_str().unwrap(), "link.db"] {
        let run = sb.exe(&["migrate", "--history", again]);
        run.assert_stderr_has("Imported 0 runs (0 jobs)");
        run.assert_stderr_has("2 were already imported");
    }
    // Earlier imports kept the path as typed: a relative one is read from this folder.
    sb.sql(
        ".exe/history.db",
        "UPDATE runs SET file = substr(file, instr(file, 'executioner.db'))",
    );
    let run = sb.exe(&["migrate", "--history", absolute.to_str().unwrap()]);
    run.assert_stderr_has("2 were already imported");
}

#[test]
fn jobs_of_an_old_run_without_a_summary_are_imported_with_a_warning() {
    let sb = Sandbox::new();
    // The older tool writes a run's summary when it ends; run 3 crashed before that.
    sb.sql(
        "old.db",
        &format!(
            "{JOB_HISTORY}
             CREATE TABLE run_summary (run_id INTEGER PRIMARY KEY, application_name TEXT NOT NULL,
               start_time TIMESTAMP NOT NULL, end_time TIMESTAMP, status TEXT, exit_code INTEGER);
             INSERT INTO run_summary VALUES (1, 'app', '2024-01-01 00:00:00', '2024-01-01 00:01:00', 'SUCCESS', 0),
               (2, 'app', '2024-01-02 00:00:00', '2024-01-02 00:01:00', 'SUCCESS', 0);
             INSERT INTO job_history (run_id, id, status, application_name, last_run) VALUES
               (1, 'a', 'SUCCESS', 'app', '2024-01-01 00:01:00'), (1, 'b', 'SUCCESS', 'app', '2024-01-01 00:01:00'),
               (2, 'a', 'SUCCESS', 'app', '2024-01-02 00:01:00'), (3, 'a', 'SUCCESS', 'app', '2024-01-03 00:01:00');"
        ),
    );
    let run = sb.exe(&["migrate", "--history", "old.db"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("Imported 3 runs (4 jobs)");
    run.assert_stderr_has(
        "warning: executioner wrote no summary of run 3 (it stopped first): imported from its \
         jobs, as FAILED if one failed, else CANCELLED",
    );
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    assert_eq!(runs[0]["state"], "CANCELLED", "{runs}");
}

#[test]
fn logs_of_an_imported_run_say_the_older_tool_kept_none() {
    let sb = Sandbox::new();
    sb.sql(
        "old.db",
        &format!(
            "{JOB_HISTORY}
             INSERT INTO job_history (run_id, id, status, application_name, last_run, retry_count) VALUES
               (1, 'extract', 'SUCCESS', 'app', '2024-01-01 00:00:00', 0),
               (1, 'load', 'FAILED', 'app', '2024-01-01 00:01:00', 2);"
        ),
    );
    assert_eq!(sb.exe(&["migrate", "--history", "old.db"]).code, 0);
    let none = "no log was recorded for attempt 3 of job `load` in run 1: the run was imported \
                from the older executioner, which kept no logs";
    for args in [
        &["logs", "1", "load"][..],
        &["logs", "1", "load", "--follow"],
    ] {
        let run = sb.exe_or_hang(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        run.assert_stderr_has(none);
    }
    let extract = sb.exe(&["logs", "1", "extract"]);
    extract.assert_stderr_has("no log was recorded for attempt 1 of job `extract` in run 1");
    let first = sb.exe(&["logs", "1", "load", "--attempt", "1"]);
    first.assert_stderr_has("job `load` has no attempt 1 in run 1 (recorded: 3)");
}

/// Kills exe with SIGKILL at 20 points of a run and checks the history each time: every
/// attempt whose process started is recorded, nothing is recorded as done that did not
/// happen, no transition is duplicated or out of order, and a resume finishes the run.
#[test]
fn kill_9_at_random_points_then_resume() {
    let sb = Sandbox::new();
    // Each job notes when its process starts and when it is about to succeed.
    let mut text = String::from("max_parallel = 3\n");
    for i in 0..8 {
        let needs = if i >= 3 {
            format!("needs = [\"j{}\"]\n", i - 3)
        } else {
            String::new()
        };
        text.push_str(&format!(
            "[jobs.j{i}]\ncommand = \"echo j{i} >> started; sleep 0.0{}; echo j{i} >> finished\"\n{needs}",
            (i * 3) % 10
        ));
    }
    sb.file("p.toml", &text);
    let exe = env!("CARGO_BIN_EXE_exe");
    for point in 0..20u64 {
        for f in ["started", "finished"] {
            let _ = std::fs::remove_file(sb.path().join(f));
        }
        let newest = |sb: &Sandbox| -> Option<i64> {
            let listed = json(&sb.exe(&["runs", "--format", "json", "--limit", "1"]));
            listed
                .as_array()
                .unwrap()
                .first()
                .map(|r| r["id"].as_i64().unwrap())
        };
        let before = newest(&sb).unwrap_or(0);
        let mut child = std::process::Command::new(exe)
            .args(["apply", "-q", "--output", "quiet", "p.toml"])
            .current_dir(sb.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the whole run (a few ms to ~200 ms), differently each time.
        std::thread::sleep(std::time::Duration::from_millis(3 + (point * 37) % 200));
        let _ = child.kill();
        child.wait().unwrap();
        let started = std::fs::read_to_string(sb.path().join("started")).unwrap_or_default();
        let finished = std::fs::read_to_string(sb.path().join("finished")).unwrap_or_default();
        // Killed before it recorded a run: nothing ran (no job starts before its run exists).
        let Some(killed) = newest(&sb).filter(|&id| id > before) else {
            assert!(
                started.is_empty(),
                "point {point}: jobs started without a recorded run"
            );
            continue;
        };
        let id = killed.to_string();
        let resumed = sb.exe(&[
            "apply", "-q", "--output", "quiet", "p.toml", "--resume", &id,
        ]);
        assert!(
            resumed.code == 0,
            "point {point}: the resume must finish the run: {}",
            resumed.stderr
        );
        let detail = json(&sb.exe(&["show", &id, "--format", "json"]));
        let attempts = detail["attempts"].as_array().unwrap();
        for job in started.lines() {
            assert!(
                attempts.iter().any(|a| a["job_id"] == job),
                "point {point}: {job} started but is not recorded"
            );
        }
        for a in attempts {
            if a["outcome"] == "SUCCESS" {
                let job = a["job_id"].as_str().unwrap();
                assert!(
                    finished.lines().any(|l| l == job),
                    "point {point}: {job} recorded SUCCESS but never finished"
                );
            }
        }
        // Per job, each transition leaves the state the previous one entered, once.
        let mut state: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for t in detail["transitions"].as_array().unwrap() {
            let job = t["job_id"].as_str().unwrap().to_owned();
            let from = state
                .get(&job)
                .cloned()
                .unwrap_or_else(|| "PENDING".to_owned());
            assert_eq!(
                t["from"].as_str().unwrap(),
                from,
                "point {point}: {job}: {t}"
            );
            state.insert(job, t["to"].as_str().unwrap().to_owned());
        }
    }
}

#[test]
fn logs_follow_prints_until_the_attempt_ends() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.slow]\ncommand = \"echo one; touch ready; sleep 0.5; echo two\"\n",
    );
    let mut child = sb.spawn(&["apply", "-q", "--output", "quiet", "p.toml"]);
    sb.wait_for("ready");
    // While the job still runs, --follow keeps reading until the attempt's end is recorded.
    let followed = sb.exe(&["logs", "1", "slow", "--follow"]);
    assert_eq!(followed.code, 0, "{}", followed.stderr);
    assert_eq!(followed.stdout, "one\ntwo\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_database_left_without_a_schema_reads_as_no_runs() {
    let sb = Sandbox::new();
    // What an exe killed right after creating the file leaves: a database with no tables.
    std::fs::create_dir_all(sb.path().join(".exe")).unwrap();
    sb.sql(".exe/history.db", "PRAGMA journal_mode=WAL");
    let runs = sb.exe(&["runs", "--format", "json"]);
    assert_eq!(
        (runs.code, runs.stdout.as_str()),
        (0, "[]\n"),
        "{}",
        runs.stderr
    );
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(
        sb.exe(&["apply", "-q", "p.toml"]).code,
        0,
        "apply creates the schema"
    );
    assert_eq!(runs_recorded(&sb), 1);
}

#[test]
fn a_schema_4_history_reads_the_same_before_and_after_apply_upgrades_it() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join(".exe")).unwrap();
    std::fs::copy(
        crate::harness::repo().join("tests/fixtures/history/v4.db"),
        sb.path().join(".exe/history.db"),
    )
    .unwrap();
    let show = |run: &str| {
        let shown = sb.exe(&["show", run, "--format", "json"]);
        assert_eq!(shown.code, 0, "{}", shown.stderr);
        let mut doc = json(&shown);
        // The part of the audit trail and attempts that an upgrade must keep as it was.
        let trail: Vec<_> = doc["transitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{} {} {}->{} {}",
                    t["id"], t["job_id"], t["from"], t["to"], t["actor"]
                )
            })
            .collect();
        let attempts: Vec<_> = doc["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| format!("{} #{} {}", a["job_id"], a["number"], a["outcome"]))
            .collect();
        let jobs = doc["jobs"].take();
        (trail, attempts, jobs)
    };
    // Read as it is: the read-only commands do not upgrade.
    let before = show("1");
    assert_eq!(before.0.len(), 11, "{:?}", before.0);
    assert!(before.0[0].starts_with("1 "), "{:?}", before.0);
    assert!(
        before.0[10].contains("\"flaky\" \"FAILED\"->\"SUCCESS\""),
        "{:?}",
        before.0
    );
    assert_eq!(show("2").0.len(), 5);
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    let applied = sb.exe(&["apply", "-q", "p.toml"]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert_eq!(show("1"), before, "run 1 reads the same after the upgrade");
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    assert_eq!(runs[0]["id"], 3, "a new run after the old ones");
    let third = show("3");
    assert_eq!(third.0.len(), 3, "{:?}", third.0);
    assert!(third.0[0].starts_with("1 "), "numbered from 1 in its run");
}

/// One job's entry in `exe stats --format json`.
#[test]
fn stats_and_show_time_a_retried_job_from_its_first_start_to_its_last_end() {
    let sb = Sandbox::new();
    // The first attempt sleeps 0.4 s and fails; the second succeeds at once.
    sb.file(
        "p.toml",
        "[jobs.r]\ncommand = \"test -e tried || { touch tried; sleep 0.4; exit 1; }\"\n\
         retry = { max = 1, delay = \"0s\" }\n\
         [jobs.s]\ncommand = \"true\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    let stats = json(&sb.exe(&["stats", "--format", "json"]));
    let r = job_stats(&stats, "r");
    assert!(r["p50_ms"].as_i64().unwrap() >= 400, "{r}");
    assert!(
        job_stats(&stats, "s")["p50_ms"].as_i64().unwrap() < 400,
        "{stats}"
    );
    // `exe show` gives r the same span, not its last attempt's few milliseconds.
    let show = sb.exe(&["show", "1"]);
    let row = show.stdout.lines().find(|l| l.starts_with("r ")).unwrap();
    let took: f64 = row
        .split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(took >= 0.4, "{row}");
}

fn job_stats<'a>(stats: &'a serde_json::Value, job: &str) -> &'a serde_json::Value {
    stats
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["job"] == job)
        .unwrap()
}

#[test]
fn attempts_record_cpu_time_and_peak_memory() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.big]\ncommand = \"dd if=/dev/zero of=/dev/null bs=64M count=1\"\n\
         [jobs.spin]\ncommand = \"i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done\"\n\
         [jobs.checked]\ncommand = \"dd if=/dev/zero of=/dev/null bs=64M count=1\"\n\
         post_checks = [{ check = \"command\", run = \"true\" }]\n\
         [jobs.blocked]\ncommand = \"true\"\n\
         pre_checks = [{ check = \"file_exists\", path = \"missing\" }]\n",
    );
    // exe inherits the peak of the process that started it (this test binary) into its own
    // rusage; a large one must not hide the jobs' figures.
    let ballast = vec![1u8; 160 << 20];
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    drop(std::hint::black_box(ballast));
    let id = newest_run(&sb);
    let detail = json(&sb.exe(&["show", &id, "--format", "json"]));
    let attempt = |job: &str| {
        detail["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["job_id"] == job)
            .unwrap_or_else(|| panic!("no attempt of {job}: {detail}"))
            .clone()
    };
    let cpu = |a: &serde_json::Value| {
        a["user_cpu_us"].as_i64().unwrap() + a["system_cpu_us"].as_i64().unwrap()
    };
    // dd's 64 MiB buffer is filled, so it is resident; this holds for the coordinator's
    // own spawn (`big`) and for a worker's (`checked`, which has a check).
    for job in ["big", "checked"] {
        let a = attempt(job);
        assert!(
            a["max_rss_kib"]
                .as_i64()
                .is_some_and(|kib| kib >= 64 * 1024),
            "{a}"
        );
    }
    let spin = attempt("spin");
    assert!(cpu(&spin) >= 5_000, "a 50,000-step shell loop: {spin}");
    // A pre-check failed: the command never ran, so nothing was measured.
    let blocked = attempt("blocked");
    assert!(
        blocked["user_cpu_us"].is_null() && blocked["max_rss_kib"].is_null(),
        "{blocked}"
    );
    let text = sb.exe(&["show", &id]).stdout;
    let big_line = text.lines().find(|l| l.contains("big #1")).unwrap();
    assert!(
        big_line.contains(", cpu ") && big_line.contains(", max RSS 6"),
        "{text}"
    );
}

#[test]
fn a_run_still_running_is_neither_resumed_nor_marked() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.slow]\ncommand = \"echo run >> slow.count; touch ready; while [ ! -e go ]; do sleep 0.05; done\"\n\
         [jobs.after]\ncommand = \"true\"\nneeds = [\"slow\"]\n",
    );
    let mut child = sb.spawn(&["apply", "-q", "--output", "quiet", "p.toml"]);
    sb.wait_for("ready");
    // Resuming it would run `slow` a second time beside the first.
    let resume = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    let mark = sb.exe(&["mark-success", "1", "after", "--reason", "x", "--yes"]);
    sb.file("go", "");
    assert!(child.wait().unwrap().success());
    assert_eq!(resume.code, 2, "{}", resume.stderr);
    resume.assert_stderr_has("run 1 is still running (exe pid");
    resume.assert_stderr_has("resume it once it has ended");
    assert_eq!(mark.code, 2, "{}", mark.stderr);
    mark.assert_stderr_has("run 1 is still running");
    assert_eq!(count(&sb, "slow.count"), 1);
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    assert_eq!(runs.as_array().unwrap().len(), 1, "nothing else recorded");
    let trail = json(&sb.exe(&["show", "1", "--format", "json"]))["transitions"]
        .as_array()
        .unwrap()
        .len();
    // Once it has ended, its jobs can be marked; a job that succeeded already records nothing.
    let again = sb.exe(&[
        "mark-success",
        "1",
        "slow",
        "after",
        "--reason",
        "x",
        "--yes",
    ]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    again.assert_stderr_has("slow, after already succeeded in run 1: nothing recorded for them.");
    again.assert_stderr_lacks("Recorded");
    let after = json(&sb.exe(&["show", "1", "--format", "json"]))["transitions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, trail);
}

#[test]
fn logs_follow_waits_for_the_job_and_goes_through_its_retries() {
    let sb = Sandbox::new();
    // `flaky` fails twice, then succeeds, a second apart (so its follower, started at once,
    // sees attempts 2 and 3 start); `later` starts only after it; `gate` holds a slot of its
    // own until the test says go.
    sb.file(
        "p.toml",
        "max_parallel = 2\n\
         [jobs.flaky]\n\
         command = \"echo try >> tries; n=$(wc -l < tries); echo try $n; test $n -ge 3\"\n\
         retry = { max = 3, delay = \"1s\" }\n\
         [jobs.later]\ncommand = \"echo later\"\nneeds = [\"flaky\"]\n\
         [jobs.never]\ncommand = \"echo never\"\nneeds = [\"gate\"]\n\
         [jobs.gate]\ncommand = \"touch ready; while [ ! -e go ]; do sleep 0.05; done; false\"\n",
    );
    let mut child = sb.spawn(&["apply", "-q", "--output", "quiet", "p.toml"]);
    sb.wait_for("ready");
    // `later` has not started: --follow waits for it, after all three attempts of `flaky`.
    let later = sb.spawn(&["logs", "1", "later", "--follow"]);
    let flaky = sb.exe(&["logs", "1", "flaky", "--follow"]);
    // `never` waits for `gate`, which fails: it ends without running.
    let never = sb.spawn(&["logs", "1", "never", "--follow"]);
    sb.file("go", "");
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert_eq!(flaky.code, 0, "{}", flaky.stderr);
    assert!(
        flaky.stdout.ends_with("try 2\ntry 3\n"),
        "every attempt's log, in order: {}",
        flaky.stdout
    );
    flaky.assert_stderr_has("--- attempt 3 of `flaky` ---");
    let later = later.wait_with_output().unwrap();
    assert_eq!(later.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&later.stdout), "later\n");
    let never = never.wait_with_output().unwrap();
    assert_eq!(never.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&never.stderr).contains("job `never` did not run in run 1"));
}

#[test]
fn logs_are_found_from_any_folder() {
    let sb = Sandbox::new();
    sb.file("sub/p.toml", "[jobs.a]\ncommand = \"echo from-a\"\n");
    sb.file("elsewhere/.keep", "");
    assert_eq!(sb.exe(&["apply", "-q", "sub/p.toml"]).code, 0);
    let attempt = &json(&sb.exe(&["show", "1", "--format", "json"]))["attempts"][0];
    let log = attempt["log_path"].as_str().unwrap();
    assert!(log.starts_with('/'), "recorded absolute: {log}");
    let logs = sb.sh("cd elsewhere && \"$0\" --db ../.exe/history.db logs 1 a");
    assert_eq!(
        (logs.code, logs.stdout.as_str()),
        (0, "from-a\n"),
        "{}",
        logs.stderr
    );
}

#[test]
fn a_failed_run_whose_failures_were_all_marked_has_nothing_to_resume() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"exit 1\"\n[jobs.b]\ncommand = \"true\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    // `b` was cancelled when `a` failed: both are marked.
    let mark = sb.exe(&[
        "mark-success",
        "1",
        "a",
        "b",
        "--reason",
        "done by hand",
        "--yes",
    ]);
    assert_eq!(mark.code, 0, "{}", mark.stderr);
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    resumed.assert_stderr_has("every job of run 1 (FAILED) has succeeded: nothing to do");
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    assert_eq!(runs.as_array().unwrap().len(), 1, "nothing recorded");
}

#[test]
fn an_empty_exe_db_means_the_default_history() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    let runs = sb.sh("EXE_DB= \"$0\" runs --format json");
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    assert_eq!(json(&runs).as_array().unwrap().len(), 1);
}

#[test]
fn a_run_stopped_after_its_last_job_succeeded_has_nothing_to_resume() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    // As recovery leaves a run whose exe was killed after its last job's end was committed.
    sb.sql(".exe/history.db", "UPDATE runs SET state = 'CANCELLED'");
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    resumed.assert_stderr_has("every job of run 1 (CANCELLED) has succeeded: nothing to do");
    let runs = json(&sb.exe(&["runs", "--format", "json"]));
    assert_eq!(runs.as_array().unwrap().len(), 1, "nothing recorded");
}

#[test]
fn logs_and_mark_success_name_matrix_jobs_by_their_pairs() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.build]\ncommand = \"echo {{ matrix.os }}-{{ matrix.arch }}; test {{ matrix.arch }} = x86\"\nmatrix = { os = [\"linux\", \"mac\"], arch = [\"x86\", \"arm\"] }\n",
    );
    assert_eq!(
        sb.exe(&["apply", "-q", "--continue-on-error", "p.toml"])
            .code,
        1
    );
    let logs = sb.exe(&["logs", "1", "build[os=mac,arch=arm]"]);
    assert_eq!(
        (logs.code, logs.stdout.as_str()),
        (0, "mac-arm\n"),
        "{}",
        logs.stderr
    );
    let several = sb.exe(&["logs", "1", "build[os=linux]"]);
    assert_eq!(several.code, 2);
    several.assert_stderr_has(
        "`build[os=linux]` names 2 jobs of run 1: build[arch=x86,os=linux], build[arch=arm,os=linux]",
    );
    // Both `arm` expansions failed; the name marks them, and says the others succeeded.
    let mark = sb.exe(&["mark-success", "1", "build", "--reason", "by hand", "--yes"]);
    assert_eq!(mark.code, 0, "{}", mark.stderr);
    mark.assert_stderr_has("build[arch=x86,os=linux], build[arch=x86,os=mac] already succeeded");
    mark.assert_stderr_has("Recorded build[arch=arm,os=linux], build[arch=arm,os=mac] of run 1");
    let shown = json(&sb.exe(&["show", "1", "--format", "json"]));
    let states: Vec<&str> = (shown["jobs"].as_array().unwrap().iter())
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["SUCCESS"; 4]);
}

#[test]
fn a_dead_run_is_listed_as_lasting_until_its_last_fold_between_heartbeats() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"sleep 1\"\n\
         [jobs.b]\ncommand = \"echo $$ > b; sleep 30\"\nneeds = [\"a\"]\n",
    );
    let mut exe = sb.spawn(&["apply", "p.toml"]);
    sb.wait_for("b");
    // `b`'s start is folded within 0.1 s (the first heartbeat would come at 5 s).
    std::thread::sleep(std::time::Duration::from_millis(400));
    exe.kill().unwrap();
    exe.wait().unwrap();
    let listed = sb.exe(&["runs"]).stdout;
    let line = listed.lines().find(|l| l.contains("exe gone")).unwrap();
    let took: f64 = (line.split_whitespace())
        .find_map(|w| w.strip_suffix("s+"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((1.0..5.0).contains(&took), "{listed}");
    let group = std::fs::read_to_string(sb.path().join("b")).unwrap();
    kill_group(group.trim());
}
