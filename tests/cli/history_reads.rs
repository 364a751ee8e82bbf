//! Reading the history through the real binary: what `runs`, `show`, `logs` and `stats` print,
//! and how they treat values and databases they cannot read as asked.

use crate::harness::Sandbox;
use crate::history::json;
use crate::history_faults::{one_run_as_root, share_read_only};

#[test]
fn stats_keep_apart_jobs_of_different_pipelines_with_one_id() {
    let sb = Sandbox::new();
    sb.file("p1.toml", "name = \"p1\"\n[jobs.a]\ncommand = \"false\"\n");
    sb.file("p3.toml", "name = \"p3\"\n[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p1.toml"]).code, 1);
    for _ in 0..2 {
        assert_eq!(sb.exe(&["apply", "-q", "p3.toml"]).code, 0);
    }
    let stats = sb.exe(&["stats", "--format", "json"]);
    let rows: Vec<(String, String, u64, u64)> = json(&stats)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["pipeline"].as_str().unwrap().to_owned(),
                r["job"].as_str().unwrap().to_owned(),
                r["runs"].as_u64().unwrap(),
                r["failed"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("p1".to_owned(), "a".to_owned(), 1, 1),
            ("p3".to_owned(), "a".to_owned(), 2, 0)
        ]
    );
    let text = sb.exe(&["stats"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let lines: Vec<Vec<&str>> = text
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().take(4).collect())
        .collect();
    assert_eq!(
        lines,
        [
            ["PIPELINE", "JOB", "RUNS", "FAILED"],
            ["p1", "a", "1", "100%"],
            ["p3", "a", "2", "0%"]
        ],
        "{}",
        text.stdout
    );
}

#[test]
fn a_bare_number_or_a_huge_age_is_not_a_time() {
    let sb = Sandbox::new();
    for (args, said, hint) in [
        (
            &["runs", "--since", "2026"][..],
            "`--since 2026`: a bare number is not a time",
            "write `2026-01-01` for a date, or `2026s` for an age",
        ),
        (
            &["runs", "--until", "1795785597"],
            "`--until 1795785597`: a bare number is not a time",
            "`1795785597s` for an age",
        ),
        (
            &["runs", "--since", "99999d"],
            "`--since 99999d`: the age is too large: at most 100 years (`36500d`)",
            "write its date",
        ),
    ] {
        let refused = sb.exe(args);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has(said);
        refused.assert_stderr_has(hint);
        refused.assert_stdout_lacks("No runs");
    }
    // An age with its unit is taken as it was.
    let listed = sb.exe(&["runs", "--since", "2026s", "--format", "json"]);
    assert_eq!((listed.code, listed.stdout.as_str()), (0, "[]\n"));
}

#[test]
fn an_empty_list_says_so_on_stderr_unless_quiet() {
    let sb = Sandbox::new();
    sb.file("p.toml", "name = \"p\"\n[jobs.a]\ncommand = \"true\"\n");
    for (args, message) in [
        (
            &["runs"][..],
            "No runs recorded yet (.exe/history.db does not exist).\n",
        ),
        (
            &["stats"],
            "No runs recorded yet (.exe/history.db does not exist).\n",
        ),
    ] {
        let said = sb.exe(args);
        assert_eq!(
            (said.code, said.stdout.as_str(), said.stderr.as_str()),
            (0, "", message),
            "{args:?}"
        );
    }
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    for (args, message) in [
        (&["runs", "--name", "other"][..], "No runs match.\n"),
        (
            &["stats", "--name", "other"],
            "No finished runs of `other` to look at.\n",
        ),
    ] {
        let said = sb.exe(args);
        assert_eq!(
            (said.code, said.stdout.as_str(), said.stderr.as_str()),
            (0, "", message),
            "{args:?}"
        );
        let mut quiet = args.to_vec();
        quiet.push("-q");
        let silent = sb.exe(&quiet);
        assert_eq!(
            (silent.code, silent.stdout.as_str(), silent.stderr.as_str()),
            (0, "", ""),
            "{quiet:?}"
        );
    }
}

#[test]
fn logs_of_a_job_not_started_yet_wait_with_follow_and_say_so_without() {
    let sb = Sandbox::new();
    // `later` waits for `gate`, which holds the run until the test says go; it fails its
    // first attempt and succeeds in its second.
    sb.file(
        "p.toml",
        "[jobs.gate]\ncommand = \"touch ready; while [ ! -e go ]; do sleep 0.05; done\"\n\
         [jobs.later]\n\
         command = \"echo try >> tries; n=$(wc -l < tries); echo attempt $n; test $n -ge 2\"\n\
         needs = [\"gate\"]\nretry = { max = 2, delay = \"100ms\" }\n",
    );
    let mut apply = sb.spawn(&["apply", "-q", "--output", "quiet", "p.toml"]);
    sb.wait_for("ready");
    let not_yet = sb.exe(&["logs", "1", "later"]);
    let no_second = sb.exe(&["logs", "1", "later", "--attempt", "2"]);
    // Followers of attempts that have not started wait for them.
    let second = sb.spawn(&["logs", "1", "later", "--attempt", "2", "--follow"]);
    let third = sb.spawn(&["logs", "1", "later", "--attempt", "3", "--follow"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Before any assertion: a failed one must not leave the run waiting for good.
    sb.file("go", "");
    assert!(apply.wait().unwrap().success());
    assert_eq!(not_yet.code, 2, "{}", not_yet.stderr);
    not_yet.assert_stderr_has("job `later` has not started yet in run 1, which is still going");
    not_yet.assert_stderr_has("`exe logs 1 later --follow` waits for it");
    assert_eq!(no_second.code, 2, "{}", no_second.stderr);
    no_second.assert_stderr_has("job `later` has no attempt 2 in run 1 (recorded: none)");
    no_second.assert_stderr_has("--attempt 2 --follow` waits for that attempt to start");
    let second = second.wait_with_output().unwrap();
    assert_eq!(
        (
            second.status.code(),
            String::from_utf8_lossy(&second.stdout).as_ref()
        ),
        (Some(0), "attempt 2\n"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // The job succeeded in its second attempt: there will be no third.
    let third = third.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(2), "{said}");
    assert!(
        said.contains("job `later` has no attempt 3 in run 1 (recorded: 1, 2)")
            && said.contains("the job is SUCCESS and starts no more attempts"),
        "{said}"
    );
}

#[test]
fn a_database_with_a_schema_version_and_no_tables_is_damaged_not_empty() {
    let sb = Sandbox::new();
    sb.sql("nt.db", "PRAGMA user_version = 3");
    let before = std::fs::read(sb.path().join("nt.db")).unwrap();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    for args in [
        &["--db", "nt.db", "runs"][..],
        &["--db", "nt.db", "stats", "--format", "json"],
        &["--db", "nt.db", "apply", "p.toml"],
    ] {
        let refused = sb.exe(args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has(
            "the history database nt.db is damaged or not a database: it says schema version 3, \
             but has none of its tables",
        );
        refused.assert_stderr_has("move nt.db aside");
        refused.assert_stderr_lacks("no such table");
        refused.assert_stdout_lacks("[]");
    }
    assert_eq!(std::fs::read(sb.path().join("nt.db")).unwrap(), before);
}

#[test]
fn a_database_file_this_user_may_not_read_says_permission_denied() {
    use std::os::unix::fs::PermissionsExt as _;
    let (sb, nobody) = one_run_as_root();
    share_read_only(sb.path());
    std::fs::set_permissions(
        sb.path().join(".exe/history.db"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for args in [&["runs"][..], &["show", "1"], &["apply", "p.toml"]] {
        let refused = nobody.exe(&sb, args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has(
            "cannot read the history database .exe/history.db: Permission denied",
        );
        refused.assert_stderr_has("ls -l .exe/history.db");
        refused.assert_stderr_lacks("No runs recorded yet");
    }
}

#[test]
fn pipeline_names_are_escaped_and_aligned_by_their_width_in_text() {
    let sb = Sandbox::new();
    sb.file(
        "bad.toml",
        "name = \"bad\\nname\\u001b[31mRED\"\n[jobs.a]\ncommand = \"true\"\n",
    );
    sb.file("jp.toml", "name = \"日本\"\n[jobs.a]\ncommand = \"true\"\n");
    for file in ["bad.toml", "jp.toml"] {
        let applied = sb.exe(&["apply", "-q", file]);
        assert_eq!(applied.code, 0, "{}", applied.stderr);
    }
    // Where a column starts on the terminal: 日 and 本 take two columns each.
    let column = |line: &str, word: &str| -> usize {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("{word} in {line:?}"));
        line[..at]
            .chars()
            .map(|c| if matches!(c, '日' | '本') { 2 } else { 1 })
            .sum()
    };
    for args in [&["runs"][..], &["stats"]] {
        let listed = sb.exe(args);
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        assert!(!listed.stdout.contains('\u{1b}'), "{:?}", listed.stdout);
        let lines: Vec<&str> = listed
            .stdout
            .lines()
            .skip_while(|l| !l.starts_with("RUN") && !l.starts_with("PIPELINE"))
            .collect();
        assert_eq!(lines.len(), 3, "one line per row: {}", listed.stdout);
        assert!(
            lines.iter().any(|l| l.contains("bad\\nname\\u{1b}[31mRED")),
            "{}",
            listed.stdout
        );
        let (header, word) = if args[0] == "runs" {
            (lines[0], "STATE")
        } else {
            (lines[0], "JOB")
        };
        let row_word = if args[0] == "runs" { "SUCCESS" } else { "a " };
        for line in &lines[1..] {
            assert_eq!(
                column(line, row_word),
                column(header, word),
                "{}",
                listed.stdout
            );
        }
    }
    let shown = sb.exe(&["show", "1"]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown
            .stdout
            .starts_with("Run 1: bad\\nname\\u{1b}[31mRED SUCCESS\n"),
        "{}",
        shown.stdout
    );
    // A tab in a header's name or path would only look like spaces: it is escaped too.
    sb.file(
        "tab.toml",
        "name = \"X\\tZ\"\n[jobs.a]\ncommand = \"true\"\n",
    );
    assert_eq!(sb.exe(&["apply", "-q", "tab.toml"]).code, 0);
    let shown = sb.exe(&["show", "3"]);
    assert!(
        shown.stdout.starts_with("Run 3: X\\tZ SUCCESS\n"),
        "{}",
        shown.stdout
    );
    let planned = sb.exe(&["plan", "tab.toml"]);
    assert!(
        planned.stdout.starts_with("Pipeline:     X\\tZ\n"),
        "{}",
        planned.stdout
    );
}
