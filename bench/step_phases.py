#!/usr/bin/env python3
"""Where the history's cost falls in each step of a chain: timed by the kernel.

A wall-clock ratio on this kind of VM moves by several percent from one minute to the
next; this splits each step of an `exe apply` of a chain into three phases, from the
kernel's own timestamps of the job processes (`perf record` of the scheduler's fork, exec
and exit tracepoints), so a change of 10 µs a step shows:

- gap: a job's exit to the next job's fork (exe reaps, records, opens the log, spawns);
- spawn: that fork to the job's exec;
- job: the exec to the job's exit.

The same binary built with `no_store.patch` (see store_cost.py) runs with and without its
store, interleaved, each on a folder of its own; each run gives the median of its steps,
and the table shows the median of those over the rounds. Tracing slows every step, and not
by the same amount with and without the store: compare variants with it, and judge the
target with store_cost.py (see docs/performance.md). Needs `perf` and permission to
record tracepoints (root, or kernel.perf_event_paranoid <= -1). Not part of `bench/run`.

    python3 bench/step_phases.py [--exe PATCHED_EXE] [--jobs 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import gen  # noqa: E402
import store_cost  # noqa: E402

EVENTS = "sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit"
PHASES = ("gap", "spawn", "job")
EVENT = re.compile(r"\s(\d+\.\d+): sched:sched_process_(fork|exec|exit): (.*)")
PID = {"fork": re.compile(r"child_pid=(\d+)"), "exec": re.compile(r" pid=(\d+)"),
       "exit": re.compile(r" pid=(\d+)")}


def phases(data: str) -> dict[str, float]:
    """The median of each phase over the steps of one recorded run, in µs."""
    script = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True,
                            check=True).stdout
    seen: dict[str, dict[int, float]] = {"fork": {}, "exec": {}, "exit": {}}
    for line in script.splitlines():
        m = EVENT.search(line)
        if m:
            kind = m.group(2)
            pid = int(PID[kind].search(m.group(3)).group(1))
            seen[kind].setdefault(pid, float(m.group(1)))
    # The jobs: forked, exec'd and exited. exe's own threads never exec.
    jobs = sorted((t, pid) for pid, t in seen["fork"].items()
                  if pid in seen["exec"] and pid in seen["exit"])
    steps: dict[str, list[float]] = {name: [] for name in PHASES}
    previous_exit = None
    for forked, pid in jobs:
        if previous_exit is not None:
            steps["gap"].append(forked - previous_exit)
        steps["spawn"].append(seen["exec"][pid] - forked)
        steps["job"].append(seen["exit"][pid] - seen["exec"][pid])
        previous_exit = seen["exit"][pid]
    return {name: statistics.median(v) * 1e6 for name, v in steps.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exe", help="an exe built with no_store.patch (default: build one)")
    parser.add_argument("--jobs", type=int, default=200, help="length of the chain")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not shutil.which("perf"):
        print("step_phases: needs `perf` (linux-perf / linux-tools)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="exe-phases.") as work:
        exe = args.exe
        if not exe:
            print("building the exe without a store (release profile) ...", file=sys.stderr)
            exe, why = store_cost.build(work)
            if not exe:
                print(f"step_phases: {why}", file=sys.stderr)
                return 2
        arms = {"with store": {}, "without store": {"EXE_BENCH_NO_STORE": "1"}}
        for i in range(len(arms)):
            bench.run_workload(os.path.join(work, f"arm-{i}"), gen.chain(args.jobs), 8)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in arms}
        for r in range(args.rounds + 1):  # the first round warms up, untimed
            for i, (name, env) in enumerate(arms.items()):
                data = os.path.join(work, f"perf-{i}.data")
                recorded = subprocess.run(
                    ["perf", "record", "-q", "-e", EVENTS, "-o", data, exe, "apply",
                     "--output", "quiet", "pipeline.toml"],
                    cwd=os.path.join(work, f"arm-{i}"), env=dict(os.environ, **env),
                    capture_output=True, text=True)
                if recorded.returncode != 0:
                    print(f"step_phases: `perf record` of exe apply failed:\n"
                          f"{recorded.stderr}", file=sys.stderr)
                    return 1
                if r:
                    results[name].append(phases(data))
    rows = []
    for name, runs in results.items():
        rows.append([name] + [f"{statistics.median(run[p] for run in runs):.0f} µs"
                              for p in PHASES])
    print(f"{args.jobs}-long chain, {args.rounds} rounds; per step, median of the runs' "
          "medians")
    print(bench.table(rows, ["", "gap (exit to next fork)", "spawn (fork to exec)",
                             "job (exec to exit)"]))
    with_store, without = ([statistics.median(run[p] for run in results[n]) for p in PHASES]
                           for n in arms)
    print("the store adds: " + ", ".join(f"{p} {a - b:+.0f} µs"
                                         for p, a, b in zip(PHASES, with_store, without)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
