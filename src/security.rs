//! Known-dangerous command patterns for `security_policy`.
//!
//! This is a lint, not a sandbox: it catches the common accidents (`rm -rf /`, `sudo`,
//! piping a download into a shell, writing to raw disks) in commands as written. A command
//! can always hide what it does (a script, a variable, `eval`); nothing here stops that.

use std::sync::OnceLock;

use regex::bytes::Regex;

/// One dangerous pattern.
pub struct Rule {
    /// Stable code suffix, e.g. `rm_root` in `exe::security::rm_root`.
    pub code: &'static str,
    /// What the match means, for the diagnostic.
    pub message: &'static str,
    /// Text a matching command must contain; most commands contain none, so most rules
    /// are never compiled (compiling them is most of what a lint of a small file costs).
    trigger: &'static str,
    /// ASCII-only (`(?-u)`): commands are shell text, and Unicode `\b` is far costlier.
    pattern: &'static str,
    compiled: OnceLock<Regex>,
}

impl Rule {
    const fn new(
        code: &'static str,
        message: &'static str,
        trigger: &'static str,
        pattern: &'static str,
    ) -> Self {
        Rule {
            code,
            message,
            trigger,
            pattern,
            compiled: OnceLock::new(),
        }
    }

    fn matches(&self, command: &str) -> bool {
        command.contains(self.trigger)
            && self
                .compiled
                .get_or_init(|| Regex::new(self.pattern).expect("rule patterns are valid"))
                .is_match(command.as_bytes())
    }
}

static RULES: [Rule; 7] = [
    Rule::new(
        "exe::security::rm_root",
        "deletes recursively from `/`, `~` or `$HOME`",
        "rm",
        // Short flags (`-rf`, `-r -f`) or `--recursive`; a target of `/`, `~` or `$HOME`,
        // with or without a trailing `/` or `/*`.
        r#"(?-u)\brm\s+(-[a-zA-Z-]+\s+)*(-[a-zA-Z]*[rR][a-zA-Z]*|--recursive)\s+(-[a-zA-Z-]+\s+)*("?(/|/\*|(~|\$HOME|\$\{HOME\})(/|/\*)?)"?)(\s|;|&|\||$)"#,
    ),
    Rule::new(
        "exe::security::sudo",
        "runs a command as root with `sudo`",
        "sudo",
        // In command position: at the start, after `;` `&` `|` `(` or a backquote, or after
        // a word that runs the next one; by name or path. Not `echo sudo`.
        r"(?-u)(^\s*|[;&|(`]\s*|\b(then|do|else|time|nohup|exec|env|command|xargs)\s+)(\S*/)?sudo\s",
    ),
    Rule::new(
        "exe::security::pipe_to_shell",
        "pipes a download straight into a shell",
        "|",
        r"(?-u)\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(ba|z|da|k)?sh\b",
    ),
    Rule::new(
        "exe::security::raw_device",
        "writes to a raw disk device",
        "/dev/",
        r"(?-u)(>\s*|\bof=)/dev/(sd[a-z]|hd[a-z]|nvme\d|xvd[a-z]|vd[a-z]|mmcblk\d|disk\d)",
    ),
    Rule::new(
        "exe::security::mkfs",
        "formats a file system with `mkfs`",
        "mkfs",
        r"(?-u)\bmkfs(\.[a-z0-9]+)?\s",
    ),
    Rule::new(
        "exe::security::fork_bomb",
        "is a fork bomb",
        ":",
        r"(?-u):\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
    ),
    Rule::new(
        "exe::security::chmod_world",
        "makes `/` world-writable",
        "chmod",
        r"(?-u)\bchmod\s+(-[a-zA-Z]+\s+)*0?777\s+/(\s|$)",
    ),
];

/// Every rule the command matches.
pub fn scan(command: &str) -> Vec<&'static Rule> {
    RULES.iter().filter(|r| r.matches(command)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(command: &str) -> Vec<&'static str> {
        scan(command).iter().map(|r| r.code).collect()
    }

    #[test]
    fn dangerous_commands_match() {
        assert_eq!(codes("rm -rf /"), ["exe::security::rm_root"]);
        assert_eq!(codes("rm -fr ~ ; echo"), ["exe::security::rm_root"]);
        assert_eq!(codes("rm -r -f \"$HOME\""), ["exe::security::rm_root"]);
        assert_eq!(codes("rm -rf $HOME/"), ["exe::security::rm_root"]);
        assert_eq!(codes("rm -rf ${HOME}/*"), ["exe::security::rm_root"]);
        assert_eq!(
            codes("rm --recursive --force /"),
            ["exe::security::rm_root"]
        );
        assert_eq!(codes("sudo systemctl restart x"), ["exe::security::sudo"]);
        assert_eq!(codes("/usr/bin/sudo ls"), ["exe::security::sudo"]);
        assert_eq!(codes("make && nohup sudo ls"), ["exe::security::sudo"]);
        assert_eq!(
            codes("curl -fsSL https://x.sh | sh"),
            ["exe::security::pipe_to_shell"]
        );
        assert_eq!(
            codes("wget -qO- x | sudo bash"),
            ["exe::security::sudo", "exe::security::pipe_to_shell"]
        );
        assert_eq!(
            codes("dd if=x.img of=/dev/sda bs=4M"),
            ["exe::security::raw_device"]
        );
        assert_eq!(codes("mkfs.ext4 /dev/vdb1"), ["exe::security::mkfs"]);
        assert_eq!(codes(":(){ :|:& };:"), ["exe::security::fork_bomb"]);
    }

    #[test]
    fn ordinary_commands_do_not() {
        for ok in [
            "rm -rf ./build",
            "rm -rf /tmp/exe-work",
            "rm -f out.csv",
            "echo sudoers",
            "echo sudo is not needed",
            "rm -rf $HOME/project/build",
            "rm -rf ~/tmp",
            "curl -o file.tgz https://x",
            "cat /dev/null > out.log",
            "grep -r pattern /",
        ] {
            assert!(codes(ok).is_empty(), "{ok}: {:?}", codes(ok));
        }
    }
}
