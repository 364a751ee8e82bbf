//! `exe watch` through the real binary: it runs in the background while the test edits
//! files, and the test reads what it printed as it goes. Waits poll for what the watch
//! prints, with a generous limit, so a loaded machine slows the tests without failing them.

use std::io::Read as _;
use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::{Sandbox, pid_alive, signal};

/// How long any one expected event may take.
const LIMIT: Duration = Duration::from_secs(20);

/// Polls until `done`, failing with `why()` after [`LIMIT`].
fn eventually(done: impl Fn() -> bool, why: impl Fn() -> String) {
    let until = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < until, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `exe watch` in the background, its stderr gathered as it comes. Dropping it stops it.
struct Watching {
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Watching {
    fn start(sb: &Sandbox, args: &[&str]) -> Self {
        let mut all = vec!["watch"];
        all.extend_from_slice(args);
        let mut child = sb.spawn(&all);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let mut out = child.stdout.take().unwrap();
        // Job output is read too, so a full pipe never blocks the watch.
        readers.push(std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        }));
        let mut err = child.stderr.take().unwrap();
        let gathered = Arc::clone(&stderr);
        readers.push(std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                gathered
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }));
        Watching {
            child: Some(child),
            stderr,
            readers,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }

    /// Waits until `needle` was printed `times` times in all.
    fn wait_for(&self, needle: &str, times: usize) {
        eventually(
            || self.count(needle) >= times,
            || {
                format!(
                    "`{needle}` was not printed {times} times:\n{}",
                    self.stderr()
                )
            },
        );
    }

    /// Waits until the watch has run `runs` times and is watching again.
    fn wait_idle(&self, runs: usize) {
        self.wait_for("(Ctrl-C to stop)", runs);
    }

    /// Ctrl-C, after `quiet` more of watching; checks it exits 130 and returns everything
    /// it printed on stderr.
    fn stop_after(mut self, quiet: Duration) -> String {
        std::thread::sleep(quiet);
        let mut child = self.child.take().unwrap();
        signal(&child, "-INT");
        let status = child.wait().unwrap();
        for reader in self.readers.drain(..) {
            reader.join().unwrap();
        }
        let stderr = self.stderr();
        assert_eq!(status.code(), Some(130), "{stderr}");
        stderr
    }
}

impl Drop for Watching {
    /// A failed test still stops the watch and its jobs: Ctrl-C, then a kill if it hangs.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal_quietly(&child);
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal_quietly(child: &Child) -> std::io::Result<std::process::ExitStatus> {
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
}

fn lines(sb: &Sandbox, name: &str) -> usize {
    std::fs::read_to_string(sb.path().join(name)).map_or(0, |t| t.lines().count())
}

/// Waits until `name` has `n` lines (a job writes one per run).
fn wait_lines(sb: &Sandbox, name: &str, n: usize) {
    eventually(
        || lines(sb, name) >= n,
        || format!("{name} never had {n} lines"),
    );
}

const COUNTER: &str =
    "[jobs.count]\ncommand = \"echo run >> runs.txt\"\ninputs = [\"src/*.txt\"]\n";

#[test]
fn a_burst_of_writes_is_one_rerun() {
    let sb = Sandbox::new();
    sb.file("p.toml", COUNTER);
    sb.file("src/a.txt", "0");
    let watch = Watching::start(&sb, &["--debounce", "300ms", "p.toml"]);
    watch.wait_idle(1);
    for i in 0..5 {
        sb.file("src/a.txt", format!("{i}"));
    }
    sb.file("src/b.txt", "b");
    watch.wait_idle(2);
    // Three debounce times more: a second rerun for the same burst would have started.
    let stderr = watch.stop_after(Duration::from_millis(900));
    assert_eq!(lines(&sb, "runs.txt"), 2, "{stderr}");
    assert_eq!(stderr.matches("change detected").count(), 1, "{stderr}");
    assert!(
        stderr.contains("change detected: src/a.txt, src/b.txt; running again"),
        "{stderr}"
    );
    assert!(
        stderr.contains("watching 2 paths (Ctrl-C to stop)"),
        "{stderr}"
    );
}

#[test]
fn a_rerun_starts_only_the_changed_jobs_and_those_that_need_them() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        r#"
[jobs.a]
command = "echo a >> runs.txt"
inputs = ["a/*"]
[jobs.b]
command = "echo b >> runs.txt"
inputs = ["b/*"]
[jobs.c]
command = "echo c >> runs.txt"
inputs = ["c/*"]
needs = ["a"]
"#,
    );
    for dir in ["a", "b", "c"] {
        sb.file(&format!("{dir}/in.txt"), "0");
    }
    let watch = Watching::start(&sb, &["p.toml"]);
    watch.wait_idle(1);
    sb.file("a/in.txt", "1");
    watch.wait_idle(2);
    let stderr = watch.stop_after(Duration::ZERO);
    let ran = std::fs::read_to_string(sb.path().join("runs.txt")).unwrap();
    assert_eq!(ran, "a\nb\nc\na\nc\n", "{stderr}");
    assert!(stderr.contains("b SKIPPED: up to date"), "{stderr}");
}

#[test]
fn a_job_writing_its_outputs_logs_and_history_never_starts_a_rerun() {
    // The case that loops go-task and watchexec: every write below lands in a watched
    // folder and matches an input glob, but is an output, in log_dir, the history or
    // ignored by .gitignore.
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        r#"
log_dir = "src/logs"
[jobs.gen]
command = "cat src/in.txt > /dev/null; date >> src/gen.txt; echo run >> runs.txt"
inputs = ["src/*"]
outputs = ["src/gen.txt"]
[jobs.note]
command = "date >> src/logs/note.txt; date >> src/scratch.tmp; mkdir -p src/logs/sub"
inputs = ["src/**"]
"#,
    );
    sb.file(".gitignore", "*.tmp\n");
    sb.file("src/in.txt", "in");
    let watch = Watching::start(&sb, &["--db", "src/history.db", "p.toml"]);
    watch.wait_idle(1);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(watch.count("change detected"), 0, "{}", watch.stderr());
    assert_eq!(lines(&sb, "runs.txt"), 1);
    // The watch is live: a real change to an input still reruns, once.
    sb.file("src/in.txt", "changed");
    watch.wait_idle(2);
    let stderr = watch.stop_after(Duration::from_millis(500));
    assert_eq!(lines(&sb, "runs.txt"), 2, "{stderr}");
    assert!(
        stderr.contains("change detected: src/in.txt; running again"),
        "{stderr}"
    );
}

/// The pids a run's job wrote, once it wrote both.
fn pids(sb: &Sandbox, run: u32) -> Vec<String> {
    let name = format!("pids-{run}");
    wait_lines(sb, &name, 2);
    std::fs::read_to_string(sb.path().join(name))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_gone(pids: &[String], what: &str) {
    eventually(
        || !pids.iter().any(|p| pid_alive(p)),
        || format!("{what}: {pids:?} still alive"),
    );
}

#[test]
fn a_restart_kills_the_old_process_tree_and_ctrl_c_the_new_one() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.slow]\ncommand = \"sleep 100 & echo $! >> pids-{{ run.id }}; echo $$ >> pids-{{ run.id }}; sleep 100\"\ninputs = [\"src/*.txt\"]\n",
    );
    sb.file("src/a.txt", "a");
    let watch = Watching::start(&sb, &["p.toml"]);
    let first = pids(&sb, 1);
    sb.file("src/a.txt", "changed");
    watch.wait_for("change detected: src/a.txt, restarting", 1);
    watch.wait_for("stopping running jobs to start again", 1);
    let second = pids(&sb, 2);
    wait_gone(&first, "the restarted run's processes");
    let stderr = watch.stop_after(Duration::ZERO);
    wait_gone(&second, "processes after Ctrl-C");
    let runs = sb.exe(&["runs"]).stdout;
    assert_eq!(runs.matches("CANCELLED").count(), 2, "{runs}\n{stderr}");
}

#[test]
fn queue_lets_the_run_finish_then_reruns_once() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.slow]\ncommand = \"echo start >> log.txt; sleep 1; echo end >> log.txt\"\ninputs = [\"src/*.txt\"]\n",
    );
    sb.file("src/a.txt", "a");
    let watch = Watching::start(&sb, &["--on-busy", "queue", "p.toml"]);
    wait_lines(&sb, "log.txt", 1);
    sb.file("src/a.txt", "1");
    watch.wait_for("running again when this run ends", 1);
    sb.file("src/b.txt", "2");
    // No "watching" line between the two runs: the second starts as the first ends.
    watch.wait_idle(1);
    let stderr = watch.stop_after(Duration::ZERO);
    let log = std::fs::read_to_string(sb.path().join("log.txt")).unwrap();
    assert_eq!(log, "start\nend\nstart\nend\n", "{stderr}");
    assert!(!stderr.contains("CANCELLED"), "{stderr}");
}

#[test]
fn a_new_file_in_a_watched_folder_is_seen_when_it_is_an_input() {
    let sb = Sandbox::new();
    sb.file("p.toml", COUNTER);
    sb.file("src/a.txt", "a");
    let watch = Watching::start(&sb, &["p.toml"]);
    watch.wait_idle(1);
    sb.file("src/notes.md", "not an input");
    sb.file("src/new.txt", "an input");
    watch.wait_idle(2);
    let stderr = watch.stop_after(Duration::from_millis(500));
    assert!(
        stderr.contains("change detected: src/new.txt; running again"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("change detected").count(), 1, "{stderr}");
    assert_eq!(lines(&sb, "runs.txt"), 2);
}

#[test]
fn a_pipeline_file_missing_at_the_start_is_an_error_not_a_wait() {
    let sb = Sandbox::new();
    let run = sb.exe_or_hang(&["watch", "pipline.toml"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    run.assert_stderr_has("cannot read pipline.toml");
    run.assert_stderr_lacks("watching");
    assert!(!sb.path().join(".exe").exists(), "no history was made");
}

#[test]
fn an_unknown_only_or_skip_id_at_the_start_is_an_error_not_a_wait() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    for flag in ["--only", "--skip"] {
        let run = sb.exe_or_hang(&["watch", "p.toml", flag, "nope"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        run.assert_stderr_has(&format!("`{flag} nope`: there is no job `nope`"));
        run.assert_stderr_lacks("watching");
    }
    assert!(!sb.path().join(".exe").exists(), "no history was made");
}

#[test]
fn with_only_the_first_run_runs_the_selection_and_warns_once() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"echo a >> ran.txt\"\nenv = { \"my-var\" = \"x\" }\n\
         [jobs.b]\ncommand = \"echo b >> ran.txt\"\n",
    );
    let watch = Watching::start(&sb, &["p.toml", "--only", "a"]);
    watch.wait_idle(1);
    let stderr = watch.stop_after(Duration::ZERO);
    let ran = std::fs::read_to_string(sb.path().join("ran.txt")).unwrap();
    assert_eq!(ran, "a\n", "{stderr}");
    assert_eq!(stderr.matches("invalid_env_name").count(), 1, "{stderr}");
}

#[test]
fn a_broken_edit_shows_its_problems_and_the_fix_runs_again() {
    let sb = Sandbox::new();
    sb.file("p.toml", COUNTER);
    sb.file("src/a.txt", "a");
    let watch = Watching::start(&sb, &["p.toml"]);
    watch.wait_idle(1);
    sb.file(
        "p.toml",
        "[jobs.count]\ncomand = \"echo run >> runs.txt\"\n",
    );
    watch.wait_idle(2);
    let stderr = watch.stderr();
    assert!(stderr.contains("unknown key `comand`"), "{stderr}");
    assert!(stderr.contains("did you mean `command`?"), "{stderr}");
    assert!(
        stderr.contains("watching 1 path (Ctrl-C to stop)"),
        "{stderr}"
    );
    assert_eq!(lines(&sb, "runs.txt"), 1);
    // The fix also changes the job's command: the same job as before would be up to date.
    sb.file("p.toml", COUNTER.replace("echo run", "echo fixed"));
    watch.wait_idle(3);
    let stderr = watch.stop_after(Duration::ZERO);
    assert_eq!(lines(&sb, "runs.txt"), 2, "{stderr}");
}

#[test]
fn running_out_of_inotify_watches_says_how_to_raise_the_limit() {
    // A user namespace has its own inotify limit: lowering it there touches no other process.
    let probe = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: this machine cannot make a user namespace to lower the limit in");
        return;
    }
    let sb = Sandbox::new();
    sb.file("p.toml", COUNTER);
    sb.file("src/a.txt", "a");
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 1 > /proc/sys/user/max_inotify_watches && exec \"$0\" watch p.toml")
        .arg(env!("CARGO_BIN_EXE_exe"))
        .current_dir(sb.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the system's limit on inotify watches is reached"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sudo sysctl fs.inotify.max_user_watches=524288"),
        "{stderr}"
    );
    assert!(
        !Path::new(&sb.path().join("runs.txt")).exists(),
        "it ran unwatched"
    );
}

#[test]
fn a_history_removed_while_watching_is_made_again_for_the_next_run() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo one\"\n");
    let watch = Watching::start(&sb, &["p.toml"]);
    watch.wait_idle(1);
    // As `git clean -fdx` would, or moving a damaged history aside; then the file alone,
    // whose -wal the watch's own connection leaves behind.
    std::fs::remove_dir_all(sb.path().join(".exe")).unwrap();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo two\"\n");
    watch.wait_idle(2);
    std::fs::remove_file(sb.path().join(".exe/history.db")).unwrap();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo three\"\n");
    watch.wait_idle(3);
    let stderr = watch.stop_after(Duration::ZERO);
    assert_eq!(
        stderr
            .matches("the history .exe/history.db was removed or replaced")
            .count(),
        2,
        "{stderr}"
    );
    let runs = sb.exe(&["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "the third run is on record: {stderr}"
    );
}

#[test]
fn the_pipelines_folder_deleted_and_made_again_is_watched_again() {
    let sb = Sandbox::new();
    let write = |text: &str| {
        sb.file(
            "d/p.toml",
            format!("[jobs.a]\ncommand = \"echo {text} >> ../runs.txt\"\n"),
        )
    };
    write("one");
    let watch = Watching::start(&sb, &["d/p.toml"]);
    watch.wait_idle(1);
    // Slowly: the watch sees the file gone, then the folder come back.
    std::fs::remove_dir_all(sb.path().join("d")).unwrap();
    watch.wait_for("cannot read d/p.toml", 1);
    watch.wait_idle(2);
    write("two");
    wait_lines(&sb, "runs.txt", 2);
    // At once, as a checkout does: the new folder may even get the old one's inode number.
    std::fs::remove_dir_all(sb.path().join("d")).unwrap();
    write("three");
    wait_lines(&sb, "runs.txt", 3);
    // And it is watched: a later edit runs again.
    std::thread::sleep(Duration::from_millis(300));
    write("four");
    wait_lines(&sb, "runs.txt", 4);
    watch.stop_after(Duration::ZERO);
}
