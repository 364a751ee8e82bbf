"""`exe runs` over a large history: 20 runs out of 50,000 (1,000,000 job rows).

Issue 4's target: listing 20 runs out of 50,000 takes 50 ms or less, and does
not depend on the history's size (issue 6). Two databases are built in the
work folder, one of 50,000 runs (2,000 in quick mode) and one of 500, and
`exe runs` (plain, `--name`, `--status FAILED`, and `--until` the start of
the middle run) is timed on both, interleaved by `measure()`.

Each database is what exe itself writes: `exe apply` of a 20-job pipeline
makes the schema and one real run, and that run's rows (the run, its plan JSON,
its jobs, attempts and transitions) are copied with new ids, times,
pipeline names and outcomes, in one transaction with Python's sqlite3. About
one run in 13 ends FAILED (its last job failed) and one in 50 CANCELLED. The
big database is about 950 MB (the plan JSON of a 20-job run is 11.5 kB) and
takes about 20 s to build; it lives in the work folder for the whole run.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from typing import Optional

import bench

NAME = "exe runs over a history"
JOBS_PER_RUN = 20
PIPELINES = ("nightly", "ci", "deploy")  # a run's pipeline: index % 3
SMALL = 500
LIMIT_S = 0.050  # the target for 20 runs out of 50,000


def pipeline() -> str:
    """20 jobs in four chains of five, four at once: a run like a user's."""
    lines = ['name = "nightly"', "max_parallel = 4"]
    for i in range(JOBS_PER_RUN):
        lines += [f"[jobs.job_{i}]", 'command = "true"']
        if i >= 4:
            lines.append(f'needs = ["job_{i - 4}"]')
    return "\n".join(lines) + "\n"


def outcome(run: int) -> str:
    if run % 50 == 0:
        return "CANCELLED"
    if run % 13 == 0:
        return "FAILED"
    return "SUCCESS"


def build(exe: str, folder: str, runs: int) -> str:
    """A history of `runs` runs in `folder`; returns the database's path."""
    os.makedirs(folder)
    with open(os.path.join(folder, "p.toml"), "w") as f:
        f.write(pipeline())
    db = os.path.join(folder, "history.db")
    subprocess.run([exe, "--db", db, "apply", "-q", "--output", "quiet", "p.toml"],
                   cwd=folder, check=True, stdout=subprocess.DEVNULL)
    conn = sqlite3.connect(db, isolation_level=None)
    (file, digest, state, t0, t1, host, user, pid, version) = conn.execute(
        "SELECT file, digest, state, started_at, ended_at, host, user, pid, exe_version"
        " FROM runs").fetchone()
    (plan,) = conn.execute("SELECT json FROM plans WHERE run = 1").fetchone()
    jobs = conn.execute("SELECT idx, job_id FROM jobs WHERE run = 1 ORDER BY idx").fetchall()
    attempts = conn.execute(
        "SELECT job, number, started_at, ended_at, exit_code, signal, outcome, reason, log_path, pgid"
        " FROM attempts WHERE run = 1").fetchall()
    transitions = conn.execute(
        "SELECT job, from_state, to_state, at, reason, actor FROM transitions WHERE run = 1 ORDER BY id"
    ).fetchall()
    assert len(jobs) == JOBS_PER_RUN and state == "SUCCESS", "the template run must succeed"
    last_job = JOBS_PER_RUN - 1
    # A minute apart in id order, all before the template run (id 1).
    start = t0 - (runs + 1) * 60_000

    def runs_rows():
        for rid in range(2, runs + 1):
            shift = start + rid * 60_000 - t0
            state = outcome(rid)
            code = {"SUCCESS": 0, "FAILED": 1, "CANCELLED": 130}[state]
            yield (rid, PIPELINES[rid % 3], file, digest, state, t0 + shift, t1 + shift, code,
                   host, user, pid, version)

    def plans_rows():
        for rid in range(2, runs + 1):
            yield rid, plan

    def jobs_rows():
        for rid in range(2, runs + 1):
            for idx, job_id in jobs:
                yield rid, idx, job_id

    def attempts_rows():
        for rid in range(2, runs + 1):
            shift = start + rid * 60_000 - t0
            state = outcome(rid)
            for job, number, started, ended, code, sig, out, reason, log, pgid in attempts:
                if job == last_job and state != "SUCCESS":
                    out, code, reason = state, (1 if state == "FAILED" else None), (
                        "exit code 1" if state == "FAILED" else "")
                yield (rid, job, number, started + shift, ended + shift, code, sig, out, reason,
                       log.replace("/1/", f"/{rid}/"), pgid)

    def transitions_rows():
        for rid in range(2, runs + 1):
            shift = start + rid * 60_000 - t0
            state = outcome(rid)
            for n, (job, frm, to, at, reason, actor) in enumerate(transitions, 1):
                if job == last_job and frm == "RUNNING" and state != "SUCCESS":
                    to, reason = state, ("exit code 1" if state == "FAILED" else "interrupted")
                yield (rid << 32) + n, rid, n, job, frm, to, at + shift, reason, actor

    # One transaction; no journal while building (a crash here only loses the bench's file).
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (id, name, file, digest, state, started_at, ended_at,"
        " exit_code, host, user, pid, exe_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        runs_rows())
    conn.executemany("INSERT INTO plans (run, json) VALUES (?,?)", plans_rows())
    conn.executemany("INSERT INTO jobs (run, idx, job_id) VALUES (?,?,?)", jobs_rows())
    conn.executemany(
        "INSERT INTO attempts (run, job, number, started_at, ended_at, exit_code, signal, outcome,"
        " reason, log_path, pgid) VALUES (?,?,?,?,?,?,?,?,?,?,?)", attempts_rows())
    conn.executemany(
        "INSERT INTO transitions (seq, run, id, job, from_state, to_state, at, reason, actor)"
        " VALUES (?,?,?,?,?,?,?,?,?)", transitions_rows())
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = WAL")  # as exe leaves it
    conn.close()
    return db


def middle(db: str) -> str:
    """The start of the history's middle run, as `exe runs --until` reads a UTC time."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    (ms,) = conn.execute("SELECT started_at FROM runs ORDER BY started_at"
                         " LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM runs)").fetchone()
    conn.close()
    return time.strftime("%Y-%m-%dT%H:%M", time.gmtime(ms / 1000))


def listing_ok(rc: int, out: str):
    """`exe runs` prints a header and 20 runs."""
    if rc != 0:
        return f"exit code {rc}"
    rows = [line for line in out.splitlines() if line.strip()]
    if len(rows) != 21 or not rows[0].startswith("RUN"):
        return f"expected a header and 20 runs, got {len(rows)} lines"
    return None


def run(exe: str, work: str, quick: bool, runs: Optional[int]) -> list[str]:
    """Builds both histories, times the listings (exactly `runs` times each if given), prints
    the section; returns failures."""
    big_runs = 2_000 if quick else 50_000
    t0 = time.perf_counter()
    big = build(exe, os.path.join(work, "runs-history-big"), big_runs)
    built = time.perf_counter() - t0
    small = build(exe, os.path.join(work, "runs-history-small"), SMALL)
    print(f"built a {big_runs:,}-run history ({big_runs * JOBS_PER_RUN:,} job rows, "
          f"{os.path.getsize(big) / 1e6:.0f} MB) in {built:.1f} s", file=sys.stderr)

    variants = ("", " --name nightly", " --status FAILED", " --until <middle>")
    cmds = []
    for size, db in ((big_runs, big), (SMALL, small)):
        for label in variants:
            flags = label.split()
            if "<middle>" in flags:  # the start time of the middle run: half the runs are older
                flags[-1] = middle(db)
            cmds.append(bench.Cmd(f"exe runs{label}: 20 of {size:,}", [exe, "--db", db, "runs", *flags],
                                  check=listing_ok))
    group = bench.Group(NAME, cmds, budget_s=4.0, max_runs=200, warmups=3)
    print(f"measuring {NAME} ...", file=sys.stderr, flush=True)
    try:
        results = bench.measure(group, quick, runs)
    except bench.CommandFailed as e:
        print(f"bench: FAILED {e}", file=sys.stderr)
        return [str(e)]

    print()
    print(f"exe runs over a history ({big_runs:,} runs with {big_runs * JOBS_PER_RUN:,} job rows, "
          f"against {SMALL:,} runs; interleaved):")
    rows = [[r.cmd.name, bench.ms(r.median), bench.ms(r.min), str(len(r.wall)),
             f"{r.peak_rss / 1024:.1f} MiB"] for r in results]
    print(bench.table(rows, ["name", "median", "min", "runs", "peak RSS"]))
    by_name = {r.cmd.name: r for r in results}
    print()
    print("Verdicts" + (" (quick mode: one run each, a smaller history; indicative only)" if quick else "") + ":")
    plain = by_name[f"exe runs: 20 of {big_runs:,}"]
    met = plain.median <= LIMIT_S
    print(f"  {'MET' if met else 'MISSED':6} exe runs, 20 of {big_runs:,} <= 50 ms: median {bench.ms(plain.median)}")
    for label in variants:
        b, s = by_name[f"exe runs{label}: 20 of {big_runs:,}"], by_name[f"exe runs{label}: 20 of {SMALL:,}"]
        print(f"         exe runs{label}: {big_runs:,} runs / {SMALL:,} runs = {b.median / s.median:.2f}x "
              f"({bench.ms(b.median)} vs {bench.ms(s.median)})")
    return []
