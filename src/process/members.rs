//! A process group's members as `/proc` lists them: each one's state and start time.
//!
//! `/proc/PID/stat` is `PID (COMM) STATE PPID PGRP ...`, with the start time as field 22.
//! COMM, in parentheses, may itself hold spaces and `)`, so the fields are counted after its
//! last `)`.

use std::fs;

/// One process of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its state letter: `R` running, `S` sleeping, ... `Z` a zombie.
    pub state: char,
    /// When it started, in clock ticks since boot.
    pub start_ticks: i64,
}

impl Member {
    /// Whether it has exited: a zombie its parent has not reaped yet, or dead.
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// The processes of group `pgid`; `None` when `/proc` cannot be read.
pub fn of_group(pgid: i32) -> Option<Vec<Member>> {
    let entries = fs::read_dir("/proc").ok()?;
    let members = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        })
        // A process that has just gone has no stat left to read.
        .filter_map(|entry| fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| group_and_member(&stat))
        .filter(|&(group, _)| group == pgid)
        .map(|(_, member)| member)
        .collect();
    Some(members)
}

/// Process `pid`, if it exists and `/proc` can be read.
pub fn of_pid(pid: u32) -> Option<Member> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    group_and_member(&stat).map(|(_, member)| member)
}

/// The group (field 5) and the state (3) and start time (22) of a `/proc/PID/stat` line.
fn group_and_member(stat: &str) -> Option<(i32, Member)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3.
    let member = Member {
        state: fields.first()?.chars().next()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    };
    Some((fields.get(2)?.parse().ok()?, member))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (we ird) (name) S 1 4240 4240 0 -1 4194560 10 0 0 0 0 0 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        let member = Member {
            state: 'S',
            start_ticks: 987_654,
        };
        assert_eq!(group_and_member(stat), Some((4240, member)));
        assert_eq!(group_and_member("4242 (x) S 1"), None);
        assert_eq!(group_and_member("garbage"), None);
    }

    #[test]
    fn this_process_is_a_member_of_its_group_and_running() {
        let group = rustix::process::getpgrp().as_raw_nonzero().get();
        let members = of_group(group).expect("/proc is readable");
        assert!(members.iter().any(|m| !m.exited()), "{members:?}");
        assert_eq!(of_group(4_194_305), Some(Vec::new()), "no such group");
    }
}
