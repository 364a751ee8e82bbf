//! A process group's members as `/proc` lists them: each one's state and start time; and
//! the groups a job's processes moved to, which a signal to the job's group misses.
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

/// The `/proc/PID/stat` line of every process; `None` when `/proc` cannot be read.
fn stats() -> Option<impl Iterator<Item = String>> {
    let entries = fs::read_dir("/proc").ok()?;
    Some(
        entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
            })
            // A process that has just gone has no stat left to read.
            .filter_map(|entry| fs::read_to_string(entry.path().join("stat")).ok()),
    )
}

/// The processes of group `pgid`; `None` when `/proc` cannot be read.
pub fn of_group(pgid: i32) -> Option<Vec<Member>> {
    let members = stats()?
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

/// One process's place in the tree: its id, parent, group and session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Place {
    pid: i32,
    ppid: i32,
    pgid: i32,
    session: i32,
}

/// Every process `/proc` showed when read (none when it cannot be read).
pub struct Tree(Vec<Place>);

impl Tree {
    /// Reads `/proc` once.
    pub fn read() -> Self {
        Tree(stats().map_or_else(Vec::new, |all| all.filter_map(|s| place(&s)).collect()))
    }

    /// The groups, other than the job's own, of the processes below a job's first process
    /// (`root`, the leader of its group): those that made a group of their own, as GNU
    /// `timeout` does. Processes that left the job's session (`setsid`) are left alone, as
    /// documented.
    pub fn escaped_groups(&self, root: i32) -> Vec<i32> {
        let Some(session) = self.0.iter().find(|p| p.pid == root).map(|p| p.session) else {
            return Vec::new();
        };
        let mut below = vec![root];
        let mut groups = Vec::new();
        while let Some(parent) = below.pop() {
            for child in self.0.iter().filter(|p| p.ppid == parent && p.pid != root) {
                below.push(child.pid);
                if child.pgid != root && child.session == session && !groups.contains(&child.pgid) {
                    groups.push(child.pgid);
                }
            }
        }
        groups
    }
}

/// The groups of exe's own children other than its jobs: what jobs left running in a group
/// of their own, re-parented to exe (a subreaper) when their parent ended. Ask once every job
/// has been reaped. Not exe's own group, nor another session's. The children are read from
/// `/proc/self/task/*/children` (a few small files, where a whole `/proc` scan would cost
/// every run a millisecond or more), or from a scan where the kernel has no such file.
pub fn adopted_groups() -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let read = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| place(&stat))
    };
    let Some(own) = read(me) else {
        return Vec::new();
    };
    let children: Option<Vec<Place>> = fs::read_dir("/proc/self/task").ok().and_then(|tasks| {
        let mut found = Vec::new();
        for task in tasks.filter_map(Result::ok) {
            let list = fs::read_to_string(task.path().join("children")).ok()?;
            found.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .filter_map(read),
            );
        }
        Some(found)
    });
    let children = children.unwrap_or_else(|| Tree::read().0);
    let mut groups: Vec<i32> = (children.iter())
        .filter(|p| p.ppid == me && p.pgid != own.pgid && p.session == own.session)
        .map(|p| p.pgid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// The pid (field 1), parent (4), group (5) and session (6) of a `/proc/PID/stat` line.
fn place(stat: &str) -> Option<Place> {
    let pid = stat.split_whitespace().next()?.parse().ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(1);
    Some(Place {
        pid,
        ppid: fields.next()?.parse().ok()?,
        pgid: fields.next()?.parse().ok()?,
        session: fields.next()?.parse().ok()?,
    })
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
        assert_eq!(
            place(stat),
            Some(Place {
                pid: 4242,
                ppid: 1,
                pgid: 4240,
                session: 4240
            })
        );
        assert_eq!(group_and_member("garbage"), None);
    }

    #[test]
    fn groups_made_below_a_job_are_found_but_not_other_sessions() {
        let at = |pid, ppid, pgid, session| Place {
            pid,
            ppid,
            pgid,
            session,
        };
        // Job 100 (exe 10's child): `timeout` 101 made group 101, its command 102 is in it,
        // 103 stayed in the job's group, 104 left with `setsid`, 200 is another job.
        let tree = Tree(vec![
            at(10, 1, 10, 5),
            at(100, 10, 100, 5),
            at(101, 100, 101, 5),
            at(102, 101, 101, 5),
            at(103, 100, 100, 5),
            at(104, 103, 104, 104),
            at(200, 10, 200, 5),
            at(201, 200, 201, 5),
        ]);
        assert_eq!(tree.escaped_groups(100), [101]);
        assert_eq!(tree.escaped_groups(200), [201]);
        assert!(tree.escaped_groups(999).is_empty(), "a job that has ended");
    }

    #[test]
    fn this_process_is_a_member_of_its_group_and_running() {
        let group = rustix::process::getpgrp().as_raw_nonzero().get();
        let members = of_group(group).expect("/proc is readable");
        assert!(members.iter().any(|m| !m.exited()), "{members:?}");
        assert_eq!(of_group(4_194_305), Some(Vec::new()), "no such group");
    }
}
