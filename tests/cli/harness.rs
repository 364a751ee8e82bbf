//! A tiny builder around the `exe` binary: a temp folder with files, a command, its output.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails, showing the whole run, unless stdout contains `text`.
    #[track_caller]
    pub fn assert_stdout_has(&self, text: &str) {
        self.check("stdout", &self.stdout, text, true);
    }

    /// Fails, showing the whole run, if stdout contains `text`.
    #[track_caller]
    pub fn assert_stdout_lacks(&self, text: &str) {
        self.check("stdout", &self.stdout, text, false);
    }

    /// Fails, showing the whole run, unless stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_has(&self, text: &str) {
        self.check("stderr", &self.stderr, text, true);
    }

    /// Fails, showing the whole run, if stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_lacks(&self, text: &str) {
        self.check("stderr", &self.stderr, text, false);
    }

    #[track_caller]
    fn check(&self, stream: &str, output: &str, text: &str, wanted: bool) {
        assert!(
            output.contains(text) == wanted,
            "{stream} {} {text:?} (exit code {})\n--- stdout\n{}--- stderr\n{}",
            if wanted { "lacks" } else { "has" },
            self.code,
            self.stdout,
            self.stderr
        );
    }
}

/// A scratch folder; every command runs inside it, so paths in output are relative and stable.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs an SQL script on the `SQLite` database `db` in the sandbox (created if missing),
    /// with python3's sqlite3: a history as another tool, or an older exe, left it.
    pub fn sql(&self, db: &str, script: &str) {
        let status = Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
                db,
                script,
            ])
            .current_dir(self.path())
            .status()
            .expect("python3 runs");
        assert!(status.success(), "{script}");
    }

    /// Starts `exe` in the background (stdout and stderr piped), for signal and crash tests.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_exe"))
            .args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("exe starts")
    }

    /// Waits (up to 10 s) until `name` exists in the sandbox: a job's sign that it started.
    pub fn wait_for(&self, name: &str) {
        let path = self.path().join(name);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !path.exists() {
            assert!(
                std::time::Instant::now() < until,
                "{} never appeared",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn exe(&self, args: &[&str]) -> Run {
        self.exe_with(args, None)
    }

    pub fn exe_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_exe"));
        cmd.args(args);
        self.run(cmd, stdin)
    }

    /// Runs exe under `timeout 20`, for a case where the bug would be a hang: exit 124 then.
    pub fn exe_or_hang(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new("timeout");
        cmd.arg("20").arg(env!("CARGO_BIN_EXE_exe")).args(args);
        self.run(cmd, None)
    }

    /// Runs a shell script in the sandbox, in which `"$0"` is exe: for what a test needs the
    /// shell for (`ulimit`, `times`, a variable set empty, another folder).
    pub fn sh(&self, script: &str) -> Run {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script, env!("CARGO_BIN_EXE_exe")]);
        self.run(cmd, None)
    }

    /// Runs `cmd` (exe, or a wrapper such as `setpriv` or `sh` that execs it) in the sandbox,
    /// without the caller's `EXE_*` settings, and collects its output.
    pub fn run(&self, mut cmd: Command, stdin: Option<&[u8]>) -> Run {
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("EXE_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("EXE_") {
                cmd.env_remove(k);
            }
        }
        let output = if let Some(input) = stdin {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            // exe may refuse before it reads its input (`apply -`), which closes the pipe.
            match child.stdin.take().unwrap().write_all(input) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("stdin: {e}"),
                _ => {}
            }
            child.wait_with_output().unwrap()
        } else {
            cmd.output().unwrap()
        };
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Whether a process is alive (a zombie is not: it has exited and waits to be reaped).
pub fn pid_alive(pid: &str) -> bool {
    Path::new(&format!("/proc/{}", pid.trim())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
            .unwrap_or_default()
            .contains("State:\tZ")
}

/// Sends `sig` (`-INT`, `-TERM`, ...) to a background `exe`.
pub fn signal(child: &std::process::Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The repository root (examples, templates, schemas live there).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
