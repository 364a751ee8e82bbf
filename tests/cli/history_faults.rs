//! Faults of the history's storage through the real binary: a database that this user may
//! only read, a disk that fills up during a run, and a lock another process keeps.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Run, Sandbox, signal};
use crate::history::json;

/// The reader of the read-only tests: nobody, who owns nothing in the sandbox.
const NOBODY: &str = "65534";

/// Runs exe as nobody. The tests run as root, whom file modes do not stop, so only another
/// user proves that reading commands never need to write. `setpriv` (util-linux) switches
/// users; exe is linked (or copied) into the sandbox, so nobody can reach it wherever the
/// build's target folder is.
pub(crate) struct Nobody {
    exe: PathBuf,
}

impl Nobody {
    /// Fails the test, loudly, where `setpriv` cannot switch to nobody (not root, no setpriv).
    pub(crate) fn new(sb: &Sandbox) -> Nobody {
        match Command::new("setpriv")
            .args(Self::setpriv())
            .args(["id", "-u"])
            .output()
        {
            Ok(out)
                if out.status.success()
                    && String::from_utf8_lossy(&out.stdout).trim() == NOBODY => {}
            Ok(out) => panic!(
                "setpriv cannot run a command as nobody here (these tests must run as root): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => panic!("setpriv (util-linux) is needed to run exe as another user: {e}"),
        }
        let exe = sb.path().join("exe");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_exe"), &exe).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_exe"), &exe).unwrap();
        }
        Nobody { exe }
    }

    fn setpriv() -> [&'static str; 5] {
        ["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"]
    }

    pub(crate) fn exe(&self, sb: &Sandbox, args: &[&str]) -> Run {
        let mut cmd = Command::new("setpriv");
        cmd.args(Self::setpriv())
            .arg("--")
            .arg(&self.exe)
            .args(args);
        sb.run(cmd, None)
    }
}

/// Makes every folder below `dir` (and `dir`) 0755 and every file 0644 (0755 if it was
/// executable): others may read everything and write nothing.
pub(crate) fn share_read_only(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            share_read_only(&path);
        } else {
            let mode = if meta.permissions().mode() & 0o100 == 0 {
                0o644
            } else {
                0o755
            };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// Every file below `dir`, by path relative to it, with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf(), bytes);
            }
        }
    }
    found
}

/// As nobody, `runs` lists `runs` successful runs, `show` and `logs` read the newest (its one
/// job `a` printed `hi`), and `stats` counts them.
fn reads_work(sb: &Sandbox, nobody: &Nobody, runs: usize) {
    let listed = nobody.exe(sb, &["runs", "--format", "json"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let listed = json(&listed);
    assert_eq!(listed.as_array().unwrap().len(), runs, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "SUCCESS")
    );
    let id = listed[0]["id"].to_string();
    let show = nobody.exe(sb, &["show", &id]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    show.assert_stdout_has("a    SUCCESS");
    let logs = nobody.exe(sb, &["logs", &id, "a"]);
    assert_eq!(
        (logs.code, logs.stdout.as_str()),
        (0, "hi\n"),
        "{}",
        logs.stderr
    );
    let stats = nobody.exe(sb, &["stats", "--format", "json"]);
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    assert_eq!(json(&stats)[0]["runs"], runs, "{}", stats.stdout);
}

/// A sandbox where root recorded one run of a job `a` that printed `hi`, and nobody's exe.
pub(crate) fn one_run_as_root() -> (Sandbox, Nobody) {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"echo hi\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    let nobody = Nobody::new(&sb);
    (sb, nobody)
}

#[test]
fn another_user_reads_a_history_it_cannot_write_and_records_nothing() {
    let (sb, nobody) = one_run_as_root();
    share_read_only(sb.path());
    let history = sb.path().join(".exe");
    let before = contents(&history);
    assert!(
        before.contains_key(Path::new("history.db-wal"))
            && before.contains_key(Path::new("history.db-shm")),
        "exe leaves the WAL beside the database: {:?}",
        before.keys()
    );
    reads_work(&sb, &nobody, 1);
    for args in [
        &["apply", "p.toml"][..],
        &["mark-success", "1", "a", "--reason", "by hand", "--yes"],
    ] {
        let refused = nobody.exe(&sb, args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_lacks("panicked");
        assert!(
            refused
                .stderr
                .contains("the history database .exe/history.db is read-only")
                && refused
                    .stderr
                    .contains("reading commands (runs, show, logs) still work"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(contents(&history), before, "nothing under .exe was written");
}

#[test]
fn a_checkpointed_history_is_read_without_its_wal_files() {
    let (sb, nobody) = one_run_as_root();
    // Another SQLite tool that checkpoints when it closes (here Python's) removes the -wal and
    // -shm files; a reader in a folder it cannot write cannot make them again.
    let closed = Command::new("python3")
        .args(["-c", "import sqlite3; c = sqlite3.connect('.exe/history.db'); c.execute('SELECT COUNT(*) FROM runs').fetchall(); c.close()"])
        .current_dir(sb.path())
        .status()
        .unwrap();
    assert!(closed.success());
    share_read_only(sb.path());
    let history = sb.path().join(".exe");
    let before = contents(&history);
    assert!(
        !before.contains_key(Path::new("history.db-wal")),
        "{:?}",
        before.keys()
    );
    reads_work(&sb, &nobody, 1);
    assert_eq!(
        contents(&history),
        before,
        "reading created no -wal or -shm file"
    );

    // A WAL holding commits without its -shm: the database file alone would be an older
    // history, so reading says why it cannot, and how to fix it.
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    std::fs::remove_file(history.join("history.db-shm")).unwrap();
    share_read_only(sb.path());
    let unreadable = nobody.exe(&sb, &["runs"]);
    assert_eq!(unreadable.code, 1, "{}", unreadable.stderr);
    unreadable.assert_stderr_has("cannot be read: its write-ahead log (.exe/history.db-wal) needs a shared-memory file (.exe/history.db-shm)");
    assert!(
        unreadable
            .stderr
            .contains("run `exe runs` once as a user who may write"),
        "{}",
        unreadable.stderr
    );
    // As the help says: one read by a user who may write the folder makes the -shm again.
    assert_eq!(sb.exe(&["runs"]).code, 0);
    share_read_only(sb.path());
    reads_work(&sb, &nobody, 2);
}

/// A tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` reads it); the reason if that is not
    /// permitted here.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs { dir })
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes still free for files.
    fn available(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(self.path())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (blocks, size) = text.trim().split_once(' ').unwrap();
        blocks.parse::<u64>().unwrap() * size.parse::<u64>().unwrap()
    }

    /// Fills the file system with a file of zeros until only `room` bytes (rounded up to a
    /// page) are left.
    fn fill(&self, room: u64) -> PathBuf {
        let ballast = self.path().join("ballast");
        let size = self.available().saturating_sub(room) / 4096 * 4096;
        std::fs::write(&ballast, vec![0u8; usize::try_from(size).unwrap()]).unwrap();
        ballast
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// How the history's disk runs out in [`the_history_runs_out_of_room`].
enum Limit<'a> {
    /// The database on a tmpfs that a ballast file fills.
    Tmpfs(&'a Tmpfs),
    /// The database on the sandbox's disk and exe under `ulimit -f`: writing past the limit
    /// fails with EFBIG, as past a quota, which `SQLite` reports as an I/O error.
    FileSize,
}

/// Jobs of the chain whose run the full disk interrupts.
const CHAIN: usize = 40;

/// Records two runs, then runs a chain of [`CHAIN`] jobs with room for about half of its
/// history, and checks: a clear error and exit 1; no job started after the history failed;
/// the earlier runs are intact; once there is room, the interrupted run is closed as
/// CANCELLED with every started attempt recorded, and a resume finishes it.
fn the_history_runs_out_of_room(limit: &Limit) {
    let sb = Sandbox::new();
    let db = match limit {
        Limit::Tmpfs(fs) => fs.path().join("history.db"),
        Limit::FileSize => sb.path().join("history.db"),
    };
    let db_arg = db.to_str().unwrap();
    sb.file(
        "first.toml",
        "name = \"first\"\n[jobs.a]\ncommand = \"echo hi\"\n",
    );
    let mut chain = String::from("name = \"chain\"\n");
    for i in 0..CHAIN {
        // Long enough for the run's facts to reach the tables in several folds (every
        // 100 ms), not all at its end: the room runs out part of the way through.
        chain.push_str(&format!(
            "[jobs.j{i}]\ncommand = \"echo j{i} >> ran; sleep 0.03\"\n"
        ));
        if i > 0 {
            chain.push_str(&format!("needs = [\"j{}\"]\n", i - 1));
        }
    }
    sb.file("chain.toml", &chain);
    let exe = |args: &[&str]| sb.exe(&[&["--db", db_arg][..], args].concat());
    let show = |id: &str| json(&exe(&["show", id, "--format", "json"]));
    let ran = || -> Vec<String> {
        std::fs::read_to_string(sb.path().join("ran"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(exe(&["apply", "-q", "first.toml"]).code, 0);
    // One whole run of the chain, to learn how much the history grows by.
    let wal = PathBuf::from(format!("{db_arg}-wal"));
    let wal_size = || std::fs::metadata(&wal).unwrap().len();
    let before = wal_size();
    assert_eq!(exe(&["apply", "-q", "chain.toml"]).code, 0);
    let growth = wal_size() - before;
    std::fs::remove_file(sb.path().join("ran")).unwrap();
    let earlier = [show("1"), show("2")];

    // Room for half a run: the run is recorded, and the room runs out before it ends.
    let (stopped, ballast) = match limit {
        Limit::Tmpfs(fs) => {
            let ballast = fs.fill(growth / 2);
            (exe(&["apply", "chain.toml"]), Some(ballast))
        }
        Limit::FileSize => {
            let blocks = (wal_size() + growth / 2) / 512;
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "ulimit -f \"$1\"; shift; exec \"$@\"", "sh"])
                .arg(blocks.to_string())
                .arg(env!("CARGO_BIN_EXE_exe"))
                .args(["--db", db_arg, "apply", "chain.toml"]);
            (sb.run(cmd, None), None)
        }
    };
    assert_eq!(stopped.code, 1, "{}", stopped.stderr);
    stopped.assert_stderr_lacks("panicked");
    assert!(
        stopped.stderr.contains("cannot write the run history")
            && stopped.stderr.contains("stopping the run"),
        "the room ran out during the run: {}",
        stopped.stderr
    );
    let diagnostic = match limit {
        Limit::Tmpfs(_) => format!("the disk holding the history database {db_arg} is full"),
        Limit::FileSize => format!("cannot read or write the history database {db_arg}"),
    };
    stopped.assert_stderr_has(&diagnostic);
    stopped.assert_stderr_has("help: ");
    let started = ran();
    assert!(
        started.len() < CHAIN,
        "the run stopped starting jobs: {started:?}"
    );
    if let Some(ballast) = ballast {
        std::fs::remove_file(ballast).unwrap();
    }

    assert_eq!(
        [show("1"), show("2")],
        earlier,
        "the earlier runs are intact"
    );
    let listed = json(&exe(&["runs", "--format", "json"]));
    assert_eq!(listed[0]["id"], 3);
    assert_eq!(
        listed[0]["state"], "RUNNING",
        "reading commands close nothing"
    );
    let next = exe(&["apply", "first.toml"]);
    assert_eq!(next.code, 0, "{}", next.stderr);
    assert!(
        next.stderr
            .contains("run 3 was left RUNNING by an exe that died; it is now CANCELLED"),
        "{}",
        next.stderr
    );
    let closed = show("3");
    assert_eq!(closed["run"]["state"], "CANCELLED");
    let attempts = closed["attempts"].as_array().unwrap();
    for job in &started {
        assert!(
            attempts.iter().any(|a| a["job_id"] == job.as_str()),
            "{job} ran but has no attempt: {closed}"
        );
    }
    for a in attempts {
        assert!(
            started.iter().any(|job| a["job_id"] == job.as_str()) || a["outcome"] == "CANCELLED",
            "recorded as done but never ran: {a}"
        );
    }
    // The terminal said no more than the history holds: every job it showed as started
    // has a recorded attempt.
    for line in stopped.stderr.lines() {
        if let Some(job) = line.strip_suffix(" started") {
            assert!(
                attempts.iter().any(|a| a["job_id"] == job),
                "shown as started but not recorded: {job}\n{}",
                stopped.stderr
            );
        }
    }
    let resumed = exe(&["apply", "-q", "chain.toml", "--resume", "3"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let all = ran();
    for i in 0..CHAIN {
        assert!(all.contains(&format!("j{i}")), "j{i} never ran: {all:?}");
    }
}

#[test]
fn a_full_disk_stops_the_run_and_keeps_the_history() {
    match Tmpfs::mount("4m") {
        Ok(fs) => the_history_runs_out_of_room(&Limit::Tmpfs(&fs)),
        Err(why) => {
            // Not permitted here (not root, or no mount in this container): the same run
            // under a file-size limit, which fails the history's writes the same way.
            eprintln!("cannot mount a tmpfs ({why}); running out of room under ulimit -f instead");
            the_history_runs_out_of_room(&Limit::FileSize);
        }
    }
}

#[test]
fn a_file_size_limit_stops_the_run_and_keeps_the_history() {
    the_history_runs_out_of_room(&Limit::FileSize);
}

#[test]
fn a_log_dir_on_a_full_disk_fails_the_job_not_exe() {
    let fs = match Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("cannot mount a tmpfs ({why}); there is no full disk to put logs on");
            return;
        }
    };
    fs.fill(0);
    let sb = Sandbox::new();
    let logs = fs.path().join("logs");
    sb.file(
        "p.toml",
        format!(
            "log_dir = \"{}\"\n[jobs.a]\ncommand = \"echo hi\"\n[jobs.b]\ncommand = \"echo b > b\"\nneeds = [\"a\"]\n",
            logs.display()
        ),
    );
    let run = sb.exe(&["apply", "p.toml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    run.assert_stderr_lacks("panicked");
    // The job's own write to its log fails (the shell's `echo` exits 1); exe records that,
    // and does not start what needs it.
    let detail = json(&sb.exe(&["show", "1", "--format", "json"]));
    assert_eq!(detail["run"]["state"], "FAILED");
    assert_eq!(detail["jobs"][0]["state"], "FAILED", "{detail}");
    assert_eq!(detail["attempts"][0]["exit_code"], 1, "{detail}");
    assert!(!sb.path().join("b").exists());
}

#[test]
fn a_folder_this_user_cannot_enter_is_an_error_not_an_empty_history() {
    let (sb, nobody) = one_run_as_root();
    share_read_only(sb.path());
    std::fs::set_permissions(
        sb.path().join(".exe"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    for args in [
        &["runs"][..],
        &["stats", "--format", "json"],
        &["show", "1"],
        &["apply", "p.toml"],
    ] {
        let refused = nobody.exe(&sb, args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has(
            "cannot reach the history database .exe/history.db: Permission denied",
        );
        refused.assert_stderr_lacks("No runs recorded yet");
    }
}

#[test]
fn a_wal_left_without_its_database_is_not_thrown_away() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    // The database moved away (a backup, a mistaken `mv`), its WAL, with the last runs, left.
    std::fs::rename(
        sb.path().join(".exe/history.db"),
        sb.path().join("moved.db"),
    )
    .unwrap();
    let wal = sb.path().join(".exe/history.db-wal");
    let before = std::fs::read(&wal).unwrap();
    assert!(!before.is_empty());
    for args in [&["runs"][..], &["apply", "-q", "p.toml"]] {
        let refused = sb.exe(args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has(
            "the history database .exe/history.db is missing, but its write-ahead log \
             .exe/history.db-wal is there and may hold runs",
        );
        refused.assert_stderr_has("move .exe/history.db-wal (and any .exe/history.db-shm) aside");
    }
    assert_eq!(std::fs::read(&wal).unwrap(), before, "the WAL is untouched");
    assert!(!sb.path().join(".exe/history.db").exists());
}

#[test]
fn another_programs_database_is_left_as_it_was() {
    let sb = Sandbox::new();
    sb.file("p.toml", "[jobs.a]\ncommand = \"true\"\n");
    sb.sql(
        "crm.db",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); \
         INSERT INTO customers VALUES (1, 'alice');",
    );
    let before = std::fs::read(sb.path().join("crm.db")).unwrap();
    for args in [
        &["--db", "crm.db", "runs"][..],
        &["--db", "crm.db", "apply", "-q", "p.toml"],
    ] {
        let refused = sb.exe(args);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
        refused.assert_stderr_has(
            "crm.db is an SQLite database but not an exe history: it has tables, and schema \
             version 0",
        );
    }
    assert_eq!(std::fs::read(sb.path().join("crm.db")).unwrap(), before);
    // A history whose version was reset is refused the same way, not half-migrated.
    assert_eq!(sb.exe(&["apply", "-q", "p.toml"]).code, 0);
    sb.sql(".exe/history.db", "PRAGMA user_version = 0;");
    let reset = sb.exe(&["apply", "-q", "p.toml"]);
    assert_eq!(reset.code, 2, "{}", reset.stderr);
    reset.assert_stderr_has("not an exe history");
    reset.assert_stderr_lacks("CREATE TABLE");
}

#[test]
fn a_log_this_user_cannot_read_is_said_so_not_gone() {
    let (sb, nobody) = one_run_as_root();
    share_read_only(sb.path());
    let log = sb.path().join(".exe/logs/1/a.log");
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o600)).unwrap();
    let refused = nobody.exe(&sb, &["logs", "1", "a"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    refused.assert_stderr_has(".exe/logs/1/a.log: Permission denied");
}

#[test]
fn a_new_history_in_a_folder_this_user_cannot_write_is_read_only() {
    let (sb, nobody) = one_run_as_root();
    share_read_only(sb.path());
    let refused = nobody.exe(&sb, &["--db", "new.db", "apply", "p.toml"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    refused.assert_stderr_has("the history database new.db is read-only");
    refused.assert_stderr_lacks("unable to open database file");
    assert!(!sb.path().join("new.db").exists());
}

/// Another program (python3's sqlite3) takes the write lock of the sandbox's default history
/// and keeps it for `seconds`; returns once it has it.
/// Waits until run 1's first attempt is in the tables with its process group (journaled up
/// to 0.2 s after the attempt, and folded 0.1 s after that): a fold still to come would wait
/// for a lock the test then holds, and hold the run up.
fn wait_until_first_group_is_in_the_tables(sb: &Sandbox) {
    let due = Instant::now() + Duration::from_secs(10);
    while !serde_json::from_str::<serde_json::Value>(
        &sb.exe(&["show", "1", "--format", "json"]).stdout,
    )
    .is_ok_and(|shown| shown["attempts"][0]["pgid"].is_i64())
    {
        assert!(
            Instant::now() < due,
            "run 1's first attempt and group recorded"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hold_the_write_lock(sb: &Sandbox, seconds: u32) -> std::process::Child {
    let holder = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sqlite3, time; c = sqlite3.connect('.exe/history.db', \
                 isolation_level=None); c.execute('BEGIN IMMEDIATE'); \
                 open('locked', 'w').close(); time.sleep({seconds})"
            ),
        ])
        .current_dir(sb.path())
        .spawn()
        .expect("python3 runs");
    sb.wait_for("locked");
    holder
}

#[test]
fn ctrl_c_while_another_process_keeps_the_history_locked_stops_in_seconds() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"touch started; sleep 1\"\n\
         [jobs.b]\ncommand = \"touch b\"\nneeds = [\"a\"]\n",
    );
    let exe = sb.spawn(&["apply", "p.toml"]);
    sb.wait_for("started");
    // Another program takes the write lock while `a` runs, so recording its end must wait.
    let mut holder = hold_the_write_lock(&sb, 60);
    // `a` has ended and exe waits for the lock (the busy timeout is 10 s).
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = Instant::now();
    signal(&exe, "-INT");
    let out = exe.wait_with_output().unwrap();
    let waited = stopped.elapsed();
    let _ = holder.kill();
    let _ = holder.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(waited < Duration::from_secs(5), "stopped after {waited:?}");
    assert!(
        stderr.contains(
            "interrupted while the history database .exe/history.db was locked by another process"
        ),
        "{stderr}"
    );
    assert!(!sb.path().join("b").exists());
    // The next exe closes the run as one whose exe died, and it can be resumed.
    let listed = sb.exe(&["runs"]);
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let resumed = sb.exe(&["apply", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(sb.path().join("b").exists());
}

#[test]
fn a_run_stopped_by_a_lock_keeps_what_it_journaled_and_nothing_after() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"sleep 2\"\n\
         [jobs.b]\ncommand = \"test -f b && exit 0; touch b; sleep 30\"\nneeds = [\"a\"]\n",
    );
    let exe = sb.spawn(&["apply", "p.toml"]);
    // Once `a`'s start is in the tables (its process group too, 0.2 s after)...
    wait_until_first_group_is_in_the_tables(&sb);
    // ... the lock is held for 13 s. `a`'s end and `b`'s start are journaled, so `b` starts;
    // folding them into the tables waits past the busy timeout (10 s) and fails, and the run
    // stops while `b` runs. The lock is released after exe has exited.
    let mut holder = hold_the_write_lock(&sb, 13);
    let out = exe.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stayed locked by another process"),
        "{stderr}"
    );
    assert!(sb.path().join("b").exists(), "b started once journaled");
    assert!(holder.wait().unwrap().success());
    // What was journaled before the failure is recorded (a reader folds a dead run's
    // journal); nothing after it is: not `b`'s end, nor the cancellation of the stop.
    let shown = json(&sb.exe(&["show", "1", "--format", "json"]));
    let trail: Vec<(&str, &str, &str)> = (shown["transitions"].as_array().unwrap().iter())
        .map(|t| {
            (
                t["job_id"].as_str().unwrap(),
                t["from"].as_str().unwrap(),
                t["to"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("a", "PENDING", "QUEUED"),
            ("a", "QUEUED", "RUNNING"),
            ("a", "RUNNING", "SUCCESS"),
            ("b", "PENDING", "QUEUED"),
            ("b", "QUEUED", "RUNNING"),
        ],
        "{shown}"
    );
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{shown}");
    assert!(attempts[1]["ended_at_ms"].is_null(), "{shown}");
    assert!(attempts[0]["ended_at_ms"].is_i64(), "{shown}");
    // The next apply closes it as a run whose exe stopped recording, and it can be resumed.
    let resumed = sb.exe(&["apply", "-q", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let closed = json(&sb.exe(&["show", "1", "--format", "json"]));
    assert_eq!(closed["run"]["state"], "CANCELLED", "{closed}");
    assert_eq!(closed["jobs"][1]["reason"], "exe died", "{closed}");
    assert!(
        !sb.path().join(".exe/history.db-run-1").exists(),
        "the journal, all folded, is removed"
    );
}

/// The number of `job`'s transitions to `to` in run 1, read from the tables directly.
fn transitions_in_tables(sb: &Sandbox, job: &str, to: &str) -> u32 {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             print(c.execute(\"SELECT count(*) FROM transitions t JOIN jobs j \
             ON j.run = t.run AND j.idx = t.job WHERE t.run = 1 AND j.job_id = ? \
             AND t.to_state = ?\", (sys.argv[2], sys.argv[3])).fetchone()[0])",
            ".exe/history.db",
            job,
            to,
        ])
        .current_dir(sb.path())
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn what_a_killed_exe_journaled_is_shown_by_readers_and_folded_by_the_next_apply() {
    let sb = Sandbox::new();
    sb.file(
        "p.toml",
        "[jobs.a]\ncommand = \"touch started; sleep 1\"\n\
         [jobs.b]\ncommand = \"test -f b && exit 0; echo $$ > b; sleep 30\"\nneeds = [\"a\"]\n",
    );
    let mut exe = sb.spawn(&["apply", "p.toml"]);
    // Once all of `a`'s start is in the tables...
    wait_until_first_group_is_in_the_tables(&sb);
    // ... the lock is held: `a`'s end and `b`'s start are journaled (so `b` starts) but
    // cannot reach the tables; exe is killed then.
    let mut holder = hold_the_write_lock(&sb, 30);
    sb.wait_for("b");
    let _ = exe.kill();
    let _ = exe.wait();
    let _ = holder.kill();
    let _ = holder.wait();
    let journal = sb.path().join(".exe/history.db-run-1");
    assert!(journal.exists());
    assert_eq!(
        transitions_in_tables(&sb, "b", "RUNNING"),
        0,
        "only in the journal"
    );

    // A reader folds the dead run's journal: the run as far as its exe got.
    let shown = json(&sb.exe(&["show", "1", "--format", "json"]));
    let states: Vec<&str> = (shown["jobs"].as_array().unwrap().iter())
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["SUCCESS", "RUNNING"], "{shown}");
    assert_eq!(transitions_in_tables(&sb, "b", "RUNNING"), 1, "folded once");
    assert!(journal.exists(), "a reader does not close the run");

    // The next apply closes it (its journal, all folded, goes) and resumes it.
    let resumed = sb.exe(&["apply", "-q", "p.toml", "--resume", "1"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(!journal.exists());
    assert_eq!(
        transitions_in_tables(&sb, "b", "RUNNING"),
        1,
        "not folded again"
    );
    let closed = json(&sb.exe(&["show", "1", "--format", "json"]));
    assert_eq!(closed["run"]["state"], "CANCELLED", "{closed}");
    assert_eq!(closed["jobs"][1]["reason"], "exe died", "{closed}");
    let group = std::fs::read_to_string(sb.path().join("b")).unwrap();
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", group.trim())])
        .status();
}
