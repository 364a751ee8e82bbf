"""What the history costs: the engine workloads with and without the store (issue 4).

The target: `exe apply` of the engine workloads (bench.RUN_WORKLOADS) with history
on within 10% of their time without the store. exe has no way to run without its
history, so this builds one: `no_store.patch` makes `Store::start_run`, `fold`,
`heartbeat` and `finish_run` return at once (`start_run` with a journal without a file,
whose appends do nothing), when EXE_BENCH_NO_STORE is set (a new run id
each time, so each run still writes its logs to a new folder, as with the store).
The patched binary is built from this source tree with the release profile, and the
same binary is timed with and without the variable, interleaved run by run, with
make as the usual yardstick. Nothing else differs between the two.

Quick mode only checks that the patch still applies (building it takes minutes).
Registered in bench.py's list of workload modules (`run()`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional

import bench

NAME = "store cost"
TARGET = 1.10  # with the store / without, at most
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCH = os.path.join(ROOT, "bench", "no_store.patch")
# What a build needs; the rest of the tree (tests, docs, bench) is not copied.
SOURCES = ("Cargo.toml", "Cargo.lock", "src", "templates", "schemas")


def build(work: str) -> tuple[Optional[str], str]:
    """The patched exe, built in `work`: (path, "") or (None, why not)."""
    tree = os.path.join(work, "no-store-src")
    os.makedirs(tree)
    for name in SOURCES:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(tree, name))
        elif os.path.exists(src):
            shutil.copy2(src, tree)
    patched = subprocess.run(["git", "apply", PATCH], cwd=tree, capture_output=True, text=True)
    if patched.returncode != 0:
        return None, f"no_store.patch does not apply: {patched.stdout}{patched.stderr}"
    target = os.path.join(work, "no-store-target")
    built = subprocess.run(["cargo", "build", "--release", "--locked", "-q"], cwd=tree,
                           env=dict(os.environ, CARGO_TARGET_DIR=target),
                           capture_output=True, text=True)
    if built.returncode != 0:
        return None, f"building the patched exe failed:\n{built.stderr}"
    return os.path.join(target, "release", "exe"), ""


def check_patch() -> list[str]:
    checked = subprocess.run(["git", "apply", "--check", PATCH], cwd=ROOT,
                             capture_output=True, text=True)
    if checked.returncode != 0:
        return [f"{NAME}: no_store.patch does not apply to src/: {checked.stdout}{checked.stderr}"]
    print(f"\n{NAME}: no_store.patch applies (quick mode does not build or time it)")
    return []


def run(exe: str, work: str, quick: bool, runs: Optional[int]) -> list[str]:
    """Builds the patched binary and times it with and without the store (exactly `runs`
    times each if given); prints the section; returns failures. `exe` is not used: the
    comparison is within the patched binary."""
    del exe
    if quick:
        return check_patch()
    print("\nbuilding the exe without a store (release profile) ...", flush=True)
    patched, why = build(work)
    if not patched:
        return [f"{NAME}: {why}"]
    # The build has just written a whole target folder (about 1 GB). Put it on disk before
    # timing: its writeback would otherwise compete with the store's own writes and
    # fsyncs, which only the runs with the store make.
    os.sync()
    make = shutil.which("make")
    rows = []
    for i, (name, make_jobs, parallel, _) in enumerate(bench.RUN_WORKLOADS):
        jobs = make_jobs()
        folder = os.path.join(work, f"store-{i}")
        bench.run_workload(folder, jobs, parallel)
        argv = [patched, "apply", "--output", "quiet", "pipeline.toml"]
        cmds = [bench.Cmd(f"with store: {name}", argv, cwd=folder, jobs=len(jobs)),
                bench.Cmd(f"without store: {name}", argv, cwd=folder, jobs=len(jobs),
                          env=dict(os.environ, EXE_BENCH_NO_STORE="1"))]
        if make:
            cmds.append(bench.Cmd(f"make: {name}", [make, "-s", f"-j{parallel}"], cwd=folder,
                                  notes="baseline", jobs=len(jobs)))
        slow = len(jobs) >= 2_000 or "sleep" in name
        # Nine timed runs even for the 2,000-job workloads: their medians of five moved by up
        # to 10% between runs minutes apart on this VM, with either arm. The sleep workloads
        # barely vary.
        fewest = 3 if "sleep" in name else 9
        group = bench.Group(f"store: {name}", cmds, budget_s=8.0 if slow else 4.0,
                            min_runs=fewest, max_runs=100, warmups=1 if slow else 2)
        try:
            results = bench.measure(group, False, runs)
        except bench.CommandFailed as e:
            return [f"{NAME}: {e}"]
        rows.append((name, len(jobs), results))
    print(f"\n{NAME}: exe apply with and without the history, same patched binary "
          f"(medians, interleaved; target: with / without <= {TARGET:.2f})")
    table = []
    verdicts = []
    for name, jobs, results in rows:
        with_store, without = results[0], results[1]
        ratio = with_store.median / without.median
        per_job = (with_store.median - without.median) / jobs
        line = [name, f"{with_store.median * 1000:.1f} ms", f"{without.median * 1000:.1f} ms",
                f"{ratio:.3f}", f"{per_job * 1e6:.0f} µs", str(len(with_store.wall))]
        if len(results) > 2:
            line.append(f"{with_store.median / results[2].median:.2f} / "
                        f"{without.median / results[2].median:.2f}")
        table.append(line)
        verdicts.append((name, ratio <= TARGET, ratio))
    header = ["workload", "with store", "without", "ratio", "store per job", "runs"]
    if make:
        header.append("vs make (with / without)")
    print(bench.table(table, header))
    for name, ok, ratio in verdicts:
        print(f"  {'met   ' if ok else 'MISSED'} {name}: {ratio:.3f} (target <= {TARGET:.2f})")
    return []
