//! `exe migrate`: a legacy file converts to every format, lints clean, and means the same.

use executioner::load::{LoadOptions, load};
use executioner::validate::{Options, validate};

use crate::harness::{Sandbox, repo};

/// Everything about a pipeline that running it depends on, as comparable text.
fn meaning(path: &std::path::Path) -> String {
    let (doc, _) = load(path, &LoadOptions::default()).unwrap_or_else(|d| panic!("{d:?}"));
    let (p, diags) = validate(&doc, &Options::default());
    let p = p.unwrap_or_else(|| panic!("{diags:?}"));
    format!(
        "{} {} {} {} {} {:?} {:?}\n{:#?}",
        p.name,
        p.working_dir.display(),
        p.log_dir.display(),
        p.max_parallel,
        p.continue_on_error,
        p.env,
        p.notify,
        p.jobs
    )
}

#[test]
fn legacy_example_migrates_to_every_format_with_the_same_meaning() {
    let sb = Sandbox::new();
    let legacy = repo().join("examples/legacy/executioner.json");
    let dir = sb.path().join("legacy");
    std::fs::create_dir_all(&dir).unwrap();
    let original = dir.join("executioner.json");
    std::fs::copy(&legacy, &original).unwrap();
    for (format, ext) in [("toml", "toml"), ("yaml", "yaml"), ("json", "json")] {
        let out = format!("legacy/migrated.{ext}");
        let run = sb.exe(&[
            "migrate",
            "legacy/executioner.json",
            "--to",
            format,
            "-o",
            &out,
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        // No warning but the one any file with `notify` gets: nothing is sent yet.
        let lint = sb.exe(&["lint", "--format", "json", &out]);
        assert_eq!(lint.code, 0, "{format}: {}", lint.stdout);
        let report: serde_json::Value = serde_json::from_str(&lint.stdout).unwrap();
        let codes: Vec<&str> = (report["diagnostics"].as_array().unwrap().iter())
            .map(|d| d["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["exe::config::notify_not_sent"], "{format}");
        let migrated = sb.path().join(&out);
        assert_eq!(
            meaning(&original),
            meaning(&migrated),
            "{format} changed the meaning"
        );
    }
    let toml = std::fs::read_to_string(dir.join("migrated.toml")).unwrap();
    insta::assert_snapshot!("legacy_migrated_toml", toml);
}

#[test]
fn migrate_refuses_to_overwrite_and_reports_invalid_files() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    sb.file("out.yaml", "x");
    assert_eq!(
        sb.exe(&["migrate", "p.toml", "--to", "yaml", "-o", "out.yaml"])
            .code,
        2
    );
    sb.file("bad.toml", "[jobs.a]\ncomand = \"true\"\n");
    let run = sb.exe(&["migrate", "bad.toml"]);
    assert_eq!(run.code, 2);
    run.assert_stderr_has("unknown key `comand`");
}

#[test]
fn new_format_files_convert_between_formats_keeping_job_order() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.zeta]\ncommand = \"true\"\n[jobs.alpha]\ncommand = \"echo \\\"q\\\"\"\nneeds = [\"zeta\"]\n");
    let run = sb.exe(&["migrate", "p.toml", "--to", "yaml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.find("zeta:").unwrap() < run.stdout.find("alpha:").unwrap(),
        "{}",
        run.stdout
    );
    sb.file("p2.yaml", &run.stdout);
    // The name defaults to the file stem, which differs; everything else must not.
    let strip = |m: String| m.split_once(' ').unwrap().1.to_owned();
    assert_eq!(
        strip(meaning(&sb.path().join("p.toml"))),
        strip(meaning(&sb.path().join("p2.yaml")))
    );
}

#[test]
fn legacy_text_that_looks_like_a_template_means_the_same_after_migrate() {
    let sb = Sandbox::new();
    // The older tool had no templates: `${#x}` is shell, `{{ 1+1 }}` is text.
    sb.file(
        "old.json",
        r#"{"jobs": [{"id": "a", "command": "x=abc; echo ${#x} {{ 1+1 }} $X", "env_variables": {"X": "{% no %}"}}]}"#,
    );
    let migrate = sb.exe(&["migrate", "old.json", "-o", "new.toml"]);
    assert_eq!(migrate.code, 0, "{}", migrate.stderr);
    assert_eq!(
        meaning(&sb.path().join("old.json")),
        meaning(&sb.path().join("new.toml"))
    );
    let new = sb.exe(&["apply", "new.toml"]);
    assert_eq!(new.code, 0, "{}", new.stderr);
    new.assert_stdout_has("a | 3 {{ 1+1 }} {% no %}");
}

#[test]
fn output_extension_picks_the_format_and_must_agree_with_to() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    for (out, starts) in [("out.yaml", "# Migrated"), ("out.json", "{")] {
        let run = sb.exe(&["migrate", "p.toml", "-o", out]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let text = std::fs::read_to_string(sb.path().join(out)).unwrap();
        assert!(text.starts_with(starts), "{out}: {text}");
        let lint = sb.exe(&["lint", "--deny-warnings", out]);
        assert_eq!(lint.code, 0, "{out}: {}", lint.stdout);
    }
    let clash = sb.exe(&["migrate", "p.toml", "--to", "yaml", "-o", "new.json"]);
    assert_eq!(clash.code, 2, "{}", clash.stderr);
    clash.assert_stderr_has("--to yaml contradicts new.json, whose extension says JSON");
    assert!(!sb.path().join("new.json").exists());
    let agree = sb.exe(&["migrate", "p.toml", "--to", "yaml", "-o", "new.yml"]);
    assert_eq!(agree.code, 0, "{}", agree.stderr);
    let unknown = sb.exe(&["migrate", "p.toml", "-o", "new.txt"]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    unknown.assert_stderr_has("new.txt: exe reads pipelines by their extension");
}

#[test]
fn a_null_is_named_by_its_key_when_toml_cannot_hold_it() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "vars:\n  gone: null\njobs:\n  a:\n    command: \"true\"\n    with:\n      x: ~\n",
    );
    let run = sb.exe(&["migrate", "p.yaml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_stderr_has(
        "cannot write this pipeline as TOML: `vars.gone`, `jobs.a.with.x` are null, and TOML has no null",
    );
    run.assert_stderr_has("remove the keys, or write YAML or JSON");
    let json = sb.exe(&["migrate", "p.yaml", "--to", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    json.assert_stdout_has("\"gone\": null");
}

#[test]
fn an_integer_beyond_64_bits_is_refused_not_rounded() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "vars:\n  big: 18446744073709551615\njobs:\n  a:\n    command: \"true\"\n",
    );
    sb.file(
        "p.json",
        r#"{"vars": {"big": -9223372036854775809}, "jobs": {"a": {"command": "true"}}}"#,
    );
    // Read as a float, the number would change; the error shows where, key and all.
    for (file, line) in [("p.yaml", "p.yaml:2:8"), ("p.json", "p.json:1:18")] {
        let run = sb.exe(&["migrate", file, "--to", "json"]);
        assert_eq!(run.code, 2, "{file}: {}", run.stdout);
        run.assert_stderr_has("integer out of range: exe's integers are 64-bit");
        run.assert_stderr_has(line);
        run.assert_stderr_has("quote it to keep it exactly, as text");
    }
    sb.exe(&["lint", "p.yaml"])
        .assert_stderr_lacks("1.8446744073709552e19");
    // A large number with a fraction or an exponent is a float, in JSON as in YAML and TOML.
    sb.file(
        "f.json",
        r#"{"vars": {"v": 10000000000000000000.5, "w": 2.5e19}, "jobs": {"a": {"command": "true"}}}"#,
    );
    let run = sb.exe(&["lint", "f.json"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn an_old_run_without_a_summary_whose_job_never_finished_is_not_imported_as_a_success() {
    let sb = Sandbox::new();
    sb.sql(
        "old.db",
        "CREATE TABLE job_history (run_id INTEGER, id TEXT, description TEXT, command TEXT, status TEXT,
            application_name TEXT, last_run TIMESTAMP, retry_count INTEGER DEFAULT 0, last_error TEXT,
            PRIMARY KEY (run_id, id));
         INSERT INTO job_history (run_id, id, status, application_name, last_run) VALUES
            (1, 'extract', 'SUCCESS', 'etl', '2024-01-01 00:00:00'),
            (1, 'load', 'RUNNING', 'etl', '2024-01-01 00:01:00'),
            (2, 'extract', 'SUCCESS', 'etl', '2024-01-02 00:00:00'),
            (2, 'load', 'SUCCESS', 'etl', '2024-01-02 00:01:00');",
    );
    let import = sb.exe(&["migrate", "--history", "old.db"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let state = |run: &str| {
        let show = sb.exe(&["show", run, "--format", "json"]);
        assert_eq!(show.code, 0, "{}", show.stderr);
        let json: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
        json["run"]["state"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(state("1"), "CANCELLED");
    assert_eq!(state("2"), "SUCCESS");
    // A resume runs the job that never finished. (Imported runs kept no plan to compare.)
    sb.file(
        "etl.json",
        r#"{"application_name":"etl","jobs":[{"id":"extract","command":"echo extracted"},{"id":"load","command":"echo loaded"}]}"#,
    );
    let resume = sb.exe(&["apply", "etl.json", "--resume", "1", "--allow-changes"]);
    assert_eq!(resume.code, 0, "{}", resume.stderr);
    resume.assert_stdout_has("load | loaded");
    resume.assert_stdout_lacks("extracted");
}

/// The lines the jobs of `file` print when applied.
fn job_output(sb: &Sandbox, file: &str) -> String {
    let run = sb.exe(&["apply", file]);
    assert_eq!(run.code, 0, "{file}: {}", run.stderr);
    run.stdout
}

#[test]
fn legacy_text_holding_endraw_runs_the_same_commands_after_migrate() {
    let sb = Sandbox::new();
    let nasty = [
        "{% endraw %} {{ x }}",
        "{%- endraw -%}{{ x }}",
        "{%endraw%}",
        "{% raw %}{{ y }}{% endraw %}{# z #}",
        "{{{ {%% {## #}}} endraw",
        "{{ \"{{\" }}{%endraw%}\n",
    ];
    let jobs: Vec<serde_json::Value> = (nasty.iter().enumerate())
        .map(|(i, text)| {
            serde_json::json!({
                "id": format!("j{i}"),
                "description": text,
                "command": format!("printf '[%s] [%s]\\n' '{text}' \"$S\""),
                "env_variables": {"S": text},
            })
        })
        .collect();
    let legacy = serde_json::json!({"application_name": "tpl", "jobs": jobs});
    sb.file("t.json", legacy.to_string());
    let original = job_output(&sb, "t.json");
    for text in nasty.iter().filter(|t| !t.contains('\n')) {
        assert!(
            original.contains(&format!("[{text}] [{text}]")),
            "{original}"
        );
    }
    // The final newline is kept: the closing brackets are on lines of their own.
    assert!(original.contains("j5 | ] [{{"), "{original}");
    for out in ["t.toml", "t.yaml"] {
        let migrate = sb.exe(&["migrate", "t.json", "-q", "-o", out]);
        assert_eq!(migrate.code, 0, "{}", migrate.stderr);
        let lint = sb.exe(&["lint", out]);
        assert_eq!(lint.code, 0, "{out}: {}", lint.stderr);
        assert_eq!(job_output(&sb, out), original, "{out}");
        assert_eq!(
            meaning(&sb.path().join("t.json")),
            meaning(&sb.path().join(out)),
            "{out}"
        );
    }
}

#[test]
fn unknown_keys_and_parameters_of_a_legacy_check_are_warned_about_at_the_key() {
    let sb = Sandbox::new();
    sb.file(
        "chk2.json",
        r#"{"application_name":"chk2","jobs":[{"id":"a","command":"echo 'ORA-01017 denied' > ora.log","post_checks":[{"name":"check_no_ora_errors","foo":1,"params":{"log_file":"ora.log","patterns":["FOO"],"ignore":["ORA-01017"]}}]}]}"#,
    );
    let lint = sb.exe(&["lint", "--format", "json", "chk2.json"]);
    assert_eq!(lint.code, 0, "{}", lint.stdout);
    let report: serde_json::Value = serde_json::from_str(&lint.stdout).unwrap();
    let found: Vec<(&str, &str)> = (report["diagnostics"].as_array().unwrap().iter())
        .filter(|d| d["code"] == "exe::config::legacy_unknown_key")
        .map(|d| {
            (
                d["message"].as_str().unwrap(),
                d["help"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "unknown key `foo`, ignored",
                "a legacy check has a `name` and its `params`"
            ),
            (
                "unknown key `patterns`, ignored",
                "`check_no_ora_errors` takes only `log_file`"
            ),
            (
                "unknown key `ignore`, ignored",
                "`check_no_ora_errors` takes only `log_file`"
            ),
        ]
    );
    // Each points at its key.
    let human = sb.exe(&["lint", "chk2.json"]);
    for place in ["chk2.json:1:137", "chk2.json:1:176", "chk2.json:1:195"] {
        human.assert_stdout_has(place);
    }
}

#[test]
fn a_legacy_file_whose_jobs_lack_their_id_is_told_so() {
    let sb = Sandbox::new();
    sb.file(
        "x.json",
        r#"{"application_name":"x","jobs":[{"ID":"a","command":"true"},{"id":"b","command":"true"},{"command":"true"}]}"#,
    );
    let lint = sb.exe(&["lint", "x.json"]);
    assert_eq!(lint.code, 1, "{}", lint.stdout);
    lint.assert_stdout_has("exe::config::legacy_format");
    lint.assert_stdout_has("unknown key `ID`, ignored");
    lint.assert_stdout_has("did you mean `id`? keys are case-sensitive");
    lint.assert_stdout_has("missing key `id` in `jobs.0`");
    lint.assert_stdout_has("missing key `id` in `jobs.2`");
    lint.assert_stdout_lacks("`jobs.1`");
    for noise in ["unknown key `application_name`", "table of keys", "no jobs"] {
        lint.assert_stdout_lacks(noise);
    }
    sb.file("empty.json", r#"{"application_name":"x","jobs":[]}"#);
    let empty = sb.exe(&["lint", "empty.json"]);
    assert_eq!(empty.code, 0, "{}", empty.stdout);
    empty.assert_stdout_has("exe::config::legacy_format");
    empty.assert_stdout_has("the pipeline has no jobs");
    for noise in ["unknown key `application_name`", "table of keys"] {
        empty.assert_stdout_lacks(noise);
    }
}

#[test]
fn legacy_ids_exe_cannot_take_are_renamed_and_their_dependencies_follow() {
    let sb = Sandbox::new();
    sb.file(
        "ids.json",
        r#"{"application_name": "ids", "jobs": [
  {"id": "Load customers", "command": "echo load >> order"},
  {"id": "Load_customers", "command": "echo other >> order"},
  {"id": "Report (daily)", "command": "echo report >> order", "dependencies": ["Load customers"]}
]}"#,
    );
    let run = sb.exe(&["apply", "ids.json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_has("job id `Load customers` is `Load_customers_2` in exe");
    run.assert_stderr_has("job id `Report (daily)` is `Report__daily_` in exe");
    let order = std::fs::read_to_string(sb.path().join("order")).unwrap();
    let at = |line: &str| order.lines().position(|l| l == line).unwrap();
    assert!(at("load") < at("report"), "{order}");
    let shown = sb.exe(&["show", "1"]);
    shown.assert_stdout_has("Report__daily_");
    assert_eq!(sb.exe(&["logs", "1", "Load_customers_2"]).code, 0);
    // The migrated file says the same, in ids it can hold.
    assert_eq!(
        sb.exe(&["migrate", "-q", "ids.json", "-o", "ids.toml"])
            .code,
        0
    );
    let migrated = std::fs::read_to_string(sb.path().join("ids.toml")).unwrap();
    assert!(
        migrated.contains("[jobs.Report__daily_]")
            && migrated.contains("needs = [\"Load_customers_2\"]"),
        "{migrated}"
    );
    let lint = sb.exe(&["lint", "ids.toml"]);
    assert_eq!(lint.code, 0, "{}", lint.stdout);
}

#[test]
fn a_renamed_legacy_job_keeps_its_place_in_the_file_order() {
    let sb = Sandbox::new();
    sb.file(
        "order.json",
        r#"{"application_name": "order", "jobs": [
  {"id": "first", "command": "true"},
  {"id": "x y", "command": "true"},
  {"id": "last", "command": "true"}
]}"#,
    );
    let plan = sb.exe(&["plan", "order.json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let runs: Vec<&str> = (plan.stdout.lines())
        .filter_map(|l| l.trim().strip_prefix("run   "))
        .collect();
    assert_eq!(runs, ["first", "x_y", "last"], "{}", plan.stdout);
    let migrate = sb.exe(&["migrate", "-q", "order.json", "--to", "yaml"]);
    assert_eq!(migrate.code, 0, "{}", migrate.stderr);
    let at = |id: &str| migrate.stdout.find(&format!("  {id}:")).unwrap();
    assert!(
        at("first") < at("x_y") && at("x_y") < at("last"),
        "{}",
        migrate.stdout
    );
}

#[test]
fn the_older_tools_id_of_a_renamed_job_suggests_exes_in_the_history() {
    let sb = Sandbox::new();
    sb.file(
        "ids.json",
        r#"{"application_name": "ids", "jobs": [{"id": "Load customers", "command": "exit 3"}]}"#,
    );
    assert_eq!(sb.exe(&["apply", "-q", "ids.json"]).code, 1);
    let mark = sb.exe(&[
        "mark-success",
        "1",
        "Load customers",
        "--reason",
        "by hand",
        "--yes",
    ]);
    assert_eq!(mark.code, 2, "{}", mark.stderr);
    mark.assert_stderr_has("run 1 has no job `Load customers`");
    mark.assert_stderr_has("did you mean `Load_customers`?");
    let logs = sb.exe(&["logs", "1", "Load customers"]);
    assert_eq!(logs.code, 2, "{}", logs.stderr);
    logs.assert_stderr_has("did you mean `Load_customers`?");
    // Nothing close: where to look.
    let far = sb.exe(&["mark-success", "1", "zzz", "--reason", "by hand", "--yes"]);
    assert_eq!(far.code, 2, "{}", far.stderr);
    far.assert_stderr_has("`exe show 1` lists its jobs");
}

#[test]
fn a_history_import_that_cannot_start_leaves_exes_history_as_it_was() {
    let sb = Sandbox::new();
    sb.sql("o.db", "CREATE TABLE t (x);");
    let import = sb.exe(&["migrate", "--history", "o.db"]);
    assert_eq!(import.code, 2, "{}", import.stderr);
    import.assert_stderr_has("o.db is not a history of the older executioner");
    assert!(
        !sb.path().join(".exe").exists(),
        "the default history was created"
    );
    // Nor by a job_history without the older tool's columns, found before exe's history is
    // opened, and said without the import's SQL.
    sb.sql(
        "cols.db",
        "CREATE TABLE job_history (run_id INTEGER, id TEXT, status TEXT);",
    );
    let import = sb.exe(&["migrate", "--history", "cols.db"]);
    assert_eq!(import.code, 2, "{}", import.stderr);
    import.assert_stderr_has(
        "cols.db is not a history of the older executioner: its job_history table has no \
         `application_name` column",
    );
    import.assert_stderr_lacks("SELECT");
    assert!(!sb.path().join(".exe").exists(), "{}", import.stderr);
    // An older schema is not upgraded either.
    let v1 = std::fs::read(repo().join("tests/fixtures/history/v1.db")).unwrap();
    sb.file("h.db", &v1);
    let import = sb.exe(&["--db", "h.db", "migrate", "--history", "o.db"]);
    assert_eq!(import.code, 2, "{}", import.stderr);
    assert_eq!(std::fs::read(sb.path().join("h.db")).unwrap(), v1);
    assert!(!sb.path().join("h.db-wal").exists());
    // Flags that only apply to converting a file are refused, not ignored.
    for flags in [&["--to", "yaml"][..], &["-o", "x.toml"], &["--force"]] {
        let args: Vec<&str> = ["migrate", "--history", "o.db"]
            .iter()
            .chain(flags)
            .copied()
            .collect();
        let run = sb.exe(&args);
        assert_eq!(run.code, 2, "{flags:?}: {}", run.stderr);
        run.assert_stderr_has("the argument '--history <OLD.db>' cannot be used with");
        run.assert_stderr_has(flags[0]);
    }
}

/// The tables of the older tool's history with the columns exe reads, `run_summary` if asked.
fn old_tables(summary: bool) -> String {
    let mut sql =
        "CREATE TABLE job_history (run_id INTEGER, id TEXT, status TEXT, application_name TEXT,
        last_run TIMESTAMP, retry_count INTEGER, last_error TEXT, duration_seconds REAL);"
            .to_owned();
    if summary {
        sql.push_str(
            "CREATE TABLE run_summary (run_id INTEGER PRIMARY KEY, application_name TEXT NOT NULL,
                start_time TIMESTAMP NOT NULL, end_time TIMESTAMP, status TEXT, exit_code INTEGER);",
        );
    }
    sql
}

#[test]
fn bad_rows_of_an_old_history_are_reported_and_the_others_imported() {
    let sb = Sandbox::new();
    // A start time SQLite cannot read, a job row without a run id.
    sb.sql(
        "old.db",
        &(old_tables(true)
            + "INSERT INTO run_summary VALUES (3, 'nightly', '03/03/2024 01:00', NULL, 'RUNNING', NULL),
                  (4, 'nightly', '2024-03-04 01:00:00', '2024-03-04 01:10:00', 'SUCCESS', 0);
               INSERT INTO job_history VALUES (3, 'extract', 'RUNNING', 'nightly', NULL, 0, NULL, NULL),
                  (4, 'extract', 'SUCCESS', 'nightly', '2024-03-04 01:05:00', 0, NULL, 300),
                  (NULL, 'orphan', 'SUCCESS', 'nightly', '2024-03-08 01:00:00', 0, NULL, 1);"),
    );
    let import = sb.exe(&["--db", "h.db", "migrate", "--history", "old.db"]);
    assert_eq!(import.code, 1, "{}", import.stderr);
    import.assert_stderr_has(
        "run 3: neither its start_time ('03/03/2024 01:00') nor a last_run of its jobs is a date and time: not imported",
    );
    import.assert_stderr_has(
        "job_history row of job 'orphan' has run_id NULL, not a run id: not imported",
    );
    import.assert_stderr_has("2 runs or rows of old.db not imported");
    import.assert_stderr_has("Imported 1 run (1 jobs)");
    let runs = sb.exe(&["--db", "h.db", "runs"]);
    runs.assert_stdout_lacks("1970");
    assert_eq!(runs.stdout.lines().count(), 2, "{}", runs.stdout);
    // Without run_summary, and with a value that is not what its column holds.
    sb.sql(
        "older.db",
        &(old_tables(false)
            + "INSERT INTO job_history VALUES (5, 'load', 'ERROR', 'etl', '2024-03-05 01:00:00', -1, 'ORA-00942', 'abc'),
                  (NULL, 'orphan', 'SUCCESS', 'etl', '2024-03-08 01:00:00', 0, NULL, 1);"),
    );
    let import = sb.exe(&["--db", "h.db", "migrate", "--history", "older.db"]);
    assert_eq!(import.code, 1, "{}", import.stderr);
    import.assert_stderr_lacks("not a history");
    import.assert_stderr_has(
        "run 5, job `load`: duration_seconds 'abc' is not a number of seconds: imported without it",
    );
    import.assert_stderr_has(
        "run 5, job `load`: retry_count -1 is not a count of retries (0 or more): imported without it",
    );
    import.assert_stderr_has("1 run or row of older.db not imported");
    import.assert_stderr_has("Imported 1 run (1 jobs)");
    let show = sb.exe(&["--db", "h.db", "show", "2", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(json["attempts"][0]["number"], 1, "{}", show.stdout);
    assert_eq!(json["attempts"][0]["reason"], "ORA-00942");
    // Every problem is told again, nothing is imported twice.
    let again = sb.exe(&["--db", "h.db", "migrate", "--history", "older.db"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    again.assert_stderr_has("Imported 0 runs (0 jobs)");
    // A job with several rows in one run (the older tool kept one): the last is its state.
    sb.sql(
        "repeated.db",
        &(old_tables(true)
            + "INSERT INTO run_summary VALUES (8, 'nightly', '2024-03-08 01:00:00', '2024-03-08 02:00:00', 'SUCCESS', 0);
               INSERT INTO job_history VALUES (8, 'extract', 'ERROR', 'nightly', '2024-03-08 01:10:00', 0, 'boom', 5),
                  (8, 'extract', 'SUCCESS', 'nightly', '2024-03-08 01:20:00', 1, NULL, 6);"),
    );
    let import = sb.exe(&["--db", "h.db", "migrate", "--history", "repeated.db"]);
    assert_eq!(import.code, 1, "{}", import.stderr);
    import.assert_stderr_lacks("UNIQUE constraint");
    import.assert_stderr_has(
        "run 8, job `extract`: 2 job_history rows; only the last (by last_run) is imported",
    );
    import.assert_stderr_has("Imported 1 run (1 jobs)");
    let show = sb.exe(&["--db", "h.db", "show", "3", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(json["jobs"][0]["state"], "SUCCESS", "{}", show.stdout);
    // run_summary rows without a run id, or repeating one (a table made without its primary
    // key); and a run with no summary row, still found beside a NULL run_id.
    sb.sql(
        "summaries.db",
        &(old_tables(false)
            + "CREATE TABLE run_summary (run_id INTEGER, application_name TEXT, start_time TIMESTAMP,
                  end_time TIMESTAMP, status TEXT, exit_code INTEGER);
               INSERT INTO run_summary VALUES (NULL, 'nightly', '2024-03-09 01:00:00', NULL, 'SUCCESS', 0),
                  (10, 'nightly', '2024-03-10 01:00:00', '2024-03-10 02:00:00', 'SUCCESS', 0),
                  (10, 'again', '2024-03-10 01:00:00', '2024-03-10 02:00:00', 'SUCCESS', 0);
               INSERT INTO job_history VALUES (10, 'extract', 'SUCCESS', 'nightly', '2024-03-10 01:20:00', 0, NULL, 6),
                  (11, 'extract', 'ERROR', 'nightly', '2024-03-11 01:20:00', 0, 'boom', 6);"),
    );
    let import = sb.exe(&["--db", "h.db", "migrate", "--history", "summaries.db"]);
    assert_eq!(import.code, 1, "{}", import.stderr);
    import.assert_stderr_lacks("not a history");
    import.assert_stderr_has(
        "run_summary row of 'nightly' has run_id NULL, not a run id: not imported",
    );
    import.assert_stderr_has("run 10: 2 run_summary rows; only the first is imported");
    import.assert_stderr_has("Imported 2 runs (2 jobs)");
}

#[test]
fn show_gives_an_imported_jobs_last_error_and_one_attempt_number() {
    let sb = Sandbox::new();
    sb.sql(
        "old.db",
        &(old_tables(false)
            + "INSERT INTO job_history VALUES (7, 'load', 'ERROR', 'etl', '2024-03-01 01:09:00', 2, 'ORA-00942', 60.0);"),
    );
    let import = sb.exe(&["migrate", "--history", "old.db"]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let show = sb.exe(&["show", "1"]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    let row = show
        .stdout
        .lines()
        .find(|l| l.starts_with("load "))
        .unwrap();
    let columns: Vec<&str> = row.split_whitespace().take(3).collect();
    assert_eq!(columns, ["load", "FAILED", "3"], "{}", show.stdout);
    show.assert_stdout_has("load #3 2024-03-01 01:08:00 FAILED (ORA-00942)");
    // exe's own runs: attempts counted as before, each failure's reason on its line.
    sb.file("p.toml", "[jobs.a]\ncommand = \"exit 3\"\nretry = { max = 1, delay = \"0s\", on_exit_codes = [3] }\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 1);
    let show = sb.exe(&["show", "2"]);
    let row = show.stdout.lines().find(|l| l.starts_with("a ")).unwrap();
    assert_eq!(row.split_whitespace().nth(2), Some("2"), "{}", show.stdout);
    show.assert_stdout_has("FAILED (exit code 3)");
}
