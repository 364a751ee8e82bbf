//! Up to date through the real binary: a second apply skips what did not change, and
//! exactly what changed (with everything that needs it) runs again; plan says why.

use std::path::Path;

use crate::harness::Sandbox;

/// `load` reads sql/*.sql into out/load.csv; `report` needs it and reads that file;
/// `docs` stands alone. Every job appends its name to runs.log when it runs.
const PIPELINE: &str = r#"
[jobs.load]
command = "mkdir -p out && cat sql/*.sql > out/load.csv && echo load >> runs.log"
inputs = ["sql/*.sql"]
outputs = ["out/load.csv"]

[jobs.report]
command = "wc -l < out/load.csv > out/report.txt && echo report >> runs.log"
inputs = ["out/load.csv"]
outputs = ["out/report.txt"]
needs = ["load"]

[jobs.docs]
command = "echo docs >> runs.log"
inputs = ["docs/*.md"]
"#;

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.file("p.toml", PIPELINE);
    sb.file("sql/a.sql", "select 1;\n");
    sb.file("sql/b.sql", "select 2;\n");
    sb.file("docs/index.md", "# docs\n");
    sb
}

/// Applies `p.toml` with `extra` flags, expecting success; returns the jobs that ran.
fn apply(sb: &Sandbox, extra: &[&str]) -> Vec<String> {
    let before = ran(sb).len();
    let mut args = vec!["apply", "p.toml"];
    args.extend_from_slice(extra);
    let run = sb.exe(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    ran(sb)[before..].to_vec()
}

/// Every job run so far, in order.
fn ran(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.path().join("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn plan_json(sb: &Sandbox, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["plan", "p.toml", "--format", "json"];
    args.extend_from_slice(extra);
    let run = sb.exe(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

/// Each job's id with its decision and reasons: `load: run (inputs changed: sql/a.sql)`.
fn decisions(sb: &Sandbox, extra: &[&str]) -> Vec<String> {
    let doc = plan_json(sb, extra);
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let why: Vec<&str> = j["changes"]
                .as_array()
                .map(|c| c.iter().map(|c| c.as_str().unwrap()).collect())
                .unwrap_or_default();
            let reason = j["reason"].as_str().map(str::to_owned);
            let detail = reason.unwrap_or_else(|| why.join("; "));
            format!(
                "{}: {} ({detail})",
                j["id"].as_str().unwrap(),
                j["decision"].as_str().unwrap()
            )
        })
        .collect()
}

/// Writes `text` to the sandbox file `name` (creating folders).
fn write(sb: &Sandbox, name: &str, text: &str) {
    sb.file(name, text);
}

#[test]
fn the_second_apply_finds_everything_up_to_date() {
    let sb = sandbox();
    assert_eq!(apply(&sb, &[]), ["load", "report", "docs"]);
    let second = sb.exe(&["apply", "p.toml"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(ran(&sb).len(), 3, "nothing ran again: {:?}", ran(&sb));
    second.assert_stderr_has("load SKIPPED: up to date");
    second.assert_stderr_has("3 skipped");
    // Recorded like any other skip.
    let show = sb.exe(&["show", "2", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    let reasons: Vec<(&str, &str)> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["state"].as_str().unwrap(), j["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(reasons, [("SKIPPED", "up to date"); 3]);

    let plan = sb.exe(&["plan", "p.toml", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "nothing to do: {}", plan.stdout);
    plan.assert_stdout_has("Plan: 0 to run, 3 skipped.");
    // `--dry-run` agrees with plan.
    let dry = sb.exe(&["apply", "p.toml", "--dry-run"]);
    assert_eq!(dry.stdout, plan.stdout);
}

#[test]
fn a_changed_input_reruns_its_job_and_the_jobs_that_need_it_only() {
    let sb = sandbox();
    apply(&sb, &[]);
    // A new modification time with the same content changes nothing.
    let a = sb.path().join("sql/a.sql");
    std::fs::File::options()
        .append(true)
        .open(&a)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    assert_eq!(apply(&sb, &[]), Vec::<String>::new());

    write(&sb, "sql/a.sql", "select 10;\n");
    assert_eq!(
        decisions(&sb, &[]),
        [
            "load: run (inputs changed: sql/a.sql)",
            "report: run (needs `load`, which runs)",
            "docs: skip (up to date)",
        ]
    );
    assert_eq!(apply(&sb, &[]), ["load", "report"]);
    // `report`'s input is `load`'s output: it started after `load` rewrote it, so its
    // fingerprint has the new content and it is up to date now.
    assert_eq!(apply(&sb, &[]), Vec::<String>::new());

    // A new file matching the pattern, and a removed one, are changes too.
    write(&sb, "sql/c.sql", "select 3;\n");
    std::fs::remove_file(sb.path().join("sql/b.sql")).unwrap();
    assert_eq!(
        decisions(&sb, &["--only", "load"])[0],
        "load: run (inputs changed: sql/c.sql (new), sql/b.sql (removed))"
    );
}

#[test]
fn a_changed_command_or_a_missing_output_reruns() {
    let sb = sandbox();
    apply(&sb, &[]);
    sb.file(
        "p.toml",
        PIPELINE.replace("echo docs >> runs.log", "echo docs >> runs.log # v2"),
    );
    assert_eq!(decisions(&sb, &[])[2], "docs: run (command changed)");
    assert_eq!(apply(&sb, &[]), ["docs"]);

    std::fs::remove_file(sb.path().join("out/report.txt")).unwrap();
    assert_eq!(
        decisions(&sb, &[])[1],
        "report: run (output missing: out/report.txt)"
    );
    assert_eq!(apply(&sb, &[]), ["report"]);
    assert_eq!(apply(&sb, &[]), Vec::<String>::new());
}

#[test]
fn force_runs_everything_and_records_it() {
    let sb = sandbox();
    apply(&sb, &[]);
    assert!(
        decisions(&sb, &["--force"])
            .iter()
            .all(|d| d.contains(": run (")),
        "{:?}",
        decisions(&sb, &["--force"])
    );
    assert_eq!(apply(&sb, &["--force"]), ["load", "report", "docs"]);
    assert_eq!(apply(&sb, &[]), Vec::<String>::new());
}

#[test]
fn a_changed_environment_reruns_and_secrets_are_never_stored_in_clear() {
    let sb = sandbox();
    let secret = "correct-horse-battery-staple";
    let first = format!("API_TOKEN={secret}-1");
    let second = format!("API_TOKEN={secret}-2");
    apply(&sb, &["--env", "MODE=fast", "--env", &first]);
    assert_eq!(
        apply(&sb, &["--env", "MODE=fast", "--env", &first]),
        Vec::<String>::new()
    );

    let changed = decisions(&sb, &["--env", "MODE=slow", "--env", &first]);
    assert_eq!(changed[0], "load: run (environment changed: MODE)");
    let secret_changed = decisions(&sb, &["--env", "MODE=fast", "--env", &second]);
    assert_eq!(
        secret_changed[2],
        "docs: run (environment changed: API_TOKEN)"
    );
    assert_eq!(
        apply(&sb, &["--env", "MODE=fast", "--env", &second]),
        ["load", "report", "docs"]
    );

    // Not in the database, its write-ahead log, the hash cache or the logs.
    let mut files = Vec::new();
    collect(&sb.path().join(".exe"), &mut files);
    assert!(files.iter().any(|f| f.ends_with("history.db")), "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the secret",
            file.display()
        );
    }
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `setup` has no inputs; `build` fails until the file `ok` exists.
const SETUP_BUILD: &str = r#"
[jobs.setup]
command = "echo setup >> runs.log"

[jobs.build]
command = "echo build >> runs.log; test -e ok"
inputs = ["src/*"]
"#;

#[test]
fn a_failed_job_is_not_up_to_date_and_jobs_without_inputs_always_run() {
    let sb = Sandbox::new();
    sb.file("p.toml", SETUP_BUILD);
    sb.file("src/main.c", "int main;\n");
    let failed = sb.exe(&["apply", "p.toml"]);
    assert_eq!(failed.code, 1);
    assert_eq!(
        decisions(&sb, &[])[1],
        "build: run (did not succeed in run 1 (FAILED))"
    );
    sb.file("ok", "");
    assert_eq!(apply(&sb, &[]), ["setup", "build"]);
    // `setup` has no inputs: never up to date.
    assert_eq!(apply(&sb, &[]), ["setup"]);

    // A job that needs one without inputs reruns with it.
    sb.file("p.toml", format!("{SETUP_BUILD}needs = [\"setup\"]\n"));
    apply(&sb, &[]);
    assert_eq!(apply(&sb, &[]), ["setup", "build"]);
}

#[test]
fn a_resume_skips_what_is_up_to_date_among_the_jobs_it_reruns() {
    let sb = sandbox();
    apply(&sb, &[]);
    // `report` fails in the next run, after `load` reran.
    write(&sb, "sql/a.sql", "select 11;\n");
    sb.file(
        "p.toml",
        PIPELINE.replace("wc -l", "test -e fixed && wc -l"),
    );
    let failed = sb.exe(&["apply", "p.toml"]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    sb.file("fixed", "");
    // Resumed: `load` succeeded in run 2, `docs` was up to date there and still is.
    assert_eq!(apply(&sb, &["--resume", "2"]), ["report"]);
}

#[test]
fn a_job_whose_outputs_are_among_its_input_files_is_up_to_date_next_time() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.gen]\ncommand = \"cat src/in.txt > src/gen.txt; echo gen >> runs.log\"\n\
         inputs = [\"src\"]\noutputs = [\"src/gen.txt\"]\n",
    );
    sb.file("src/in.txt", "x");
    assert_eq!(apply(&sb, &[]), ["gen"]);
    assert_eq!(apply(&sb, &[]), Vec::<String>::new());
}

#[test]
fn a_pattern_that_matches_nothing_yet_sees_new_files() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.gen]\ncommand = \"echo gen >> runs.log\"\ninputs = [\"gen/*.txt\"]\n",
    );
    assert_eq!(apply(&sb, &[]), ["gen"]);
    assert_eq!(apply(&sb, &[]), Vec::<String>::new());
    sb.file("gen/new.txt", "x");
    assert_eq!(
        decisions(&sb, &[]),
        ["gen: run (inputs changed: gen/new.txt (new))"]
    );
}

#[test]
fn plan_reads_the_history_and_never_writes_it() {
    let sb = sandbox();
    // No history: every job with inputs "never succeeded", and nothing is created.
    assert_eq!(
        decisions(&sb, &[]),
        [
            "load: run (never succeeded)",
            "report: run (never succeeded; needs `load`, which runs)",
            "docs: run (never succeeded)",
        ]
    );
    assert!(!sb.path().join(".exe").exists());

    apply(&sb, &[]);
    let db = sb.path().join(".exe/history.db");
    let wal = sb.path().join(".exe/history.db-wal");
    let before = (std::fs::read(&db).unwrap(), std::fs::read(&wal).ok());
    write(&sb, "sql/a.sql", "select 12;\n");
    assert_eq!(
        decisions(&sb, &[])[0],
        "load: run (inputs changed: sql/a.sql)"
    );
    assert_eq!(
        (std::fs::read(&db).unwrap(), std::fs::read(&wal).ok()),
        before
    );

    // A hash cache that cannot be written (here a folder in its place, which stops root
    // too) costs hashing, never an answer.
    let cache = sb.path().join(".exe/history.db-hashes");
    let _ = std::fs::remove_file(&cache);
    std::fs::create_dir(&cache).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2_100)); // inputs now settled
    assert_eq!(
        decisions(&sb, &[])[0],
        "load: run (inputs changed: sql/a.sql)"
    );
    assert!(cache.is_dir());
}

#[test]
fn the_hash_cache_never_hides_a_change_with_the_same_size_and_time() {
    let sb = sandbox();
    apply(&sb, &[]);
    // Once the inputs have been quiet for the racy window, a plan keeps their hashes.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    assert_eq!(decisions(&sb, &[])[0], "load: skip (up to date)");
    assert!(sb.path().join(".exe/history.db-hashes").is_file());
    // Same size, and the modification time put back: only the change time moved.
    let a = sb.path().join("sql/a.sql");
    let mtime = std::fs::metadata(&a).unwrap().modified().unwrap();
    std::fs::write(&a, "select 9;\n").unwrap();
    std::fs::File::options()
        .append(true)
        .open(&a)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(
        decisions(&sb, &[])[0],
        "load: run (inputs changed: sql/a.sql)"
    );
}

/// The reasons as people and scripts read them.
#[test]
fn plan_says_what_changed() {
    let sb = sandbox();
    apply(&sb, &["--env", "MODE=fast"]);
    write(&sb, "sql/a.sql", "select 13;\n");
    sb.file(
        "p.toml",
        PIPELINE.replace("echo docs >> runs.log", "echo docs! >> runs.log"),
    );
    let text = sb.exe(&["plan", "p.toml", "--env", "MODE=slow"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    insta::assert_snapshot!("up_to_date_text", text.stdout);
    std::fs::remove_file(sb.path().join("out/report.txt")).unwrap();
    write(&sb, "sql/a.sql", "select 1;\n");
    let json = plan_json(&sb, &["--env", "MODE=fast"]);
    let decided: Vec<serde_json::Value> = json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            serde_json::json!({
                "id": j["id"],
                "decision": j["decision"],
                "reason": j["reason"],
                "changes": j["changes"],
            })
        })
        .collect();
    insta::assert_json_snapshot!("up_to_date_json", decided);
    let run = sb.exe(&[
        "plan",
        "p.toml",
        "--env",
        "MODE=fast",
        "--detailed-exitcode",
    ]);
    assert_eq!(run.code, 2, "something would run");
}
