//! Snapshots of what `exe lint` prints for every kind of mistake, in every format.
//! Each case is written in TOML, YAML and JSON; the human and JSON outputs are snapshotted.

use crate::harness::Sandbox;

struct Case {
    name: &'static str,
    toml: &'static str,
    yaml: &'static str,
    json: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown_key",
        toml: "[jobs.a]\ncomand = \"echo hi\"\n",
        yaml: "jobs:\n  a:\n    comand: echo hi\n",
        json: "{\"jobs\": {\"a\": {\"comand\": \"echo hi\"}}}\n",
    },
    Case {
        name: "invalid_type",
        toml: "max_parallel = \"four\"\n[jobs.a]\ncommand = \"true\"\n",
        yaml: "max_parallel: four\njobs:\n  a:\n    command: \"true\"\n",
        json: "{\"max_parallel\": \"four\", \"jobs\": {\"a\": {\"command\": \"true\"}}}\n",
    },
    Case {
        name: "out_of_range",
        toml: "max_parallel = -3\n[jobs.a]\ncommand = \"true\"\n",
        yaml: "max_parallel: -3\njobs:\n  a:\n    command: \"true\"\n",
        json: "{\"max_parallel\": -3, \"jobs\": {\"a\": {\"command\": \"true\"}}}\n",
    },
    Case {
        name: "invalid_duration",
        toml: "[jobs.a]\ncommand = \"true\"\ntimeout = \"5x\"\n",
        yaml: "jobs:\n  a:\n    command: \"true\"\n    timeout: 5x\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"true\", \"timeout\": \"5x\"}}}\n",
    },
    Case {
        name: "invalid_size",
        toml: "[jobs.a]\ncommand = \"true\"\nresources = { memory = \"4 parsecs\" }\n",
        yaml: "jobs:\n  a:\n    command: \"true\"\n    resources: { memory: 4 parsecs }\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"true\", \"resources\": {\"memory\": \"4 parsecs\"}}}}\n",
    },
    Case {
        name: "empty_command",
        toml: "[jobs.a]\ncommand = \"  \"\n",
        yaml: "jobs:\n  a:\n    command: \"  \"\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"  \"}}}\n",
    },
    Case {
        name: "missing_command",
        toml: "[jobs.a]\ndescription = \"nothing to run\"\n",
        yaml: "jobs:\n  a:\n    description: nothing to run\n",
        json: "{\"jobs\": {\"a\": {\"description\": \"nothing to run\"}}}\n",
    },
    Case {
        name: "duplicate_key",
        toml: "[jobs.a]\ncommand = \"true\"\ncommand = \"false\"\n",
        yaml: "jobs:\n  a:\n    command: \"true\"\n  a:\n    command: \"false\"\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"true\"}, \"a\": {\"command\": \"false\"}}}\n",
    },
    Case {
        name: "unknown_need",
        toml: "[jobs.build]\ncommand = \"true\"\n[jobs.test]\ncommand = \"true\"\nneeds = [\"biuld\"]\n",
        yaml: "jobs:\n  build:\n    command: \"true\"\n  test:\n    command: \"true\"\n    needs: [biuld]\n",
        json: "{\"jobs\": {\"build\": {\"command\": \"true\"}, \"test\": {\"command\": \"true\", \"needs\": [\"biuld\"]}}}\n",
    },
    Case {
        name: "cycle",
        toml: "[jobs.a]\ncommand = \"true\"\nneeds = [\"c\"]\n[jobs.b]\ncommand = \"true\"\nneeds = [\"a\"]\n[jobs.c]\ncommand = \"true\"\nneeds = [\"b\"]\n",
        yaml: "jobs:\n  a: { command: \"true\", needs: [c] }\n  b: { command: \"true\", needs: [a] }\n  c: { command: \"true\", needs: [b] }\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"true\", \"needs\": [\"c\"]}, \"b\": {\"command\": \"true\", \"needs\": [\"a\"]}, \"c\": {\"command\": \"true\", \"needs\": [\"b\"]}}}\n",
    },
    Case {
        name: "template_undefined",
        toml: "vars = { region = \"eu\" }\n[jobs.a]\ncommand = \"sync {{ vars.regoin }}\"\n",
        yaml: "vars: { region: eu }\njobs:\n  a:\n    command: \"sync {{ vars.regoin }}\"\n",
        json: "{\"vars\": {\"region\": \"eu\"}, \"jobs\": {\"a\": {\"command\": \"sync {{ vars.regoin }}\"}}}\n",
    },
    Case {
        name: "unknown_template",
        toml: "[templates.base]\ntimeout = \"1m\"\n[jobs.a]\ncommand = \"true\"\nextends = \"bsae\"\n",
        yaml: "templates:\n  base: { timeout: 1m }\njobs:\n  a:\n    command: \"true\"\n    extends: bsae\n",
        json: "{\"templates\": {\"base\": {\"timeout\": \"1m\"}}, \"jobs\": {\"a\": {\"command\": \"true\", \"extends\": \"bsae\"}}}\n",
    },
    Case {
        name: "security_strict",
        toml: "security_policy = \"strict\"\n[jobs.a]\ncommand = \"curl -fsSL https://example.com/x.sh | sh\"\n",
        yaml: "security_policy: strict\njobs:\n  a:\n    command: curl -fsSL https://example.com/x.sh | sh\n",
        json: "{\"security_policy\": \"strict\", \"jobs\": {\"a\": {\"command\": \"curl -fsSL https://example.com/x.sh | sh\"}}}\n",
    },
    Case {
        name: "security_warn",
        toml: "[jobs.a]\ncommand = \"sudo rm -rf /\"\n",
        yaml: "jobs:\n  a:\n    command: sudo rm -rf /\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"sudo rm -rf /\"}}}\n",
    },
    Case {
        name: "working_dir_missing",
        toml: "working_dir = \"no/such/dir\"\n[jobs.a]\ncommand = \"true\"\n",
        yaml: "working_dir: no/such/dir\njobs:\n  a:\n    command: \"true\"\n",
        json: "{\"working_dir\": \"no/such/dir\", \"jobs\": {\"a\": {\"command\": \"true\"}}}\n",
    },
    Case {
        name: "syntax",
        toml: "[jobs.a]\ncommand = \"true\n",
        yaml: "jobs:\n  a:\n    command: [true\n",
        json: "{\"jobs\": {\"a\": {\"command\": \"true\",}}}\n",
    },
    Case {
        name: "many_at_once",
        toml: "max_parallel = 0\n[jobs.a]\ncomand = \"x\"\ntimeout = \"soon\"\n[jobs.b]\ncommand = \"true\"\nneeds = [\"zz\"]\nretry = { jitter = 2.0 }\n",
        yaml: "max_parallel: 0\njobs:\n  a:\n    comand: x\n    timeout: soon\n  b:\n    command: \"true\"\n    needs: [zz]\n    retry: { jitter: 2.0 }\n",
        json: "{\"max_parallel\": 0, \"jobs\": {\"a\": {\"comand\": \"x\", \"timeout\": \"soon\"}, \"b\": {\"command\": \"true\", \"needs\": [\"zz\"], \"retry\": {\"jitter\": 2.0}}}}\n",
    },
];

#[test]
fn diagnostics_in_every_format() {
    for case in CASES {
        for (ext, text) in [
            ("toml", case.toml),
            ("yaml", case.yaml),
            ("json", case.json),
        ] {
            let sb = Sandbox::new();
            let file = format!("pipeline.{ext}");
            sb.file(&file, text);
            let human = sb.exe(&["lint", &file]);
            let json = sb.exe(&["lint", "--format", "json", &file]);
            let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
            let expect_error = case.name != "security_warn";
            assert_eq!(
                human.code,
                i32::from(expect_error),
                "{} {ext}: {}",
                case.name,
                human.stdout
            );
            assert_eq!(report["valid"], !expect_error, "{} {ext}", case.name);
            insta::assert_snapshot!(format!("{}_{ext}_human", case.name), human.stdout);
            insta::assert_snapshot!(format!("{}_{ext}_json", case.name), json.stdout);
        }
    }
}

#[test]
fn many_problems_are_all_reported() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        CASES
            .iter()
            .find(|c| c.name == "many_at_once")
            .unwrap()
            .toml,
    );
    let report = lint_json(&sb, "p.toml");
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    for code in [
        "exe::config::unknown_key",
        "exe::config::invalid_duration",
        "exe::config::invalid_value",
        "exe::config::unknown_need",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
}

#[test]
fn legacy_files_warn_and_keep_loading() {
    let sb = Sandbox::new();
    sb.file(
        "old.json",
        r#"{
  "application_name": "nightly",
  "_comment": "ignored silently",
  "colour": "blue",
  "jobs": [
    {"id": "a", "command": "true", "max_retries": 2, "retry_delai": 5},
    {"id": "b", "command": "true", "dependencies": ["a", "c"]}
  ]
}
"#,
    );
    let human = sb.exe(&["lint", "old.json"]);
    insta::assert_snapshot!("legacy_human", human.stdout);
    let json = sb.exe(&["lint", "--format", "json", "old.json"]);
    insta::assert_snapshot!("legacy_json", json.stdout);
    assert_eq!(human.code, 1, "the unknown dependency `c` is an error");
}

#[test]
fn legacy_commands_are_not_templates() {
    let sb = Sandbox::new();
    sb.file("old.json", r#"{"application_name": "x", "jobs": [{"id": "a", "command": "echo {{ not a template }} ${#HOME}"}]}"#);
    let run = sb.exe(&["lint", "--format", "json", "old.json"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn github_format_annotates_lines() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncomand = \"echo\"\n");
    let run = sb.exe(&["lint", "--format", "github", "p.toml"]);
    insta::assert_snapshot!("github_unknown_key", run.stdout);
    assert_eq!(run.code, 1);
}

#[test]
fn deny_warnings_fails_on_warnings() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"sudo true\"\n");
    assert_eq!(sb.exe(&["lint", "p.toml"]).code, 0);
    assert_eq!(sb.exe(&["lint", "--deny-warnings", "p.toml"]).code, 1);
    let quiet = sb.exe(&["lint", "-q", "p.toml"]);
    assert_eq!(quiet.stdout, "", "-q prints only errors");
    assert_eq!(
        sb.exe(&["lint", "-q", "--deny-warnings", "p.toml"]).code,
        1,
        "-q hides warnings but still counts them"
    );
}

#[test]
fn stdin_is_linted_with_a_guessed_or_given_format() {
    let sb = Sandbox::new();
    let yaml = b"jobs:\n  a:\n    comand: x\n";
    let run = sb.exe_with(&["lint", "-"], Some(yaml));
    assert_eq!(run.code, 1);
    run.assert_stdout_has("unknown key `comand`");
    let run = sb.exe_with(
        &["lint", "--stdin-filename", "p.toml", "-"],
        Some(b"[jobs.a]\ncommand = \"true\"\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn usage_errors_exit_2() {
    let sb = Sandbox::new();
    assert_eq!(sb.exe(&["lint", "--format", "xml"]).code, 2);
    assert_eq!(sb.exe(&["frobnicate"]).code, 2);
}

#[test]
fn lint_writes_nothing() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["lint", "p.toml"]).code, 0);
    let entries: Vec<_> = std::fs::read_dir(sb.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["p.toml"]);
}

#[test]
fn problems_behind_type_errors_are_reported_in_the_same_run() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 0\n[jobs.a]\ncommand = 5\n[jobs.b]\ncommand = \"true\"\nneeds = [\"zz\"]\n",
    );
    let run = sb.exe(&["lint", "--format", "json", "p.toml"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "exe::config::invalid_type",
            "exe::config::invalid_value",
            "exe::config::unknown_need"
        ],
        "{}",
        run.stdout
    );
}

#[test]
fn an_include_glob_matching_nothing_is_a_reported_warning() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "include = [\"parts/*.toml\"]\n[jobs.a]\ncommand = \"true\"\n",
    );
    let run = sb.exe(&["lint", "--format", "json", "p.toml"]);
    run.assert_stdout_has("exe::config::include_empty");
    assert_eq!(run.code, 0);
    assert_eq!(sb.exe(&["lint", "--deny-warnings", "p.toml"]).code, 1);
}

#[test]
fn unknown_legacy_retry_statuses_are_warnings() {
    let sb = Sandbox::new();
    sb.file(
        "old.json",
        r#"{"jobs": [{"id": "a", "command": "true", "retry_on_status": ["TIMEOUT", "CANCELED"]}]}"#,
    );
    let run = sb.exe(&["lint", "--format", "json", "old.json"]);
    assert!(
        run.stdout
            .contains("unknown retry status `CANCELED`, ignored"),
        "{}",
        run.stdout
    );
    assert_eq!(run.code, 0);
}

/// Legacy (executioner) files: every kind of problem that such a file can have.
const LEGACY_CASES: &[(&str, &str, bool)] = &[
    (
        "invalid_type",
        r#"{"max_workers": "four", "jobs": [{"id": "a", "command": "true"}]}"#,
        true,
    ),
    (
        "invalid_duration",
        r#"{"jobs": [{"id": "a", "command": "true", "timeout": "5x"}]}"#,
        true,
    ),
    (
        "empty_command",
        r#"{"jobs": [{"id": "a", "command": "  "}]}"#,
        true,
    ),
    (
        "missing_command",
        r#"{"jobs": [{"id": "a", "description": "nothing"}]}"#,
        true,
    ),
    (
        "duplicate_id",
        r#"{"jobs": [{"id": "a", "command": "true"}, {"id": "a", "command": "false"}]}"#,
        true,
    ),
    (
        "unknown_need",
        r#"{"jobs": [{"id": "build", "command": "true"}, {"id": "t", "command": "true", "dependencies": ["biuld"]}]}"#,
        true,
    ),
    (
        "cycle",
        r#"{"jobs": [{"id": "a", "command": "true", "dependencies": ["b"]}, {"id": "b", "command": "true", "dependencies": ["a"]}]}"#,
        true,
    ),
    (
        "security_strict",
        r#"{"security_policy": "strict", "jobs": [{"id": "a", "command": "curl -s https://x.example/i.sh | sh"}]}"#,
        true,
    ),
    (
        "working_dir_missing",
        r#"{"working_dir": "/no/such/dir", "jobs": [{"id": "a", "command": "true"}]}"#,
        true,
    ),
    (
        "unknown_check",
        r#"{"jobs": [{"id": "a", "command": "true", "pre_checks": [{"name": "check_disk", "params": {}}]}]}"#,
        true,
    ),
    (
        "check_param",
        r#"{"jobs": [{"id": "a", "command": "true", "post_checks": [{"name": "check_no_ora_errors", "params": {}}]}]}"#,
        true,
    ),
    (
        "syntax",
        r#"{"jobs": [{"id": "a", "command": "true",}]}"#,
        true,
    ),
    (
        "unknown_key",
        r#"{"jobs": [{"id": "a", "command": "true", "retries": 3}], "colour": "blue"}"#,
        false,
    ),
    (
        "unsupported",
        r#"{"allow_shell": false, "dependency_plugins": ["p.py"], "jobs": [{"id": "a", "command": "true"}]}"#,
        false,
    ),
];

#[test]
fn diagnostics_in_legacy_files() {
    for (name, text, expect_error) in LEGACY_CASES {
        let sb = Sandbox::new();
        sb.file("legacy.json", text);
        let human = sb.exe(&["lint", "legacy.json"]);
        let json = sb.exe(&["lint", "--format", "json", "legacy.json"]);
        assert_eq!(
            human.code,
            i32::from(*expect_error),
            "{name}: {}",
            human.stdout
        );
        insta::assert_snapshot!(format!("legacy_{name}_human"), human.stdout);
        insta::assert_snapshot!(format!("legacy_{name}_json"), json.stdout);
    }
}

#[test]
fn matrix_values_that_would_break_ids_are_errors() {
    let sb = Sandbox::new();
    // A value with `/` would name a log file outside the run's folder; two values written
    // the same would make two jobs with one id; `null` is not a value.
    sb.file(
        "p.yaml",
        "jobs:\n  b:\n    matrix:\n      os: [\"x/../../escaped\"]\n    command: echo hi\n\
         \x20 d:\n    matrix:\n      v: [1, \"1\"]\n      f: [null]\n    command: echo hi\n",
    );
    assert_eq!(
        messages_of(&sb, "p.yaml", "exe::config::invalid_matrix"),
        [
            "matrix key `os` of job `b`: the value \"x/../../escaped\" is empty or holds `/`, `,`, `=`, `[`, `]` or a control character",
            "matrix key `f` of job `d`: the value null is not a string, number or boolean",
            "matrix key `v` of job `d`: the value `1` is listed twice",
        ]
    );
    let apply = sb.exe(&["apply", "p.yaml"]);
    assert_eq!(apply.code, 2, "{}", apply.stderr);
    assert!(!sb.path().join("escaped].log").exists());
}

#[test]
fn needs_are_located_in_either_form_and_bounded_in_number() {
    let sb = Sandbox::new();
    sb.file(
        "one.toml",
        "[jobs.a]\ncommand = \"echo\"\nneeds = \"bx\"\n[jobs.b]\ncommand = \"echo\"\n",
    );
    let report = lint_json(&sb, "one.toml");
    let unknown = &report["diagnostics"][0];
    assert_eq!(unknown["code"], "exe::config::unknown_need", "{report}");
    assert_eq!(unknown["range"]["start"]["line"], 3, "{unknown}");
    // 1,001 expansions each needing 1,000 others: 1,001,000 dependencies.
    let values = |n: usize| (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
    sb.file(
        "many.yaml",
        format!(
            "jobs:\n  a:\n    command: echo\n    matrix:\n      x: [{}]\n  b:\n    needs: a\n    command: echo\n    matrix:\n      y: [{}]\n",
            values(1000),
            values(1001)
        ),
    );
    let many = sb.exe(&["lint", "many.yaml"]);
    assert_eq!(many.code, 1);
    assert!(
        many.stdout.contains("exe::config::too_many_needs"),
        "{}",
        many.stdout
    );
}

#[test]
fn including_a_legacy_file_is_one_error_that_names_migrate() {
    let sb = Sandbox::new();
    sb.file(
        "old.json",
        r#"{"application_name": "old", "jobs": [{"id": "a", "command": "true"}]}"#,
    );
    sb.file(
        "p.toml",
        "include = \"old.json\"\n[jobs.z]\ncommand = \"true\"\n",
    );
    let run = sb.exe(&["lint", "--format", "json", "p.toml"]);
    assert_eq!(run.code, 1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let codes: Vec<&str> = report["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["exe::config::include_legacy"], "{report}");
}

#[test]
fn every_dependency_cycle_is_reported() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.d]\ncommand = \"true\"\nneeds = [\"d\"]\n\
         [jobs.e]\ncommand = \"true\"\nneeds = [\"f\"]\n\
         [jobs.f]\ncommand = \"true\"\nneeds = [\"e\"]\n\
         [jobs.g]\ncommand = \"true\"\n",
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::graph::cycle"),
        ["dependency cycle: d -> d", "dependency cycle: e -> f -> e"]
    );
}

#[test]
fn an_unknown_need_is_not_answered_with_the_job_itself() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.compile]\ncommand = \"true\"\n[jobs.deploy]\ncommand = \"true\"\nneeds = [\"deploi\"]\n",
    );
    let report = lint_json(&sb, "p.toml");
    // Not "did you mean `deploy`?": it would need itself.
    assert_eq!(
        report["diagnostics"][0]["help"],
        "`needs` lists ids of jobs in this pipeline"
    );
}

/// `exe lint --format json FILE`, parsed.
fn lint_json(sb: &Sandbox, file: &str) -> serde_json::Value {
    let run = sb.exe(&["lint", "--format", "json", file]);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", run.stdout, run.stderr))
}

/// The messages of `exe lint --format json FILE`'s diagnostics with `code`, in order.
fn messages_of(sb: &Sandbox, file: &str, code: &str) -> Vec<String> {
    lint_json(sb, file)["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == code)
        .map(|d| d["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_include_warning_is_kept_when_another_include_fails() {
    let sb = Sandbox::new();
    sb.file("common/base.yaml", "jobs:\n  a:\n    command: \"true\"\n");
    sb.file(
        "p.toml",
        "include = [\"common/base.yaml\", \"common/*.json\", \"sub/nothere.toml\"]\n\
         [jobs.z]\ncommand = \"true\"\n",
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::include_empty"),
        ["`common/*.json` matches no files"]
    );
}

#[test]
fn a_broken_include_does_not_hide_the_other_files_problems() {
    let sb = Sandbox::new();
    sb.file("a.toml", "[jobs.y]\ncommand = \"true\"\ncomand = \"x\"\n");
    sb.file("b.toml", "[jobs.z\ncommand = \"true\"\n");
    sb.file(
        "p.toml",
        "include = [\"a.toml\", \"b.toml\"]\nmax_parallel = \"two\"\n[jobs.x]\ncommand = \"true\"\n",
    );
    assert_eq!(messages_of(&sb, "p.toml", "exe::config::syntax").len(), 1);
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::unknown_key"),
        ["unknown key `comand` in `jobs.y`"]
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::invalid_type").len(),
        1
    );
}

#[test]
fn a_template_no_job_uses_is_checked_once() {
    let sb = Sandbox::new();
    // `u` extends `t`, which extends a template that does not exist; no job uses either.
    sb.file(
        "p.toml",
        "[templates.t]\nextends = \"nosuch\"\n[templates.u]\nextends = \"t\"\n\
         [jobs.a]\ncommand = \"true\"\n",
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::unknown_template"),
        ["unknown template `nosuch`"]
    );
}

#[test]
fn columns_count_characters_in_every_format() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.b]\ncommand = \"true\"\nneeds = [\"é\", \"zzz\"]\n",
    );
    // `zzz` is at byte 15 of its line and character 14: columns are 1-based characters.
    let human = sb.exe(&["lint", "p.toml"]);
    human.assert_stdout_has("[p.toml:3:15]");
    let github = sb.exe(&["lint", "--format", "github", "p.toml"]);
    github.assert_stdout_has("line=3,col=15,endLine=3,endColumn=20");
    let report = lint_json(&sb, "p.toml");
    let zzz = &report["diagnostics"][1]["range"]["start"];
    assert_eq!((&zzz["line"], &zzz["column"]), (&3.into(), &15.into()));
}

#[test]
fn matrix_jobs_are_named_by_some_of_their_pairs_in_any_order() {
    let sb = Sandbox::new();
    let matrix = "[jobs.build]\ncommand = \"true\"\nmatrix = { os = [\"linux\", \"mac\"], arch = [\"x86\", \"arm\"] }\n";
    sb.file(
        "p.toml",
        format!("{matrix}[jobs.test]\ncommand = \"true\"\nneeds = [\"build[os=linux,arch=x86]\", \"build[os=mac]\"]\n"),
    );
    let plan = sb.exe(&["plan", "--format", "json", "p.toml"]);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let test = &plan["jobs"].as_array().unwrap()[4];
    assert_eq!(
        test["needs"],
        serde_json::json!([
            "build[arch=x86,os=linux]",
            "build[arch=x86,os=mac]",
            "build[arch=arm,os=mac]"
        ])
    );
    let only = sb.exe(&["plan", "p.toml", "--only", "build[arch=arm]"]);
    only.assert_stdout_has("Plan: 2 to run, 3 skipped.");

    for (need, help) in [
        (
            "build[os=macos]",
            "`build`'s matrix key `os` has no value `macos`; its values: `linux`, `mac`",
        ),
        (
            "build[cpu=arm]",
            "`build` has no matrix key `cpu`; its keys: `arch`, `os`",
        ),
    ] {
        sb.file(
            "bad.toml",
            format!("{matrix}[jobs.test]\ncommand = \"true\"\nneeds = [\"{need}\"]\n"),
        );
        let report = lint_json(&sb, "bad.toml");
        assert_eq!(
            report["diagnostics"][0]["code"],
            "exe::config::unknown_need"
        );
        assert_eq!(report["diagnostics"][0]["help"], help);
    }
}

#[test]
fn a_list_where_a_table_belongs_is_an_error_not_fields_in_order() {
    let sb = Sandbox::new();
    // A Taskfile habit: a list of commands. serde would read it as command, description.
    sb.file(
        "p.yaml",
        "jobs:\n  a: [\"echo x\", \"echo y\"]\n  b:\n    command: \"true\"\n    retry: [3, \"10ms\"]\n",
    );
    assert_eq!(
        messages_of(&sb, "p.yaml", "exe::config::invalid_type"),
        [
            "`jobs.a` must be a table of keys, found a list",
            "`jobs.b.retry` must be a table of keys, found a list"
        ]
    );
    assert_eq!(sb.exe(&["apply", "p.yaml"]).code, 2);
}

#[test]
fn notify_settings_warn_that_nothing_is_sent_yet() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[notify.webhook]\nurl = \"https://hooks.example.com/x\"\n[jobs.a]\ncommand = \"true\"\n",
    );
    sb.file(
        "only.toml",
        "[notify]\non_failure = true\n[jobs.a]\ncommand = \"true\"\n",
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::notify_not_sent"),
        ["`notify` is set, but this version of exe sends no e-mail or webhook"]
    );
    assert!(messages_of(&sb, "only.toml", "exe::config::notify_not_sent").is_empty());
}

#[test]
fn a_problem_on_a_very_long_line_is_named_by_position_not_printed_whole() {
    let sb = Sandbox::new();
    // Minified JSON: the whole pipeline on one line of about 30 KB.
    let jobs: Vec<String> = (0..500)
        .map(|i| format!("\"job{i}\":{{\"command\":\"echo {i}\"}}"))
        .collect();
    sb.file(
        "p.json",
        format!(
            "{{\"jobs\":{{{},\"bad\":{{\"comand\":\"x\"}}}}}}",
            jobs.join(",")
        ),
    );
    let run = sb.exe(&["lint", "p.json"]);
    assert_eq!(run.code, 1);
    run.assert_stdout_has("p.json:1:");
    run.assert_stdout_has("unknown key `comand` in `jobs.bad`");
    assert!(run.stdout.len() < 1_000, "{} bytes", run.stdout.len());
}

#[test]
fn env_names_no_environment_can_hold_are_errors() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[env]\nC = \"top\"\n\"A-B\" = \"x\"\n[jobs.a]\ncommand = \"echo C=$C\"\nenv = { \"C=D\" = \"y\" }\n",
    );
    let report = lint_json(&sb, "p.toml");
    let found: Vec<(&str, &str)> = (report["diagnostics"].as_array().unwrap().iter())
        .filter(|d| d["code"] == "exe::config::invalid_env_name")
        .map(|d| {
            (
                d["severity"].as_str().unwrap(),
                d["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                "warning",
                "`A-B` is not a shell variable name: a command cannot read it as `$A-B`"
            ),
            (
                "error",
                "`C=D` cannot be an environment variable's name: it holds `=`"
            ),
        ]
    );
    assert_eq!(sb.exe(&["apply", "p.toml"]).code, 2);
}

#[test]
fn a_retry_backoff_that_would_wait_past_a_hundred_years_is_an_error() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"exit 1\"\nretry = { max = 3, delay = \"0.1s\", backoff = 1e30 }\n\
         [jobs.b]\ncommand = \"exit 1\"\nretry = { max = 3, delay = \"0.1s\", backoff = 2 }\n",
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::invalid_value"),
        [
            "`retry.backoff` of job `a` makes the wait before retry 3 longer than 100 years \
          (`delay` times `backoff` to the power 2): lower `backoff`, `delay` or `max`"
        ]
    );
}

#[test]
fn an_id_too_long_for_its_log_file_name_is_an_error() {
    let sb = Sandbox::new();
    let long = "a".repeat(300);
    let value = "v".repeat(200);
    sb.file(
        "p.toml",
        format!(
            "[jobs.{long}]\ncommand = \"true\"\n\
             [jobs.m]\ncommand = \"true\"\nmatrix = {{ k = [\"x\", \"{value}\"] }}\n"
        ),
    );
    assert_eq!(
        messages_of(&sb, "p.toml", "exe::config::invalid_id"),
        [
            format!("the id of job `{long}` is 300 bytes long; at most 200"),
            "the id of job `m` is 205 bytes long with its matrix; at most 200".to_owned(),
        ]
    );
}

#[test]
fn a_log_dir_that_is_a_file_is_an_error() {
    let sb = Sandbox::new();
    sb.file("notadir", "");
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"true\"\nlog_dir = \"notadir\"\n[jobs.b]\ncommand = \"true\"\n",
    );
    sb.file(
        "top.toml",
        "log_dir = \"notadir\"\n[jobs.a]\ncommand = \"true\"\n",
    );
    for file in ["p.toml", "top.toml"] {
        assert_eq!(
            messages_of(&sb, file, "exe::config::log_dir_not_a_folder"),
            ["log_dir ./notadir is not a folder"],
            "{file}"
        );
    }
}

#[test]
fn an_infinite_or_nan_number_in_vars_is_an_error_not_null() {
    let sb = Sandbox::new();
    sb.file(
        "p.yaml",
        "vars: {f: .inf, ok: 1.5}\nenv: {X: .inf}\njobs:\n  a: {command: \"echo $X\", matrix: {n: [1, .nan]}}\n",
    );
    let found = messages_of(&sb, "p.yaml", "exe::config::invalid_value");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("`jobs.a.matrix.n.1`: NaN cannot be kept as a number here"));
    assert!(found[1].starts_with("`vars.f`: inf cannot be kept as a number here"));
}

#[test]
fn a_command_holding_a_nul_byte_is_an_error_in_either_format() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo a\\u0000b\"\n");
    sb.file(
        "old.json",
        r#"{"application_name": "x", "jobs": [{"id": "a", "command": "echo a\u0000b"}]}"#,
    );
    for file in ["p.toml", "old.json"] {
        assert_eq!(
            messages_of(&sb, file, "exe::config::invalid_value"),
            ["the command of job `a` holds a NUL byte, which no program can be given"],
            "{file}"
        );
        assert_eq!(sb.exe(&["apply", file]).code, 2, "{file}");
    }
}

#[test]
fn excerpts_never_show_a_secrets_value() {
    let sb = Sandbox::new();
    sb.file(
        "old.json",
        "{\n  \"application_name\": \"leak\",\n  \"smtp_password\": \"hunter22\",\n  \
         \"retries\": 3,\n  \"jobs\": [{\"id\": \"a\", \"command\": \"true\"}]\n}\n",
    );
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"true\"\nenv = { API_TOKEN = \"hunter22\" }\nretires = 3\n",
    );
    for (file, shown) in [
        ("old.json", "\"smtp_password\": \"********\","),
        ("p.toml", "env = { API_TOKEN = \"********\" }"),
    ] {
        let run = sb.exe(&["lint", file]);
        run.assert_stdout_has(shown);
        run.assert_stdout_lacks("hunter22");
        let apply = sb.exe(&["apply", file]);
        apply.assert_stderr_lacks("hunter22");
    }
}

#[test]
fn an_exit_code_no_process_can_have_is_refused_with_the_range() {
    let sb = Sandbox::new();
    for code in ["256", "-1", "99999999999"] {
        sb.file(
            "p.toml",
            format!(
                "[jobs.a]\ncommand = \"true\"\nretry = {{ max = 1, on_exit_codes = [1, {code}] }}\n"
            ),
        );
        assert_eq!(
            messages_of(&sb, "p.toml", "exe::config::invalid_value"),
            [format!(
                "`jobs.a.retry.on_exit_codes.1` must be a whole number from 0 to 255, found {code}"
            )],
        );
    }
}

#[test]
fn a_fragment_two_linted_files_include_has_its_problem_reported_once() {
    let sb = Sandbox::new();
    sb.file("common/frag.toml", "[defaults]\ntimeout = \"5x\"\n");
    for name in ["one", "two"] {
        sb.file(
            &format!("{name}.toml"),
            format!("include = [\"common/frag.toml\"]\n[jobs.{name}]\ncommand = \"true\"\n"),
        );
    }
    let run = sb.exe(&["lint", "--format", "github", "."]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert_eq!(
        run.stdout
            .matches("::error file=./common/frag.toml")
            .count(),
        1,
        "{}",
        run.stdout
    );
    let human = sb.exe(&["lint", "."]);
    human.assert_stdout_has("2 files: 1 error, 0 warnings");
}

#[test]
fn a_problem_in_the_selected_profile_is_said_once_where_it_is_written() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"echo\"\n[profiles.ci]\nmax_paralel = 3\n[profiles.ci.jobs.a]\ntimeout = \"5x\"\n",
    );
    let run = sb.exe(&["plan", "p.toml", "--profile", "ci"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        run.stderr.matches("max_paralel").count(),
        2,
        "message and source line: {}",
        run.stderr
    );
    run.assert_stderr_has("unknown key `max_paralel` in `profiles.ci`");
    run.assert_stderr_lacks("at the top level");
    run.assert_stderr_has("`profiles.ci.jobs.a.timeout`: invalid duration");
    run.assert_stderr_lacks("× `jobs.a.timeout`");
}
