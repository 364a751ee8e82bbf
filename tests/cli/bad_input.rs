//! Hostile and broken input: each gets a clear diagnostic and an exit code, never a panic or a hang.

use crate::harness::{Run, Sandbox};

fn assert_clean_failure(run: &Run, code: &str) {
    run.assert_stderr_lacks("panicked");
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains(code),
        "expected {code} in:\n{}",
        run.stdout
    );
}

#[test]
fn empty_files() {
    let sb = Sandbox::new();
    for name in ["e.toml", "e.yaml", "e.json"] {
        sb.file(name, "");
        let run = sb.exe(&["lint", "--format", "json", name]);
        assert!(!run.stderr.contains("panicked"));
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
    }
    // Comments only: as empty in TOML as in YAML.
    for name in ["c.toml", "c.yaml"] {
        sb.file(name, "# nothing yet\n\n");
        let run = sb.exe(&["lint", name]);
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
        assert!(
            run.stdout.contains(&format!("{name}: the file is empty\n")),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn binary_and_non_utf8_files() {
    let sb = Sandbox::new();
    sb.file("bin.toml", [0x7f, b'E', b'L', b'F', 0, 1, 2, 3]);
    assert_clean_failure(&sb.exe(&["lint", "bin.toml"]), "not a text file");
    sb.file("latin1.yaml", b"jobs:\n  a:\n    command: caf\xe9\n");
    assert_clean_failure(&sb.exe(&["lint", "latin1.yaml"]), "not valid UTF-8");
}

#[test]
fn a_50_mb_file_is_refused_before_parsing() {
    let sb = Sandbox::new();
    let line = "# padding padding padding padding padding padding padding padding padding\n";
    sb.file("big.toml", line.repeat(50 * 1024 * 1024 / line.len()));
    assert_clean_failure(
        &sb.exe(&["lint", "big.toml"]),
        "pipeline files may be at most",
    );
}

#[test]
fn yaml_alias_bomb() {
    let sb = Sandbox::new();
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("jobs: {}\n");
    sb.file("bomb.yaml", text);
    assert_clean_failure(&sb.exe(&["lint", "bomb.yaml"]), "alias bomb");
}

#[test]
fn deep_nesting_in_every_format() {
    let sb = Sandbox::new();
    let depth = 200_000;
    sb.file(
        "deep.json",
        format!("{{\"jobs\": {}{}}}", "[".repeat(depth), "]".repeat(depth)),
    );
    sb.file(
        "deep.toml",
        format!("jobs = {}{}\n", "[".repeat(depth), "]".repeat(depth)),
    );
    sb.file(
        "deep.yaml",
        format!("jobs: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
    );
    for name in ["deep.json", "deep.toml", "deep.yaml"] {
        assert_clean_failure(&sb.exe(&["lint", name]), "nesting deeper than");
    }
    // The same limit in every format: 64 levels, the file's own map included.
    for (arrays, code) in [(62, 0), (63, 1)] {
        let (open, close) = ("[".repeat(arrays), "]".repeat(arrays));
        sb.file("at.json", format!("{{\"vars\": {{\"x\": {open}{close}}}, \"jobs\": {{\"a\": {{\"command\": \"true\"}}}}}}"));
        sb.file(
            "at.toml",
            format!("[vars]\nx = {open}{close}\n[jobs.a]\ncommand = \"true\"\n"),
        );
        sb.file(
            "at.yaml",
            format!("vars:\n  x: {open}{close}\njobs:\n  a:\n    command: \"true\"\n"),
        );
        for name in ["at.json", "at.toml", "at.yaml"] {
            assert_eq!(
                sb.exe(&["lint", "-q", name]).code,
                code,
                "{name} with {arrays} arrays"
            );
        }
    }
}

#[test]
fn unreadable_paths() {
    let sb = Sandbox::new();
    std::os::unix::fs::symlink("nowhere.toml", sb.path().join("dangling.toml")).unwrap();
    assert_clean_failure(
        &sb.exe(&["lint", "dangling.toml"]),
        "exe::config::unreadable",
    );
    std::fs::create_dir(sb.path().join("notes.txt.d")).unwrap();
    sb.file("pipeline.txt", "jobs = {}");
    assert_clean_failure(
        &sb.exe(&["lint", "pipeline.txt"]),
        "exe::config::unknown_format",
    );
}

#[test]
fn symlink_loops_in_folders_are_reported_not_followed_forever() {
    let sb = Sandbox::new();
    sb.file("pipes/ok.toml", "[jobs.a]\ncommand = \"true\"\n");
    std::os::unix::fs::symlink("..", sb.path().join("pipes/up")).unwrap();
    let run = sb.exe(&["lint", "--format", "json", "pipes"]);
    assert!(!run.stderr.contains("panicked"));
    run.assert_stdout_has("exe::lint::symlink_loop");
    assert_eq!(run.code, 0, "a loop is a warning: {}", run.stdout);
}

#[test]
fn a_folder_with_thousands_of_files() {
    let sb = Sandbox::new();
    for i in 0..3000 {
        let text = if i % 3 == 0 {
            format!("[jobs.j{i}]\ncommand = \"true\"\n")
        } else {
            format!("other = {i}\n")
        };
        sb.file(&format!("many/f{i}.toml"), text);
    }
    let run = sb.exe(&["lint", "many"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(
        run.stdout.ends_with("1000 files: 0 errors, 0 warnings\n"),
        "{}",
        run.stdout
    );
}

#[test]
fn include_cycles_show_the_chain() {
    let sb = Sandbox::new();
    sb.file(
        "a.toml",
        "include = [\"b.toml\"]\n[jobs.a]\ncommand = \"true\"\n",
    );
    sb.file("b.toml", "include = [\"a.toml\"]\n");
    let run = sb.exe(&["lint", "a.toml"]);
    assert_clean_failure(&run, "include cycle: a.toml -> b.toml -> ");
    insta::assert_snapshot!(
        "include_cycle",
        run.stdout
            .replace(&sb.path().display().to_string(), "[tmp]")
    );
}

#[test]
fn missing_include() {
    let sb = Sandbox::new();
    sb.file(
        "a.toml",
        "include = [\"common/nope.toml\"]\n[jobs.a]\ncommand = \"true\"\n",
    );
    assert_clean_failure(
        &sb.exe(&["lint", "a.toml"]),
        "exe::config::include_not_found",
    );
}

#[test]
fn plan_apply_and_watch_say_that_standard_input_is_for_lint() {
    let sb = Sandbox::new();
    let pipeline = b"[jobs.a]\ncommand = \"true\"\n";
    for command in ["plan", "apply", "watch"] {
        let run = sb.exe_with(&[command, "-"], Some(pipeline));
        assert_eq!(run.code, 2, "{command}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("read a pipeline file, not standard input")
                && run.stderr.contains("`exe lint -`"),
            "{command}: {}",
            run.stderr
        );
    }
    assert_eq!(sb.exe_with(&["lint", "-"], Some(pipeline)).code, 0);
}

#[test]
fn a_missing_path_or_a_folder_is_said_to_be_one_not_a_format_problem() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path().join("inc")).unwrap();
    let lint = sb.exe(&["lint", "nosuchdir/"]);
    assert_eq!(lint.code, 1);
    assert!(
        lint.stdout.contains("No such file or directory")
            || lint.stderr.contains("No such file or directory"),
        "{}{}",
        lint.stdout,
        lint.stderr
    );
    let plan = sb.exe(&["plan", "inc"]);
    assert_eq!(plan.code, 2);
    plan.assert_stderr_has("cannot read inc: it is a directory");
    plan.assert_stderr_lacks("cannot tell the format");
}

#[test]
fn a_working_dir_that_is_a_file_and_a_stray_stdin_filename_are_named_for_what_they_are() {
    let sb = Sandbox::new();
    sb.file("notes.txt", "x");
    sb.file(
        "p.toml",
        "working_dir = \"notes.txt\"\n[jobs.a]\ncommand = \"true\"\n",
    );
    let lint = sb.exe(&["lint", "p.toml"]);
    assert_eq!(lint.code, 1);
    assert!(
        lint.stdout
            .contains("working_dir ./notes.txt is not a folder"),
        "{}",
        lint.stdout
    );
    let stray = sb.exe(&["lint", "--stdin-filename", "x.toml"]);
    assert_eq!(stray.code, 2, "{}", stray.stderr);
    stray.assert_stderr_has("--stdin-filename names standard input, and no `-` reads it");
}

#[test]
fn durations_past_a_hundred_years_are_errors_not_panics() {
    let sb = Sandbox::new();
    for (value, shown) in [
        ("1e19", "10000000000000000000"),
        ("4000000000", "4000000000"),
        ("\"5000000h\"", "5000000h"),
    ] {
        sb.file(
            "p.toml",
            format!("[jobs.a]\ncommand = \"true\"\ntimeout = {value}\n"),
        );
        let lint = sb.exe(&["lint", "p.toml"]);
        assert_eq!(lint.code, 1, "{value}: {}", lint.stdout);
        lint.assert_stdout_has(&format!("invalid duration `{shown}`: at most 100 years"));
        let apply = sb.exe(&["apply", "p.toml"]);
        assert_eq!(apply.code, 2, "{value}: {}", apply.stderr);
    }
    let watch = sb.exe(&["watch", "p.toml", "--debounce", "1e19"]);
    assert_eq!(watch.code, 2, "{}", watch.stderr);
    watch.assert_stderr_has("at most 100 years");
}
