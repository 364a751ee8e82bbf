"""Kill-and-resume torture: SIGKILL `exe apply` at random moments, then resume.

Issue 4 asks for 100 kill points here (the test suite has 20; quick mode has
5). After each kill it checks that:
  1. every attempt that started is recorded;
  2. nothing is recorded that did not happen;
  3. a resume finishes the run;
  4. no transition is duplicated.

How the bench knows what happened: each job's first action appends
`<run> <job> <attempt>` to the file `started`, and its last one (after its
work) the same line to `finished`, through exe's `{{ run.id }}` and
`{{ attempt }}` templates. exe runs in a session of its own, and after the
kill the bench waits until no live process of that session is left, so a job
orphaned by the kill cannot write a marker after the check. The history is
read with Python's sqlite3, read-only.

Per recorded run (the killed one, read after the resume's open closed it, and
the resume's own):
  - started: a `started` line of the run; each must be an attempt of the run;
  - phantom: an attempt that claims more than the markers show: an exit code, a
    signal or an outcome other than CANCELLED without a `started` line, or
    SUCCESS without a `finished` line;
  - recorded before its start: an attempt with no `started` line that recovery
    closed as CANCELLED (exe died after committing the attempt and before its
    process ran: persist first). Allowed, and counted;
  - duplicated transition: per job, one whose `from` is not the `to` of the
    job's previous one (PENDING first), or one identical to an earlier one;
  - the killed run must not stay RUNNING, and `--resume` must exit 0 with a
    run that ends SUCCESS (or say "nothing to do" if the killed run had
    already succeeded, or every job of it had).
Kill times are uniform over 1.15 times the run's lifetime (measured first),
from a seeded generator: BENCH_TORTURE_SEED=N repeats a schedule.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

NAME = "kill-and-resume torture"
JOBS = 12
FLAKY = 4  # this job fails its first attempt in every run, then passes its retry


def pipeline() -> str:
    """Three chains of four jobs, three at once, 5 to 45 ms each, one retried job."""
    lines = ['name = "torture"', "max_parallel = 3"]
    for i in range(JOBS):
        mark = f"{{{{ run.id }}}} j{i} {{{{ attempt }}}}"
        check = "[ {{ attempt }} -ge 2 ] || exit 3; " if i == FLAKY else ""
        lines += [f"[jobs.j{i}]",
                  f'command = "echo {mark} >> started; sleep {0.005 + (i * 7 % 5) * 0.01:.3f}; '
                  f'{check}echo {mark} >> finished"']
        if i >= 3:
            lines.append(f'needs = ["j{i - 3}"]')
        if i == FLAKY:
            lines.append('retry = { max = 2, delay = "20ms" }')
    return "\n".join(lines) + "\n"


@dataclass
class Tally:
    """What the checks found, over one run or all of them."""

    started: int = 0
    recorded: int = 0  # started attempts that are recorded
    before_start: int = 0
    phantom: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)

    def add_counts(self, other: "Tally") -> None:
        self.started += other.started
        self.recorded += other.recorded
        self.before_start += other.before_start
        self.phantom += other.phantom
        self.duplicated += other.duplicated


class Torture:
    def __init__(self, exe: str, folder: str):
        self.exe = exe
        self.folder = folder
        self.db = os.path.join(folder, "history.db")
        os.makedirs(folder)
        with open(os.path.join(folder, "p.toml"), "w") as f:
            f.write(pipeline())

    def apply(self, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [self.exe, "--db", self.db, "apply", "-q", "--output", "quiet", "p.toml", *extra],
            cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, text=True)

    def markers(self, name: str) -> set[tuple[int, str, int]]:
        try:
            with open(os.path.join(self.folder, name)) as f:
                return {(int(r), j, int(a)) for r, j, a in (line.split() for line in f)}
        except FileNotFoundError:
            return set()

    def clear_markers(self) -> None:
        for name in ("started", "finished"):
            try:
                os.remove(os.path.join(self.folder, name))
            except FileNotFoundError:
                pass

    def read(self, sql: str, *args) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def newest_run(self) -> int:
        return self.read("SELECT COALESCE(MAX(id), 0) FROM runs")[0][0]

    def state(self, run: int) -> str:
        return self.read("SELECT state FROM runs WHERE id = ?", run)[0][0]

    def all_succeeded(self, run: int) -> bool:
        shown = subprocess.run([self.exe, "--db", self.db, "show", str(run), "--format", "json"],
                               cwd=self.folder, capture_output=True, text=True, check=True)
        return all(job["state"] == "SUCCESS" for job in json.loads(shown.stdout)["jobs"])

    def check(self, run: int, started: set, finished: set, t: Tally) -> None:
        """Adds the evidence for the four properties in one recorded run to `t`."""
        ids = dict(self.read("SELECT idx, job_id FROM jobs WHERE run = ?", run))
        attempts = self.read(
            "SELECT job, number, exit_code, signal, outcome FROM attempts WHERE run = ?", run)
        recorded = {(ids[job], number) for job, number, *_ in attempts}
        mine = {(j, a) for r, j, a in started if r == run}
        done = {(j, a) for r, j, a in finished if r == run}
        t.started += len(mine)
        t.recorded += len(mine & recorded)
        for job, number in sorted(mine - recorded):
            t.problems.append(f"run {run}: {job} attempt {number} started but is not recorded")
        for job, number, code, sig, outcome in attempts:
            key = (ids[job], number)
            if key not in mine:
                if outcome == "CANCELLED" and code is None and sig is None:
                    t.before_start += 1
                else:
                    t.phantom += 1
                    t.problems.append(f"run {run}: {key[0]} attempt {number} recorded "
                                      f"({outcome}, exit {code}, signal {sig}) but never started")
            elif outcome == "SUCCESS" and key not in done:
                t.phantom += 1
                t.problems.append(f"run {run}: {key[0]} attempt {number} recorded SUCCESS "
                                  "but never finished")
        state: dict[int, str] = {}
        seen = set()
        for job, frm, to, at, reason in self.read(
                "SELECT job, from_state, to_state, at, reason FROM transitions WHERE run = ? ORDER BY id",
                run):
            fact = (job, frm, to, at, reason)
            if frm != state.get(job, "PENDING") or fact in seen:
                t.duplicated += 1
                t.problems.append(f"run {run}: {ids[job]}: transition {frm} -> {to} ({reason!r}) "
                                  f"after {state.get(job, 'PENDING')}")
            seen.add(fact)
            state[job] = to


def wait_session_gone(sid: int, within: float = 10.0) -> bool:
    """Waits until no live (non-zombie) process is in session `sid`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = False
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the comm: state, ppid, pgrp, session.
            if int(fields[3]) == sid and fields[0] != "Z":
                alive = True
                break
        if not alive:
            return True
        time.sleep(0.005)
    return False


def run(exe: str, work: str, quick: bool, runs: Optional[int]) -> list[str]:
    """Runs the kill points (`runs` of them if given), prints one line per point and a
    summary; returns failures."""
    points = runs or (5 if quick else 100)
    seed = int(os.environ.get("BENCH_TORTURE_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    t = Torture(exe, os.path.join(work, "torture"))
    print(f"measuring {NAME} ...", file=sys.stderr, flush=True)

    # Three whole runs: they create the history and give the run's lifetime.
    lifetimes = []
    for _ in range(3):
        t.clear_markers()
        t0 = time.perf_counter()
        p = t.apply()
        _, err = p.communicate()
        lifetimes.append(time.perf_counter() - t0)
        if p.returncode != 0:
            return [f"{NAME}: a run without a kill exited {p.returncode}: {err.strip()}"]
    lifetime = statistics.median(lifetimes)

    print()
    print(f"Kill-and-resume torture: {points} points, seed {seed} (BENCH_TORTURE_SEED={seed} repeats "
          f"the schedule); {JOBS} jobs, a whole run takes {lifetime * 1e3:.0f} ms; kills uniform "
          f"over 0-{lifetime * 1.15e3:.0f} ms")
    total = Tally()
    failures: list[str] = []
    killed = before_run = after_exit = resumed = finished_resumes = 0
    for point in range(1, points + 1):
        t.clear_markers()
        before = t.newest_run()
        delay = rng.uniform(0, lifetime * 1.15)
        p = t.apply()
        time.sleep(delay)
        was_alive = p.poll() is None
        if was_alive:
            p.kill()
        p.communicate()
        tally = Tally()
        problems = tally.problems
        if not wait_session_gone(p.pid):
            problems.append(f"processes of the killed exe (session {p.pid}) still run after 10 s")
        run_id = t.newest_run()
        line = f"  point {point:3}  kill at {delay * 1e3:6.1f} ms  "
        if run_id == before:
            before_run += 1
            stray = t.markers("started")
            if stray:
                problems.append(f"jobs started without a recorded run: {sorted(stray)}")
            line += "killed before a run was recorded"
        else:
            if was_alive:
                killed += 1
            else:
                after_exit += 1
            resume = t.apply("--resume", str(run_id))
            _, err = resume.communicate()
            started, finished = t.markers("started"), t.markers("finished")
            t.check(run_id, started, finished, tally)
            state = t.state(run_id)
            line += (f"{'killed' if was_alive else 'exited'}  run {run_id} {state}: started "
                     f"{tally.started}, recorded {tally.recorded} (+{tally.before_start} before "
                     "their start)  ")
            if state == "RUNNING":
                problems.append(f"run {run_id} is still RUNNING after a resume opened the history")
            newest = t.newest_run()
            if state == "SUCCESS":
                if resume.returncode != 0 or newest != run_id:
                    problems.append(f"resuming the succeeded run {run_id} did something: exit "
                                    f"{resume.returncode}, {err.strip()}")
                line += "resume: nothing to do"
            elif t.all_succeeded(run_id):
                # Killed between its last job's end and the run's: nothing is left to run.
                if resume.returncode != 0 or newest != run_id or "nothing to do" not in err:
                    problems.append(f"resuming run {run_id}, whose jobs all succeeded, did "
                                    f"something: exit {resume.returncode}, {err.strip()}")
                line += "resume: nothing to do (every job had succeeded)"
            else:
                resumed += 1
                if resume.returncode == 0 and newest > run_id and t.state(newest) == "SUCCESS":
                    finished_resumes += 1
                    before = (tally.started, tally.recorded)
                    t.check(newest, started, finished, tally)
                    line += (f"resume: run {newest} SUCCESS: started {tally.started - before[0]}, "
                             f"recorded {tally.recorded - before[1]}")
                else:
                    problems.append(f"the resume of run {run_id} did not finish it: exit "
                                    f"{resume.returncode}: {err.strip()}")
                    line += "resume: FAILED"
            line += f"  phantom {tally.phantom}, duplicated {tally.duplicated}"
            total.add_counts(tally)
        print(line)
        for problem in problems:
            print(f"    FAIL point {point}: {problem}")
        failures += [f"{NAME}: point {point}: {problem}" for problem in problems]

    print(f"  summary: {points} points: {killed} killed during a run, {before_run} before a run was "
          f"recorded, {after_exit} after exe had exited; attempts (killed runs and their resumes) "
          f"started {total.started}, recorded {total.recorded}; recorded before their process started "
          f"{total.before_start}; phantom records {total.phantom}; duplicated transitions "
          f"{total.duplicated}; resumes that finished {finished_resumes} of {resumed}")
    print(f"  {'PASS' if not failures else f'FAIL: {len(failures)} problems'}")
    return failures
