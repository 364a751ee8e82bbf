"""`exe plan` on a pipeline whose jobs have many unchanged input files (issue 5).

Ten jobs, each with `inputs` matching its own tenth of the files (20,000 in
full mode, 2,000 in quick mode), all recorded as succeeded by one `exe apply`.
Every plan must find all ten jobs up to date, so it fingerprints every file:

- warm: the hash cache as the previous plan left it (one `stat` per file);
- cold: the hash cache deleted before every run (every file read and hashed;
  the operating system's page cache stays warm);
- `--force`: the same plan without fingerprints, the fixed cost around them.

The files are left quiet past the cache's 2-second racy window before anything
is timed, as unchanged files are in real use.

Registered in bench.py's list of workload modules (`run()`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Optional

import bench

NAME = "plan: unchanged inputs"
JOBS = 10
FOLDERS_PER_JOB = 10
TARGET_S = 0.200  # issue 5: warm plan with 20,000 unchanged inputs under 200 ms
RACY_S = 2.0  # src/fingerprint/cache.rs RACY


def files_for(quick: bool) -> int:
    return 2_000 if quick else 20_000


def make(folder: str, files: int) -> None:
    """The data files and the pipeline: job jN reads data/dN?/*.txt."""
    per_folder = files // (JOBS * FOLDERS_PER_JOB)
    for j in range(JOBS):
        for k in range(FOLDERS_PER_JOB):
            d = os.path.join(folder, "data", f"d{j}{k}")
            os.makedirs(d)
            for i in range(per_folder):
                with open(os.path.join(d, f"f{i:04}.txt"), "w") as f:
                    f.write(f"row {j} {k} {i}\n" * 8)
    with open(os.path.join(folder, "pipeline.toml"), "w") as f:
        for j in range(JOBS):
            f.write(f'[jobs.j{j}]\ncommand = "true"\ninputs = ["data/d{j}?/*.txt"]\n\n')


def all_up_to_date(rc: int, out: str):
    if rc != 0:
        return f"exit code {rc}"
    if f"Plan: 0 to run, {JOBS} skipped." not in out:
        return "expected every job up to date (a plan that hashed nothing measures nothing)"
    return None


def run(exe: str, work: str, quick: bool, runs: Optional[int]) -> list[str]:
    """Makes the workload and its history, times the plans (exactly `runs` times each if
    given), prints the section; returns failures."""
    files = files_for(quick)
    folder = os.path.join(work, "inputs")
    os.makedirs(folder)
    make(folder, files)
    applied = subprocess.run([exe, "apply", "-q", "pipeline.toml"], cwd=folder,
                             capture_output=True, text=True)
    if applied.returncode != 0:
        return [f"{NAME}: exe apply failed:\n{applied.stderr}"]
    # Unchanged files are older than the racy window; only then does a hash stay cached.
    time.sleep(RACY_S + 0.2)
    cache = os.path.join(folder, ".exe", "history.db-hashes")
    subprocess.run([exe, "plan", "pipeline.toml"], cwd=folder, capture_output=True)
    if not os.path.exists(cache):
        return [f"{NAME}: the first plan left no hash cache"]

    def drop_cache() -> None:
        if os.path.exists(cache):
            os.remove(cache)

    plan = [exe, "plan", "pipeline.toml"]
    n = f"{files:,}"
    warm, cold, base = (f"plan: {n} unchanged inputs, warm cache",
                        f"plan: {n} unchanged inputs, cold cache",
                        f"plan --force: {n} inputs, no fingerprints")
    cmds = [
        bench.Cmd(warm, plan, cwd=folder, check=all_up_to_date),
        bench.Cmd(cold, plan, cwd=folder, before=drop_cache, check=all_up_to_date),
        bench.Cmd(base, plan + ["--force"], cwd=folder),
    ]
    group = bench.Group(NAME, cmds, budget_s=4.0, min_runs=5, max_runs=100, warmups=2)
    print(f"measuring {NAME} ...", file=sys.stderr, flush=True)
    try:
        results = {r.cmd.name: r for r in bench.measure(group, quick, runs)}
    except bench.CommandFailed as e:
        print(f"bench: FAILED {e}", file=sys.stderr)
        return [str(e)]

    print()
    print(f"exe plan with {n} unchanged input files (cold: the hash cache deleted before each"
          " run; --force: no fingerprints):")
    rows = [[r.cmd.name, bench.ms(r.median), bench.ms(r.min), str(len(r.wall)),
             f"{r.peak_rss / 1024:.1f} MiB"] for r in results.values()]
    print(bench.table(rows, ["name", "median", "min", "runs", "peak RSS"]))
    print()
    print("Verdicts" + (" (quick mode: one run each, 2,000 files; indicative only)" if quick else "") + ":")
    median = results[warm].median
    print(f"  {'MET' if median < TARGET_S else 'MISSED':6} warm plan with {n} unchanged inputs"
          f" < 200 ms: median {bench.ms(median)}")
    return []
