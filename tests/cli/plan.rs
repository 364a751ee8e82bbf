//! `exe plan` through the real binary: every format of the examples, selection flags,
//! secret masking, `--explain`, `--detailed-exitcode`, and a 100,000-job chain.
//!
//! The binary runs with a cleared environment (only `PATH`, `NO_COLOR` and what a test
//! sets), so inherited variables cannot change a snapshot or hide a masking bug.

use std::process::Command;

use crate::harness::{Run, Sandbox, repo};

/// Runs `exe` in the sandbox with only `PATH`, `NO_COLOR` and `env` set.
fn exe(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_exe"))
        .args(args)
        .current_dir(sb.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A sandbox holding a copy of `examples/<path>` at the same relative path.
fn example(path: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.file(
        path,
        std::fs::read(repo().join("examples").join(path)).unwrap(),
    );
    sb
}

fn ok(run: &Run) {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

#[test]
fn examples_in_every_format() {
    for (path, name) in [
        ("nightly-etl.toml", "nightly_etl"),
        ("matrix-build.yaml", "matrix_build"),
        ("legacy/executioner.json", "legacy"),
    ] {
        let sb = example(path);
        for format in ["text", "json", "dot", "mermaid"] {
            let run = exe(&sb, &["plan", path, "--format", format], &[]);
            ok(&run);
            insta::assert_snapshot!(format!("{name}_{format}"), run.stdout);
        }
        let json = exe(&sb, &["plan", path, "--format", "json"], &[]);
        let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let jobs = doc["jobs"].as_array().unwrap();
        assert_eq!(doc["summary"]["to_run"], jobs.len(), "{name}: all run");
        assert_eq!(doc["summary"]["skipped"], 0, "{name}");
    }
}

#[test]
fn the_legacy_example_warns_once_on_stderr_and_quiet_silences_it() {
    let sb = example("legacy/executioner.json");
    let run = exe(&sb, &["plan", "legacy/executioner.json"], &[]);
    ok(&run);
    assert_eq!(run.stderr.matches("exe::config::legacy_format").count(), 1);
    let quiet = exe(&sb, &["plan", "-q", "legacy/executioner.json"], &[]);
    ok(&quiet);
    assert_eq!(quiet.stderr, "");
    assert_eq!(quiet.stdout, run.stdout);
}

#[test]
fn every_example_plans() {
    let sb = Sandbox::new();
    let examples = repo().join("examples");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.is_file()),
            );
        } else {
            files.push(path);
        }
    }
    let mut planned = 0;
    for file in files {
        let ext = file.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("toml" | "yaml" | "yml" | "json")) {
            continue;
        }
        let run = exe(&sb, &["plan", file.to_str().unwrap()], &[]);
        ok(&run);
        assert!(run.stdout.contains("\nPlan: "), "{}", file.display());
        planned += 1;
    }
    assert!(planned >= 8, "only {planned} examples planned");
}

#[test]
fn skip_takes_comma_lists_and_repeats() {
    let sb = example("nightly-etl.toml");
    let listed = exe(
        &sb,
        &[
            "plan",
            "nightly-etl.toml",
            "--skip",
            "load_sales,load_customers",
        ],
        &[],
    );
    let repeated = exe(
        &sb,
        &[
            "plan",
            "nightly-etl.toml",
            "--skip",
            "load_sales",
            "--skip",
            "load_customers",
        ],
        &[],
    );
    ok(&listed);
    assert_eq!(listed.stdout, repeated.stdout);
    assert!(listed.stdout.ends_with("\nPlan: 4 to run, 2 skipped.\n"));
    insta::assert_snapshot!("skip_list", listed.stdout);
}

#[test]
fn skip_names_one_matrix_expansion_or_all_of_them() {
    let sb = example("matrix-build.yaml");
    let one = exe(
        &sb,
        &[
            "plan",
            "matrix-build.yaml",
            "--format",
            "json",
            "--skip",
            "build[os=linux,version=3.11],package_linux",
        ],
        &[],
    );
    ok(&one);
    let doc: serde_json::Value = serde_json::from_str(&one.stdout).unwrap();
    let skipped: Vec<&str> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["decision"] == "skip")
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["build[os=linux,version=3.11]", "package_linux"]);
    assert_eq!(
        doc["jobs"][1]["reason"], "skipped by --skip",
        "{}",
        one.stdout
    );

    let all = exe(&sb, &["plan", "matrix-build.yaml", "--skip", "test"], &[]);
    ok(&all);
    insta::assert_snapshot!("skip_matrix_job", all.stdout);
}

#[test]
fn only_runs_the_named_jobs() {
    let sb = example("nightly-etl.toml");
    let run = exe(
        &sb,
        &["plan", "nightly-etl.toml", "--only", "transform,report"],
        &[],
    );
    ok(&run);
    insta::assert_snapshot!("only", run.stdout);
}

#[test]
fn when_false_skips_with_its_reason() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "vars = { deploy = false }\n\
         [jobs.build]\ncommand = \"make\"\n\
         [jobs.deploy]\ncommand = \"make deploy\"\nneeds = [\"build\"]\nwhen = \"{{ vars.deploy }}\"\n",
    );
    let run = exe(&sb, &["plan", "p.toml"], &[]);
    ok(&run);
    insta::assert_snapshot!("when_false", run.stdout);
    let on = exe(&sb, &["plan", "p.toml", "--set", "vars.deploy=true"], &[]);
    assert!(
        on.stdout.ends_with("Plan: 2 to run, 0 skipped.\n"),
        "{}",
        on.stdout
    );
}

#[test]
fn an_unknown_skip_id_is_an_error_with_a_suggestion() {
    let sb = example("nightly-etl.toml");
    let run = exe(&sb, &["plan", "nightly-etl.toml", "--skip", "extrct"], &[]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    run.assert_stderr_has("did you mean `extract`?");
    insta::assert_snapshot!("unknown_skip", run.stderr);
}

#[test]
fn an_invalid_pipeline_exits_2_with_every_problem() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"true\"\ntimeout = \"soon\"\n[jobs.b]\ncommand = \"true\"\nneeds = [\"zz\"]\n",
    );
    let run = exe(&sb, &["plan", "p.toml"], &[]);
    assert_eq!(run.code, 2);
    run.assert_stderr_has("exe::config::invalid_duration");
    run.assert_stderr_has("exe::config::unknown_need");
}

const SECRETS: &str = r#"inherit_env = false

[env]
DB_PASSWORD = "hunter22"
DATABASE_URL = "postgres://app:hunter22@db.example.com/app"
REGION = "eu-west-1"

[jobs.migrate]
command = "psql postgres://app:hunter22@db.example.com/app -f schema.sql"
env = { API_TOKEN = "tok-0123456789", PIN_KEY = "42", CALLBACK = "https://hooks.example.com/?t=tok-0123456789" }

[jobs.report]
command = "echo done"
needs = ["migrate"]
"#;

#[test]
fn show_env_masks_secrets_and_their_copies() {
    let sb = Sandbox::new();
    sb.file("p.toml", SECRETS);
    let text = exe(
        &sb,
        &[
            "plan",
            "p.toml",
            "--show-env",
            "--env",
            "CLI_SECRET=from-the-flag",
        ],
        &[],
    );
    ok(&text);
    let json = exe(
        &sb,
        &["plan", "p.toml", "--show-env", "--format", "json"],
        &[],
    );
    ok(&json);
    for out in [&text.stdout, &json.stdout] {
        for secret in ["hunter22", "tok-0123456789", "from-the-flag"] {
            assert!(!out.contains(secret), "{secret} leaked:\n{out}");
        }
    }
    insta::assert_snapshot!("show_env_text", text.stdout);
    insta::assert_snapshot!("show_env_json", json.stdout);
}

#[test]
fn commands_are_masked_without_show_env_too() {
    let sb = Sandbox::new();
    sb.file("p.toml", SECRETS);
    let run = exe(&sb, &["plan", "p.toml"], &[]);
    ok(&run);
    run.assert_stdout_lacks("hunter22");
    assert!(
        run.stdout
            .contains("command: psql postgres://app:***@db.example.com/app -f schema.sql"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("env:"),
        "no environment without --show-env"
    );
}

/// An include, a template, `defaults` and a profile, to explain values from each.
fn layered() -> Sandbox {
    let sb = Sandbox::new();
    sb.file(
        "common/settings.toml",
        "max_parallel = 2\nlog_dir = \"logs\"\n\n[defaults]\ntimeout_grace = \"2s\"\n\n\
         [templates.service]\ntimeout = \"5m\"\ncommand = \"make {{ params.name }}\"\n",
    );
    sb.file(
        "main.toml",
        "include = [\"common/settings.toml\"]\nname = \"layered\"\n\n\
         [jobs.api]\nextends = \"service\"\nwith = { name = \"api\" }\n\n\
         [jobs.web]\nextends = \"service\"\nwith = { name = \"web\" }\nneeds = [\"api\"]\n\n\
         [profiles.ci]\nmax_parallel = 8\n\n[profiles.ci.defaults]\ntimeout = \"10m\"\n",
    );
    sb
}

#[test]
fn explain_says_where_each_value_came_from() {
    let sb = layered();
    let args = [
        "plan",
        "main.toml",
        "--profile",
        "ci",
        "--set",
        "jobs.web.priority=5",
        "--explain",
        "max_parallel",
        "--explain",
        "log_dir",
        "--explain",
        "jobs.api.timeout",
        "--explain",
        "jobs.web.timeout_grace",
        "--explain",
        "jobs.web.priority",
        "--explain",
        "continue_on_error",
        "--explain",
        "jobs.api.retry.max",
        "--explain",
        "name",
    ];
    let env = [("EXE_CONTINUE_ON_ERROR", "true")];
    let text = exe(&sb, &args, &env);
    ok(&text);
    insta::assert_snapshot!("explain_text", text.stdout);
    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let json = exe(&sb, &json_args, &env);
    ok(&json);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    insta::assert_json_snapshot!("explain_json", doc["explain"]);
}

#[test]
fn explain_without_a_profile_names_the_template() {
    let sb = layered();
    let run = exe(
        &sb,
        &[
            "plan",
            "main.toml",
            "--explain",
            "jobs.web.timeout",
            "--explain",
            "max_parallel",
        ],
        &[],
    );
    ok(&run);
    let explained: String = run.stdout.split("\n\n").next().unwrap().to_owned();
    insta::assert_snapshot!("explain_template", explained);
}

#[test]
fn explain_rejects_unknown_paths_with_suggestions() {
    let sb = layered();
    let run = exe(
        &sb,
        &[
            "plan",
            "main.toml",
            "--explain",
            "max_paralel",
            "--explain",
            "jobs.wen.timeout",
            "--explain",
            "jobs.web.timeot",
            "--explain",
            "jobs..x",
        ],
        &[],
    );
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    for hint in [
        "did you mean `max_parallel`?",
        "did you mean `web`?",
        "did you mean `timeout`?",
        "not a key path",
    ] {
        assert!(run.stderr.contains(hint), "{hint} missing:\n{}", run.stderr);
    }
    insta::assert_snapshot!("explain_unknown", run.stderr);
}

#[test]
fn explain_takes_matrix_ids_and_keys_with_dots() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.build]\ncommand = \"make\"\nmatrix = { os = [\"linux\"], version = [\"3.11\", \"3.12\"] }\n\
         [jobs.\"deploy.prod\"]\ncommand = \"true\"\ntimeout = \"5s\"\n",
    );
    // A value with a dot, and the pairs in another order than the id's.
    let run = sb.exe(&[
        "plan",
        "p.toml",
        "--explain",
        "jobs.build[version=3.12,os=linux].command",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stdout_has("jobs.build.command = \"make\"");
    let run = sb.exe(&[
        "plan",
        "p.toml",
        "--explain",
        "jobs.\"deploy.prod\".timeout",
    ]);
    run.assert_stdout_has("jobs.\"deploy.prod\".timeout = \"5s\"");
    for (path, help) in [
        (
            "jobs.deploy.prod.timeout",
            "a key with dots is quoted: `jobs.\"deploy.prod\".timeout`",
        ),
        (
            "jobs.build[version=3.13].command",
            "`build`'s matrix key `version` has no value `3.13`; its values: `3.11`, `3.12`",
        ),
    ] {
        let run = sb.exe(&["plan", "p.toml", "--explain", path]);
        assert_eq!(run.code, 2, "{path}: {}", run.stderr);
        run.assert_stderr_has(help);
    }
}

#[test]
fn explain_finds_map_entries_a_job_gets_from_defaults_or_a_template() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[defaults]\nenv = { A = \"1\" }\n\
         [templates.t]\nwith = { lang = \"rust\" }\n\
         [jobs.a]\ncommand = \"true\"\nenv = { B = \"2\" }\nextends = \"t\"\n",
    );
    let run = exe(
        &sb,
        &[
            "plan",
            "p.toml",
            "--explain",
            "jobs.a.env.A",
            "--explain",
            "jobs.a.env.B",
            "--explain",
            "jobs.a.with.lang",
        ],
        &[],
    );
    ok(&run);
    run.assert_stdout_has("  jobs.a.env.A = \"1\"\n    from p.toml:2:13, via `defaults`\n");
    run.assert_stdout_has("  jobs.a.env.B = \"2\"\n    from p.toml:7:13\n");
    run.assert_stdout_has(
        "  jobs.a.with.lang = \"rust\"\n    from p.toml:4:17, via template `t`\n",
    );
    let missing = exe(&sb, &["plan", "p.toml", "--explain", "jobs.a.env.Z"], &[]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    missing.assert_stderr_has("there is no `Z` in `jobs.a.env`");
    // A list of one written as its value, and an item past the end of a list.
    let item = exe(
        &sb,
        &["plan", "p.toml", "--explain", "jobs.a.extends.0"],
        &[],
    );
    item.assert_stdout_has("  jobs.a.extends.0 = \"t\"\n    from p.toml:8:11\n");
    let past = exe(
        &sb,
        &["plan", "p.toml", "--explain", "jobs.a.extends.1"],
        &[],
    );
    assert_eq!(past.code, 2, "{}", past.stderr);
    past.assert_stderr_has("there is no item 1 in `jobs.a.extends`: it has 1 item, from 0");
}

#[test]
fn explain_shows_a_map_as_merged_with_its_templates_and_defaults() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[defaults]\nretry = { max = 3, delay = \"30s\" }\n\
         [templates.t]\nretry = { backoff = 2.0 }\n\
         [jobs.a]\ncommand = \"true\"\nextends = \"t\"\nretry = { max = 5 }\n",
    );
    let text = exe(&sb, &["plan", "p.toml", "--explain", "jobs.a.retry"], &[]);
    ok(&text);
    text.assert_stdout_has(
        "  jobs.a.retry = {\"max\":5,\"delay\":\"30s\",\"backoff\":2.0}\n    \
         from p.toml:8:9, merged with template `t` and `defaults`\n",
    );
    let json = exe(
        &sb,
        &[
            "plan",
            "p.toml",
            "--explain",
            "jobs.a.retry",
            "--format",
            "json",
        ],
        &[],
    );
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        doc["explain"][0]["merged_with"],
        serde_json::json!([{ "via": "template", "template": "t" }, { "via": "defaults", "template": null }])
    );
}

#[test]
fn only_exe_in_capitals_is_read_from_the_environment() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[vars]\nx = \"file\"\n[jobs.a]\ncommand = \"echo {{ vars.x }}\"\n",
    );
    let lower = exe(
        &sb,
        &["plan", "p.toml"],
        &[("exe_vars__x", "lower"), ("Exe_Vars__x", "mixed")],
    );
    ok(&lower);
    lower.assert_stdout_has("command: echo file");
    let upper = exe(&sb, &["plan", "p.toml"], &[("EXE_VARS__X", "upper")]);
    upper.assert_stdout_has("command: echo upper");
}

#[test]
fn explain_masks_secret_values() {
    let sb = Sandbox::new();
    sb.file("p.toml", SECRETS);
    let run = exe(
        &sb,
        &[
            "plan",
            "p.toml",
            "--explain",
            "env.DB_PASSWORD",
            "--explain",
            "env.DATABASE_URL",
        ],
        &[],
    );
    ok(&run);
    run.assert_stdout_lacks("hunter22");
    run.assert_stdout_has("env.DB_PASSWORD = \"***\"");
}

#[test]
fn a_secret_given_by_set_is_masked_where_its_flag_is_named() {
    let sb = Sandbox::new();
    sb.file("p.toml", SECRETS);
    let set = "env.DB_PASSWORD=s3cret-by-flag";
    for format in ["text", "json"] {
        let run = exe(
            &sb,
            &[
                "plan",
                "p.toml",
                "--set",
                set,
                "--explain",
                "env.DB_PASSWORD",
                "--format",
                format,
            ],
            &[],
        );
        ok(&run);
        run.assert_stdout_has("--set env.DB_PASSWORD=***");
        run.assert_stdout_lacks("s3cret-by-flag");
    }
    // A table holding a secret, and a value that fails to render, named in an error.
    let table = exe(
        &sb,
        &[
            "plan",
            "p.toml",
            "--set",
            "env={ DB_PASSWORD = \"s3cret-by-flag\" }",
            "--explain",
            "env.DB_PASSWORD",
        ],
        &[],
    );
    ok(&table);
    table.assert_stdout_has("from --set env=***");
    table.assert_stdout_lacks("s3cret-by-flag");
    let broken = exe(
        &sb,
        &["plan", "p.toml", "--set", "env.DB_PASSWORD=s3cret{{"],
        &[],
    );
    assert_eq!(broken.code, 2, "{}", broken.stderr);
    broken.assert_stderr_has("(set by --set env.DB_PASSWORD=***)");
    broken.assert_stderr_lacks("s3cret");
    // Other values are shown as given.
    let plain = exe(
        &sb,
        &[
            "plan",
            "p.toml",
            "--set",
            "env.HOME_DIR=/x",
            "--explain",
            "env.HOME_DIR",
        ],
        &[],
    );
    plain.assert_stdout_has("from --set env.HOME_DIR=/x");
}

#[test]
fn detailed_exitcode_follows_terraform() {
    let sb = example("nightly-etl.toml");
    let changes = exe(
        &sb,
        &["plan", "nightly-etl.toml", "--detailed-exitcode"],
        &[],
    );
    assert_eq!(changes.code, 2, "something would run");
    assert!(changes.stdout.ends_with("Plan: 6 to run, 0 skipped.\n"));

    let all = "land_feed,extract,transform,load_sales,load_customers,report";
    let nothing = exe(
        &sb,
        &[
            "plan",
            "nightly-etl.toml",
            "--detailed-exitcode",
            "--skip",
            all,
        ],
        &[],
    );
    assert_eq!(nothing.code, 0, "nothing would run: {}", nothing.stderr);
    assert!(nothing.stdout.ends_with("Plan: 0 to run, 6 skipped.\n"));
    assert!(
        nothing
            .stdout
            .contains("Critical path: none (nothing runs)")
    );

    let error = exe(
        &sb,
        &[
            "plan",
            "nightly-etl.toml",
            "--detailed-exitcode",
            "--skip",
            "nope",
        ],
        &[],
    );
    assert_eq!(error.code, 1, "errors are 1 with --detailed-exitcode");
    error.assert_stderr_has("exe::cli::unknown_job");

    let plain = exe(&sb, &["plan", "nightly-etl.toml"], &[]);
    assert_eq!(plain.code, 0, "without the flag, a valid plan is 0");
}

#[test]
fn max_parallel_overrides_the_file() {
    let sb = example("nightly-etl.toml");
    let run = exe(
        &sb,
        &[
            "plan",
            "nightly-etl.toml",
            "--max-parallel",
            "7",
            "--format",
            "json",
        ],
        &[],
    );
    ok(&run);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["pipeline"]["max_parallel"], 7);
    // A selection of no job (an empty `$JOBS` in `--only "$JOBS"`) is refused, not "all".
    for (flag, value) in [("--only", ""), ("--only", ","), ("--skip", " , ")] {
        for command in ["plan", "apply"] {
            let refused = exe(&sb, &[command, "nightly-etl.toml", flag, value], &[]);
            assert_eq!(refused.code, 2, "{command} {flag} {value:?}");
            refused.assert_stderr_has("it names no job");
        }
    }
    // As `apply` takes it: a plan that prints is one `apply` accepts.
    for bad in ["0", "99999999999"] {
        for command in ["plan", "apply"] {
            let refused = exe(
                &sb,
                &[command, "nightly-etl.toml", "--max-parallel", bad],
                &[],
            );
            assert_eq!(refused.code, 2, "{command} {bad}");
            refused.assert_stderr_has(&format!("invalid value '{bad}' for '--max-parallel <N>'"));
        }
    }
}

#[test]
fn ids_are_escaped_in_dot_and_mermaid() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "jobs:\n  build:\n    command: \"true\"\n    matrix:\n      name: ['a \"quoted\" (x)', 'b<c>']\n  \
         ship:\n    command: \"true\"\n    needs: [build]\n",
    );
    let dot = exe(
        &sb,
        &["plan", "p.yaml", "--format", "dot", "--skip", "ship"],
        &[],
    );
    ok(&dot);
    insta::assert_snapshot!("escaped_dot", dot.stdout);
    let mermaid = exe(
        &sb,
        &["plan", "p.yaml", "--format", "mermaid", "--skip", "ship"],
        &[],
    );
    ok(&mermaid);
    insta::assert_snapshot!("escaped_mermaid", mermaid.stdout);
}

#[test]
fn an_ampersand_in_an_id_shows_as_written_in_graphviz() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.m]\ncommand = \"true\"\nmatrix = { v = [\"e&amp;\"] }\n",
    );
    let dot = exe(&sb, &["plan", "p.toml", "--format", "dot"], &[]);
    ok(&dot);
    // Graphviz reads `&amp;` in a label as `&`: the label spells out the `&` itself.
    dot.assert_stdout_has("  \"m[v=e&amp;]\" [label=\"m[v=e&amp;amp;]\"];\n");
}

#[test]
fn a_100_000_job_chain_plans_in_reasonable_time() {
    let sb = Sandbox::new();
    let mut text = String::with_capacity(6_000_000);
    text.push_str("[jobs.j0]\ncommand = \"true\"\n");
    for i in 1..100_000 {
        text.push_str(&format!(
            "[jobs.j{i}]\ncommand = \"true\"\nneeds = [\"j{}\"]\n",
            i - 1
        ));
    }
    sb.file("chain.toml", text);
    let started = std::time::Instant::now();
    let run = exe(&sb, &["plan", "chain.toml"], &[]);
    let took = started.elapsed();
    ok(&run);
    assert!(
        run.stdout.ends_with("\nPlan: 100000 to run, 0 skipped.\n"),
        "{}",
        &run.stdout[run.stdout.len().saturating_sub(200)..]
    );
    // Generous: a debug build on a shared 2-core machine; a release build takes seconds.
    assert!(took.as_secs() < 300, "took {took:?}");
}

#[test]
fn control_characters_in_a_pipeline_do_not_reach_the_terminal() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "name = \"evil\\u001b[2J\\nline\"\n\
         [jobs.a]\ncommand = \"\\u0007\\u001b[31mred\"\nenv = { X = \"\\u001b]0;title\\u0007\" }\n",
    );
    let plan = exe(&sb, &["plan", "p.toml", "--show-env"], &[]);
    ok(&plan);
    assert!(
        !plan.stdout.contains(['\u{7}', '\u{1b}']),
        "{:?}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains(r"command: \u{7}\u{1b}[31mred"),
        "{}",
        plan.stdout
    );
    plan.assert_stdout_has("Pipeline:     evil\\u{1b}[2J\\nline\n");
}

#[test]
fn include_cannot_be_set_by_a_flag_or_the_environment() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    sb.file("extra.toml", "log_dir = \"elsewhere\"\n");
    // The files are read before the layers merge: it would be shown as in force, and ignored.
    let flag = exe(&sb, &["plan", "p.toml", "--set", "include=extra.toml"], &[]);
    assert_eq!(flag.code, 2, "{}", flag.stderr);
    flag.assert_stderr_has("which --set cannot add");
    let env = exe(&sb, &["plan", "p.toml"], &[("EXE_INCLUDE", "extra.toml")]);
    assert_eq!(env.code, 2, "{}", env.stderr);
    env.assert_stderr_has("set by environment variable EXE_INCLUDE");
}

#[test]
fn explain_names_the_variables_that_add_to_a_map_not_one_that_was_never_set() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[vars]\nregion = \"eu\"\n[vars.db]\nhost = \"h1\"\n\
         [jobs.a]\ncommand = \"echo {{ vars.db.host }}\"\n",
    );
    let out = sb.sh(
        "EXE_VARS__DB__PORT=5432 EXE_VARS__REGION=us \"$0\" plan p.toml --explain vars \
         --explain vars.db.port",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.assert_stdout_has("from p.toml:1:1, with EXE_VARS__DB__PORT, EXE_VARS__REGION added");
    out.assert_stdout_has(
        "vars.db.port = 5432\n    from environment variable EXE_VARS__DB__PORT\n",
    );
    out.assert_stdout_lacks("variable EXE_VARS\n");
}
