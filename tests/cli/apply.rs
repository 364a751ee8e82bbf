//! `exe apply` through the real binary with real `sh` jobs: ordering, failures, retries,
//! timeouts, signals, output integrity and faults.

use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox, pid_alive, signal};

fn apply(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["apply"];
    all.extend_from_slice(args);
    sb.exe(&all)
}

fn read(sb: &Sandbox, path: &str) -> String {
    std::fs::read_to_string(sb.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The single run folder under `.exe/logs`.
fn run_logs(sb: &Sandbox) -> std::path::PathBuf {
    let mut runs: Vec<_> = std::fs::read_dir(sb.path().join(".exe/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.pop().unwrap()
}

#[test]
fn runs_jobs_in_dependency_order_and_logs_their_output() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 4\n[jobs.a]\ncommand = \"echo a >> order\"\n[jobs.b]\ncommand = \"echo b >> order; echo from-b\"\nneeds = [\"a\"]\n\
         [jobs.c]\ncommand = \"echo c >> order\"\nneeds = [\"b\"]\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(read(&sb, "order"), "a\nb\nc\n");
    run.assert_stdout_has("b | from-b");
    assert_eq!(
        std::fs::read_to_string(run_logs(&sb).join("b.log")).unwrap(),
        "from-b\n"
    );
    run.assert_stderr_has("3 succeeded, 0 failed");
}

#[test]
fn no_waves_a_slow_job_does_not_hold_back_ready_ones() {
    let sb = Sandbox::new();
    // With 2 slots: slow runs 1.5 s; the chain of three 0.2 s jobs must finish meanwhile.
    sb.file(
        "p.toml",
        "max_parallel = 2\n[jobs.slow]\ncommand = \"sleep 1.5; date +%s%N > slow.end\"\n\
         [jobs.x1]\ncommand = \"sleep 0.2\"\n[jobs.x2]\ncommand = \"sleep 0.2\"\nneeds = [\"x1\"]\n\
         [jobs.x3]\ncommand = \"sleep 0.2; date +%s%N > x3.end\"\nneeds = [\"x2\"]\n",
    );
    let started = Instant::now();
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let slow: u128 = read(&sb, "slow.end").trim().parse().unwrap();
    let x3: u128 = read(&sb, "x3.end").trim().parse().unwrap();
    assert!(x3 < slow, "x3 should end before the slow job");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_failure_cancels_what_has_not_started_and_exits_1() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.bad]\ncommand = \"echo oops; exit 3\"\n[jobs.after]\ncommand = \"touch after\"\nneeds = [\"bad\"]\n[jobs.other]\ncommand = \"touch other\"\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!sb.path().join("after").exists());
    run.assert_stderr_has("bad FAILED: exit code 3");
    run.assert_stderr_has("log: ");
}

#[test]
fn continue_on_error_runs_independent_branches_and_still_fails() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.bad]\ncommand = \"exit 1\"\n[jobs.after]\ncommand = \"touch after\"\nneeds = [\"bad\"]\n[jobs.other]\ncommand = \"touch other\"\n",
    );
    let run = apply(&sb, &["--continue-on-error", "p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(sb.path().join("other").exists());
    assert!(!sb.path().join("after").exists());
    run.assert_stderr_has("upstream failed: bad");
}

/// Logs are made ahead of the jobs (`src/logs.rs`); the run folder still ends up holding
/// exactly the logs of the jobs that started, here two of six.
#[test]
fn only_jobs_that_started_leave_a_log() {
    let sb = Sandbox::new();
    let mut text =
        String::from("[jobs.bad]\ncommand = \"echo no; exit 1\"\n[jobs.ok]\ncommand = \"true\"\n");
    for i in 0..4 {
        text += &format!("[jobs.after{i}]\ncommand = \"true\"\nneeds = [\"bad\"]\n");
    }
    sb.file("p.toml", &text);
    let run = apply(
        &sb,
        &["--max-parallel", "1", "--continue-on-error", "p.toml"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let mut names: Vec<String> = std::fs::read_dir(run_logs(&sb))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["bad.log", "ok.log"]);
    assert_eq!(
        std::fs::read_to_string(run_logs(&sb).join("bad.log")).unwrap(),
        "no\n"
    );
}

#[test]
fn retries_until_success_keep_each_attempts_log() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.flaky]\ncommand = \"n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; echo try $n; [ $n -ge 2 ]\"\nretry = { max = 3, delay = \"0.1s\" }\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let logs = run_logs(&sb);
    assert_eq!(
        std::fs::read_to_string(logs.join("flaky.log")).unwrap(),
        "try 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(logs.join("flaky@2.log")).unwrap(),
        "try 2\n"
    );
    run.assert_stderr_has("retry");
}

#[test]
fn a_fractional_timeout_kills_the_whole_tree() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.t]\ncommand = \"sleep 100 & echo $! > child; sleep 100\"\ntimeout = \"0.5s\"\ntimeout_grace = \"0.5s\"\n");
    let started = Instant::now();
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    run.assert_stderr_has("t TIMEOUT: timed out after 500ms");
    assert!(
        !pid_alive(&read(&sb, "child")),
        "the background child survived the timeout"
    );
}

#[test]
fn a_job_that_ignores_term_is_killed_after_the_grace_period() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.t]\ncommand = \"trap '' TERM; sleep 100\"\ntimeout = \"0.3s\"\ntimeout_grace = \"0.5s\"\n");
    let started = Instant::now();
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The reason says why it took longer than its timeout, on the terminal and in the history.
    let why = "timed out after 300ms; still running 500ms after SIGTERM, so killed";
    run.assert_stderr_has(why);
    let show = sb.exe(&["show", "1", "--format", "json"]);
    show.assert_stdout_has(why);
    // Also when the job's first process ends on TERM and another of its processes does not.
    sb.file(
        "q.toml",
        "[jobs.t]\ncommand = \"sh -c \\\"trap '' TERM; sleep 100\\\" & sleep 100\"\n\
         timeout = \"0.3s\"\ntimeout_grace = \"0.5s\"\n",
    );
    let run = apply(&sb, &["q.toml"]);
    assert_eq!(run.code, 1);
    run.assert_stderr_has(why);
}

#[test]
fn ctrl_c_cancels_kills_every_process_and_exits_130() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 2\n[jobs.long]\ncommand = \"sleep 100 & echo $! > child; sleep 100\"\n[jobs.later]\ncommand = \"touch later\"\nneeds = [\"long\"]\n",
    );
    let child = sb.spawn(&["apply", "p.toml"]);
    sb.wait_for("child");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("CANCELLED"), "{stderr}");
    assert!(!sb.path().join("later").exists());
    assert!(
        !pid_alive(&read(&sb, "child")),
        "a process started by exe survived Ctrl-C"
    );
    // `later`'s log, made ahead, went with the run: it never started.
    assert!(run_logs(&sb).join("long.log").exists());
    assert!(!run_logs(&sb).join("later.log").exists());
    // The attempt stopped says why, as its job's transition does.
    let shown = sb.exe(&["show", "1", "--format", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    let attempt = &shown["attempts"][0];
    assert_eq!(
        (&attempt["outcome"], &attempt["reason"]),
        (&"CANCELLED".into(), &"interrupted".into())
    );
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.stubborn]\ncommand = \"trap '' TERM; touch ready; sleep 100\"\ntimeout_grace = \"60s\"\n");
    let child = sb.spawn(&["apply", "p.toml"]);
    sb.wait_for("ready");
    signal(&child, "-INT");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    signal(&child, "-INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn sigterm_is_handled_like_ctrl_c() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.long]\ncommand = \"touch ready; sleep 100\"\n",
    );
    let child = sb.spawn(&["apply", "p.toml"]);
    sb.wait_for("ready");
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn no_output_line_is_lost_even_when_the_job_exits_at_once() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.seq]\ncommand = \"seq 1 100000\"\n");
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 0);
    let log = std::fs::read_to_string(run_logs(&sb).join("seq.log")).unwrap();
    assert_eq!(log.lines().count(), 100_000);
    assert_eq!(log.lines().last(), Some("100000"));
    let shown = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("seq | "))
        .count();
    assert_eq!(shown, 100_000, "every line is shown on the terminal too");
}

#[test]
fn two_jobs_never_share_a_line() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 2\n[jobs.a]\ncommand = \"for i in $(seq 1 2000); do echo aaaaaaaaaaaaaaaaaaaa$i; done\"\n\
         [jobs.b]\ncommand = \"for i in $(seq 1 2000); do echo bbbbbbbbbbbbbbbbbbbb$i; done\"\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 0);
    for line in run.stdout.lines().filter(|l| l.contains(" | ")) {
        let ok = (line.starts_with("a | a") && !line.contains('b'))
            || (line.starts_with("b | b") && !line.contains('a'));
        assert!(ok, "mixed line: {line}");
    }
}

#[test]
fn a_grandchild_holding_stdout_does_not_hang_the_run() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.bg]\ncommand = \"(sleep 100 &) ; echo done\"\n",
    );
    let started = Instant::now();
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn faults_get_a_clear_reason_and_state() {
    let sb = Sandbox::new();
    sb.file("wd/.keep", "");
    sb.file(
        "p.toml",
        "working_dir = \"wd\"\ncontinue_on_error = true\n\
         [jobs.missing]\ncommand = \"no-such-command-xyz\"\n\
         [jobs.vanish]\ncommand = \"cd .. && rm -rf wd\"\n\
         [jobs.after]\ncommand = \"true\"\nneeds = [\"vanish\"]\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_has("missing FAILED: exit code 127");
    run.assert_stderr_has("after FAILED");
    assert!(
        run.stderr
            .contains("wd is not usable: No such file or directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_log_dir_that_is_a_file_stops_the_run_before_it_starts() {
    let sb = Sandbox::new();
    sb.file("logs-are-a-file", "x");
    sb.file(
        "p.toml",
        "log_dir = \"logs-are-a-file\"\n[jobs.a]\ncommand = \"true\"\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_stderr_has("log_dir ./logs-are-a-file is not a folder");
    assert!(
        !sb.path().join(".exe/history.db").exists(),
        "no run was recorded"
    );
}

#[test]
fn a_spawn_failure_is_a_failed_job_not_a_crash() {
    let sb = Sandbox::new();
    // One environment string over the kernel's 128 KiB limit: execve fails with E2BIG.
    sb.file(
        "p.toml",
        format!(
            "[jobs.big]\ncommand = \"true\"\nenv = {{ BIG = \"{}\" }}\n",
            "x".repeat(200_000)
        ),
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_lacks("panicked");
    run.assert_stderr_has("big FAILED");
}

#[test]
fn binary_output_is_logged_byte_exact() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.bin]\ncommand = \"head -c 100000 /dev/urandom\"\n",
    );
    let run = apply(&sb, &["--output", "quiet", "p.toml"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        std::fs::metadata(run_logs(&sb).join("bin.log"))
            .unwrap()
            .len(),
        100_000
    );
}

#[test]
fn memory_stays_flat_while_a_job_prints_a_gigabyte() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.loud]\ncommand = \"yes 0123456789abcdef | head -c 1000000000\"\n",
    );
    let mut child = sb.spawn(&["apply", "p.toml"]);
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    // Drain what exe shows so the terminal side is exercised too.
    let reader =
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()).unwrap());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            peak_kib = peak_kib.max(line.split_whitespace().nth(1).unwrap().parse().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reader.join().unwrap() > 1_000_000_000,
        "every byte is shown, with prefixes"
    );
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB while the job printed 1 GB"
    );
}

#[test]
fn skip_and_only_select_jobs() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"touch a\"\n[jobs.b]\ncommand = \"touch b\"\nneeds = [\"a\"]\n[jobs.c]\ncommand = \"touch c\"\n",
    );
    let run = apply(&sb, &["--skip", "a,c", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !sb.path().join("a").exists()
            && sb.path().join("b").exists()
            && !sb.path().join("c").exists()
    );
    std::fs::remove_file(sb.path().join("b")).unwrap();
    std::fs::remove_dir_all(sb.path().join(".exe")).unwrap();
    let run = apply(&sb, &["--only", "c", "p.toml"]);
    assert_eq!(run.code, 0);
    assert!(sb.path().join("c").exists() && !sb.path().join("b").exists());
    let run = apply(&sb, &["--skip", "nope", "p.toml"]);
    assert_eq!(run.code, 2);
}

#[test]
fn checks_run_before_and_after() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "continue_on_error = true\n\
         [jobs.pre]\ncommand = \"touch ran-pre\"\npre_checks = [{ check = \"file_exists\", path = \"missing.txt\" }]\n\
         [jobs.post]\ncommand = \"echo 'ORA-00942: table or view does not exist' > out.log\"\npost_checks = [{ check = \"log_clean\", path = \"out.log\" }]\n\
         [jobs.good]\ncommand = \"echo fine > good.log\"\npost_checks = [{ check = \"file_not_empty\", path = \"good.log\" }, { check = \"command\", run = \"grep -q fine good.log\" }]\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        !sb.path().join("ran-pre").exists(),
        "a failed pre-check must stop the command"
    );
    run.assert_stderr_has("pre FAILED: pre-check failed: ");
    run.assert_stderr_lacks("pre-check failed: pre-check failed");
    run.assert_stderr_has("post FAILED: post-check failed: ");
    run.assert_stderr_lacks("post-check failed: post-check failed");
    let attempts =
        crate::history::json(&sb.exe(&["show", "1", "--format", "json"]))["attempts"].clone();
    let pre = attempts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["job_id"] == "pre")
        .unwrap();
    assert!(
        pre["reason"]
            .as_str()
            .unwrap()
            .starts_with("pre-check failed: ")
            && !pre["reason"]
                .as_str()
                .unwrap()
                .contains("failed: pre-check"),
        "{pre}"
    );
    assert!(
        run.stderr.contains("good     SUCCESS") || run.stderr.contains("good SUCCESS"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_pre_check_that_outlasts_the_timeout_fails_the_job_without_a_retry() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.hang]\ncommand = \"touch ran\"\ntimeout = \"0.5s\"\nretry = { max = 2, delay = \"0s\" }\n\
         pre_checks = [{ check = \"command\", run = \"sleep 30\" }]\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_has("hang FAILED: pre-check failed: timed out after 500ms (check `sleep 30`");
    assert!(!sb.path().join("ran").exists());
    let shown = crate::history::json(&sb.exe(&["show", "1", "--format", "json"]));
    assert_eq!(shown["attempts"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["jobs"][0]["state"], "FAILED");
}

#[test]
fn a_strict_security_policy_refuses_to_run() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "security_policy = \"strict\"\n[jobs.a]\ncommand = \"sudo touch x\"\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 2);
    run.assert_stderr_has("exe::security::sudo");
}

#[test]
fn the_environment_is_layered_and_env_flags_keep_commas() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "inherit_env = [\"PATH\"]\n[env]\nA = \"top\"\nB = \"top\"\n[jobs.e]\ncommand = \"echo $A-$B-$C-${HOME:-nohome} > env.txt\"\nenv = { B = \"job\", C = \"job\" }\n",
    );
    let run = apply(&sb, &["--env", "C=a,b", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(read(&sb, "env.txt"), "top-job-a,b-nohome\n");
}

#[test]
fn grouped_output_shows_each_job_whole_and_quiet_shows_none() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 2\n[jobs.a]\ncommand = \"echo a1; sleep 0.3; echo a2\"\n[jobs.b]\ncommand = \"echo b1; sleep 0.1; echo b2\"\n",
    );
    let run = apply(&sb, &["--output", "grouped", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let a = run.stdout.find("── a ──\na | a1\na | a2\n");
    let b = run.stdout.find("── b ──\nb | b1\nb | b2\n");
    assert!(
        a.is_some() && b.is_some(),
        "each job's lines together:\n{}",
        run.stdout
    );
    let run = apply(&sb, &["--output", "quiet", "p.toml"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "", "no job output in quiet mode");
}

#[test]
fn dry_run_shows_the_plan_and_runs_nothing() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"touch ran\"\n[jobs.b]\ncommand = \"true\"\n",
    );
    let run = apply(&sb, &["--dry-run", "--skip", "b", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stdout_has("Plan: 1 to run, 1 skipped.");
    assert!(!sb.path().join("ran").exists());
    assert!(!sb.path().join(".exe").exists(), "a dry run writes nothing");
}

/// One of exe's output streams.
#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Runs exe with `closed` a pipe nobody reads: every write to it fails with EPIPE. Returns
/// the exit code and what the other stream got.
fn with_a_closed(sb: &Sandbox, closed: Stream, args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_exe"));
    cmd.args(args).current_dir(sb.path()).env("NO_COLOR", "1");
    let piped = std::process::Stdio::piped;
    let output = match closed {
        Stream::Stdout => cmd.stdout(writer).stderr(piped()).output(),
        Stream::Stderr => cmd.stderr(writer).stdout(piped()).output(),
    }
    .unwrap();
    let other = match closed {
        Stream::Stdout => output.stderr,
        Stream::Stderr => output.stdout,
    };
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&other).into_owned(),
    )
}

#[test]
fn a_reader_that_stops_reading_ends_exe_quietly_with_its_own_exit_code() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.ok]\ncommand = \"echo fine\"\n[jobs.bad]\ncommand = \"exit 3\"\n",
    );
    // Progress, summary and diagnostics go to stderr: without it the run still runs, is
    // recorded, and exits with its own code (1: a job failed), not a panic's 101.
    let (code, _) = with_a_closed(&sb, Stream::Stderr, &["apply", "p.toml"]);
    assert_eq!(code, 1);
    let runs = crate::history::json(&sb.exe(&["runs", "--format", "json"]));
    assert_eq!(runs[0]["state"], "FAILED", "{runs}");
    // `exe show 1 --format json | head -c 1`: the rest is not wanted; no message, exit 0.
    for args in [
        &["show", "1", "--format", "json"][..],
        &["runs"],
        &["plan", "p.toml"],
    ] {
        let (code, stderr) = with_a_closed(&sb, Stream::Stdout, args);
        assert_eq!((code, stderr.as_str()), (0, ""), "{args:?}");
    }
}

#[test]
fn a_hangup_cancels_like_ctrl_c_unless_exe_runs_under_nohup() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.long]\ncommand = \"sleep 100 & echo $! > child; sleep 100\"\n",
    );
    // SIGHUP at its default, whatever this test inherited: run under `nohup` (as a CI job
    // may be), it would be ignored, which is the other half of this test.
    let child = std::process::Command::new("env")
        .args([
            "--default-signal=HUP",
            env!("CARGO_BIN_EXE_exe"),
            "apply",
            "p.toml",
        ])
        .current_dir(sb.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    sb.wait_for("child");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "-HUP");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        !pid_alive(&read(&sb, "child")),
        "a job outlived the terminal"
    );
    // Under nohup, SIGHUP stays ignored: the run outlives the terminal, as asked.
    sb.file(
        "q.toml",
        "[jobs.short]\ncommand = \"touch started; sleep 0.5; touch finished\"\n",
    );
    let nohup = std::process::Command::new("nohup")
        .args([env!("CARGO_BIN_EXE_exe"), "apply", "q.toml"])
        .current_dir(sb.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sb.wait_for("started");
    signal(&nohup, "-HUP");
    let out = nohup.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(sb.path().join("finished").exists());
}

#[test]
fn a_retry_waiting_for_the_busy_slot_does_not_spin() {
    let sb = Sandbox::new();
    // One slot (the default). `flaky` fails at once, and its retry is due after 0.1 s, while
    // `busy` holds the slot for a second: exe must sleep until the slot frees, not poll.
    sb.file(
        "p.toml",
        "[jobs.flaky]\ncommand = \"test -e tried; r=$?; touch tried; exit $r\"\n\
         retry = { max = 1, delay = \"0.1s\" }\n\
         [jobs.busy]\ncommand = \"sleep 1\"\n",
    );
    let run = sb.sh("\"$0\" apply -q p.toml; code=$?; times; exit $code");
    assert_eq!(run.code, 0, "{}", run.stderr);
    // `times` prints the shell's user and system time, then its children's: exe and its jobs.
    let seconds = |field: &str| -> f64 {
        let (minutes, rest) = field.split_once('m').expect("MmS.SSs");
        minutes.parse::<f64>().unwrap() * 60.0 + rest.trim_end_matches('s').parse::<f64>().unwrap()
    };
    let children = run.stdout.lines().nth(1).expect("two lines from times");
    let cpu: f64 = children.split_whitespace().map(seconds).sum();
    assert!(
        cpu < 0.5,
        "exe and its jobs used {cpu:.2} s of CPU in a run of about 1.1 s"
    );
}

#[test]
fn a_new_history_neither_appends_to_nor_moves_an_old_runs_logs() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo {{ env.H }}\"\n");
    let with = |h: &str, db: &str| sb.sh(&format!("H={h} \"$0\" apply p.toml --db {db}"));
    assert_eq!(with("first", "a.db").code, 0);
    // Run 1 of another history: its logs would go to the same folder.
    let other = with("second", "b.db");
    assert_eq!(other.code, 0, "{}", other.stderr);
    other.assert_stderr_has("a log folder named 1 is there already (a run of another history); this run's logs go to folders named 1.2");
    // Each history finds its own run's log where it recorded it.
    for (db, said) in [("a.db", "first\n"), ("b.db", "second\n")] {
        let logs = sb.exe(&["logs", "1", "a", "--db", db]);
        assert_eq!(logs.stdout, said, "{db}: {}", logs.stderr);
    }
    assert_eq!(read(&sb, ".exe/logs/1/a.log"), "first\n");
    assert_eq!(read(&sb, ".exe/logs/1.2/a.log"), "second\n");
}

#[test]
fn runs_of_one_id_in_several_histories_at_once_each_get_a_log_folder() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"echo $1-{{ env.H }}; sleep 0.3\"\n",
    );
    let started: Vec<_> = (0..4)
        .map(|i| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_exe"));
            cmd.args(["apply", "-q", "p.toml", "--db", &format!("h{i}.db")])
                .env("H", i.to_string())
                .current_dir(sb.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    for mut child in started {
        assert!(child.wait().unwrap().success());
    }
    // Each history's run 1 reads its own output, alone, where it recorded it.
    for i in 0..4 {
        let logs = sb.exe(&["logs", "1", "a", "--db", &format!("h{i}.db")]);
        assert_eq!(logs.stdout, format!("-{i}\n"), "h{i}.db: {}", logs.stderr);
    }
}

#[test]
fn a_retry_is_shown_after_the_failure_it_retries() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.r]\ncommand = \"exit 75\"\nretry = { max = 1 }\n",
    );
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let at = |text: &str| {
        run.stderr
            .find(text)
            .unwrap_or_else(|| panic!("{text:?} missing from {}", run.stderr))
    };
    assert!(
        at("r FAILED: exit code 75") < at("r retry 1 of 1")
            && at("r retry 1 of 1") < at("r attempt 2"),
        "{}",
        run.stderr
    );
}

#[test]
fn dry_run_shows_the_failure_policy_asked_for_and_refuses_a_resume() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    let plain = apply(&sb, &["p.toml", "--dry-run"]);
    assert!(
        plain.stdout.contains("On failure:   start no more jobs"),
        "{}",
        plain.stdout
    );
    let keep = apply(&sb, &["p.toml", "--dry-run", "--continue-on-error"]);
    assert!(
        keep.stdout
            .contains("On failure:   keep running the jobs that do not depend on it"),
        "{}",
        keep.stdout
    );
    let resume = apply(&sb, &["p.toml", "--dry-run", "--resume", "1"]);
    assert_eq!(resume.code, 2, "{}", resume.stderr);
    resume.assert_stderr_has("--dry-run does not show a resume");
}

#[test]
fn secrets_in_check_failures_are_masked_on_screen_and_in_the_history() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[env]\nDB_PASSWORD = \"hunter2xyz\"\n\
         [jobs.a]\ncommand = \"true\"\npre_checks = [{ check = \"file_exists\", path = \"/tmp/${DB_PASSWORD}/f\" }]\n\
         [jobs.b]\ncommand = \"true\"\npost_checks = [{ check = \"command\", run = \"test hunter2xyz = nope\" }]\n",
    );
    let run = sb.exe(&["apply", "--continue-on-error", "p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_has("/tmp/***/f does not exist");
    run.assert_stderr_has("check `test *** = nope` exited with 1");
    let shown = sb.exe(&["show", "1", "--format", "json"]);
    assert!(shown.stdout.contains("/tmp/***/f"), "{}", shown.stdout);
    for out in [&run.stdout, &run.stderr, &shown.stdout] {
        assert!(!out.contains("hunter2xyz"), "{out}");
    }
}

#[test]
fn verbose_flags_show_what_exe_does() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    let info = sb.exe(&["-v", "apply", "-q", "p.toml"]);
    assert_eq!(info.code, 0, "{}", info.stderr);
    info.assert_stderr_has("pipeline loaded and validated file=p.toml files=1 jobs=1");
    info.assert_stderr_has("run recorded run=1 pipeline=p to_run=1");
    info.assert_stderr_has("run finished run=1 state=\"SUCCESS\" exit=0");
    info.assert_stderr_lacks("DEBUG");
    let debug = sb.exe(&["-vv", "apply", "-q", "p.toml"]);
    debug.assert_stderr_has("attempt ended job=a attempt=1 state=\"SUCCESS\"");
    debug.assert_stderr_lacks("TRACE");
    let trace = sb.exe(&["-vvv", "apply", "-q", "p.toml"]);
    trace.assert_stderr_has("journaled records=");
    trace.assert_stderr_has("folded records=");
}

#[test]
fn a_low_open_files_limit_is_raised_so_many_jobs_can_run_at_once() {
    let sb = Sandbox::new();
    let mut text = String::from("max_parallel = 60\n");
    for i in 0..60 {
        text += &format!("[jobs.j{i}]\ncommand = \"sleep 0.3\"\n");
    }
    sb.file("p.toml", text);
    // 40 descriptors cannot hold 60 running jobs (a pidfd, a log and pipes each).
    let run = sb.sh("ulimit -Sn 40 && \"$0\" apply -q p.toml");
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn a_job_past_the_file_size_limit_gets_sigxfsz_as_without_exe() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.big]\ncommand = \"head -c 5000000 /dev/zero > big\"\n",
    );
    // exe itself turns the signal into a write error; its jobs keep the default action.
    let run = sb.sh("ulimit -f 2000 && exec \"$0\" apply p.toml");
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_has("big FAILED: exit code 153");
}

#[test]
fn a_skipped_job_in_a_chain_keeps_what_follows_it_after_what_precedes_it() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 4\n\
         [jobs.build]\ncommand = \"sleep 0.3; echo built > artifact\"\n\
         [jobs.test]\ncommand = \"true\"\nneeds = [\"build\"]\nwhen = \"{{ vars.test | default(false) }}\"\n\
         [jobs.deploy]\ncommand = \"cat artifact\"\nneeds = [\"test\"]\n",
    );
    let run = sb.exe(&["apply", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stdout_has("deploy | built");
    std::fs::remove_file(sb.path().join("artifact")).unwrap();
    let skipped = sb.exe(&[
        "apply",
        "p.toml",
        "--set",
        "vars.test=true",
        "--skip",
        "test",
    ]);
    assert_eq!(skipped.code, 0, "{}", skipped.stderr);
}

#[test]
fn a_toml_file_with_crlf_line_endings_runs_its_multi_line_commands() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\r\ncommand = \"\"\"\r\nset -e\r\necho one\r\n\"\"\"\r\n",
    );
    let plan = sb.exe(&["plan", "--format", "json", "p.toml"]);
    assert!(
        plan.stdout.contains(r#""command": "set -e\necho one\n""#),
        "{}",
        plan.stdout
    );
    let run = sb.exe(&["apply", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stdout_has("a | one");
}

#[test]
fn the_status_line_fits_the_terminal_it_is_drawn_on() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "max_parallel = 3\n\
         [jobs.extract_customers]\ncommand = \"sleep 0.5\"\n\
         [jobs.extract_orders]\ncommand = \"sleep 0.5\"\n\
         [jobs.extract_products]\ncommand = \"sleep 0.5\"\n",
    );
    // `script` gives exe a terminal, 40 columns wide.
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("stty cols 40; '{}' apply p.toml", env!("CARGO_BIN_EXE_exe")),
        "/dev/null",
    ]);
    let run = sb.run(cmd, None);
    assert_eq!(run.code, 0, "{}", run.stdout);
    // Each drawing of the status line erases the line, then writes it.
    let drawn: Vec<&str> = (run.stdout.split("\x1b[2K").skip(1))
        .map(|rest| rest.split(['\r', '\n']).next().unwrap_or_default())
        .filter(|line| line.contains("done ·"))
        .collect();
    assert!(!drawn.is_empty(), "{:?}", run.stdout);
    for line in drawn {
        assert!(line.chars().count() < 40, "{line:?}");
    }
    // With exe's own log on, whose lines would run into it, there is no status line.
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("'{}' -vv apply p.toml", env!("CARGO_BIN_EXE_exe")),
        "/dev/null",
    ]);
    let logged = sb.run(cmd, None);
    assert_eq!(logged.code, 0, "{}", logged.stdout);
    logged.assert_stdout_has("DEBUG");
    logged.assert_stdout_has("extract_orders started");
    logged.assert_stdout_lacks("done ·");
}

#[test]
fn a_plain_command_runs_what_sh_would_run_from_a_relative_path_entry() {
    let sb = Sandbox::new();
    sb.file("tools/date", "#!/bin/sh\necho wrapped date\n");
    std::fs::set_permissions(
        sb.path().join("tools/date"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sb.file(
        "p.toml",
        "[env]\nPATH = \"tools:/usr/bin:/bin\"\n\
         [jobs.plain]\ncommand = \"date\"\n[jobs.shell]\ncommand = \"date;\"\n\
         [jobs.odd]\ncommand = \"env\"\nenv = { PATH = \"/usr/bin:/bin\", \"my-var\" = \"z\" }\n",
    );
    let run = sb.exe(&["apply", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stdout_has("plain | wrapped date");
    run.assert_stdout_has("shell | wrapped date");
    // What sh leaves out of the environment, a plain command does not get either.
    run.assert_stdout_lacks("my-var");
}

/// Whether process `pid` still runs (a zombie has ended).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or_default().trim_start();
        !state.starts_with(['Z', 'X'])
    })
}

#[test]
fn processes_a_job_moved_to_a_group_of_their_own_do_not_outlive_it() {
    let sb = Sandbox::new();
    // GNU timeout puts itself and its command in a group of their own: a signal to the
    // job's group misses them.
    sb.file(
        "p.toml",
        "[jobs.timed]\ncommand = \"timeout 100 sh -c 'echo $$ > timed.pid; exec sleep 100'\"\n\
         timeout = \"1s\"\ntimeout_grace = \"1s\"\n\
         [jobs.left]\ncommand = \"timeout 100 sh -c 'echo $$ > left.pid; exec sleep 100' & sleep 0.3\"\n",
    );
    let run = sb.exe(&["apply", "--continue-on-error", "p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_has("a job left it running in a group of its own");
    for name in ["timed.pid", "left.pid"] {
        let pid = std::fs::read_to_string(sb.path().join(name)).unwrap();
        assert!(!running(pid.trim()), "{name}: {pid} outlived the run");
    }
}

#[test]
fn a_group_of_its_own_that_ended_before_the_run_is_only_reaped() {
    let sb = Sandbox::new();
    // `timeout` makes a group of its own, and its `true` ends before the job does.
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"timeout 100 true & sleep 0.3\"\n",
    );
    let run = sb.exe(&["apply", "p.toml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.assert_stderr_lacks("group of its own");
}

#[test]
fn a_job_bigger_than_the_machine_is_refused_by_apply_and_flagged_by_plan() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"true\"\nresources = { cpu = 100000 }\n",
    );
    let plan = sb.exe(&["plan", "p.toml"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    plan.assert_stderr_has("job `a` needs 100000 CPUs; this machine has");
    plan.assert_stderr_has("`exe apply` on this machine refuses to start the run");
    let run = apply(&sb, &["p.toml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_stderr_has("exe::run::too_big");
    // Skipped, it asks for nothing: the rest of the pipeline runs here.
    sb.file(
        "q.toml",
        "[jobs.a]\ncommand = \"true\"\n[jobs.big]\ncommand = \"true\"\nresources = { cpu = 100000 }\n",
    );
    for flags in [&["--skip", "big"][..], &["--only", "a"]] {
        let plan = sb.exe(&[&["plan", "q.toml"][..], flags].concat());
        plan.assert_stderr_lacks("too_big");
        let run = apply(&sb, &[&["q.toml"][..], flags].concat());
        assert_eq!(run.code, 0, "{flags:?}: {}", run.stderr);
    }
}

#[test]
fn a_working_dir_of_dot_shows_plain_log_paths() {
    let sb = Sandbox::new();
    // The older tool's files often say `"working_dir": "."`.
    sb.file(
        "p.json",
        "{\"jobs\": [{\"id\": \"a\", \"command\": \"exit 1\"}], \"working_dir\": \".\"}",
    );
    let run = apply(&sb, &["p.json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_has("log: ./.exe/logs/1/a.log");
    run.assert_stderr_lacks("././");
}
