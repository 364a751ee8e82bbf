"""The exe benchmark suite: generate workloads, time them, print a table.

Run through `bench/run`, which builds the binary and makes the work folder.
Standard library only (python3 >= 3.9, Linux).

Structure, for extending it:
- `gen.py` makes the workload files (one generator module);
- `measure()` is the one measuring function: it takes a group of commands and
  runs them interleaved (A B C A B C ...), so a comparison baseline such as
  make sees the same machine state as exe;
- `suite()` lists the groups; add one there (e.g. `exe apply` vs `make -j` on a
  chain, with a `before` hook that removes out/ before every run);
- `report()` prints the table, the derived figures and the verdicts.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402
import watch_latency  # noqa: E402

sys.modules.setdefault("bench", sys.modules[__name__])  # workload modules `import bench`
import runs_history  # noqa: E402
import torture  # noqa: E402
import inputs  # noqa: E402
import peers  # noqa: E402
import store_cost  # noqa: E402

# ------------------------------------------------------------------ model


@dataclass
class Cmd:
    """One command to time."""

    name: str  # the row's name in the table; unique
    argv: list[str]
    cwd: Optional[str] = None
    env: Optional[dict] = None  # None: inherit
    before: Optional[Callable[[], None]] = None  # untimed, before every run
    # Called once with (exit code, combined output) of the first run; returns
    # an error message, or None if the output is as expected.
    check: Optional[Callable[[int, str], Optional[str]]] = None
    notes: str = ""
    jobs: int = 0  # pipeline size, for per-job figures (0: not a pipeline)


@dataclass
class Group:
    """Commands measured together, interleaved run by run."""

    name: str
    cmds: list[Cmd]
    budget_s: float = 3.0  # full mode: aim for this much timed wall time
    min_runs: int = 5
    max_runs: int = 300
    warmups: int = 3


@dataclass
class Result:
    cmd: Cmd
    wall: list[float] = field(default_factory=list)  # seconds, one per timed run
    rss_kib: list[int] = field(default_factory=list)  # KiB, max RSS of each warm-up run (rss_run)
    cpu: list[float] = field(default_factory=list)  # seconds, user + system, one per timed run

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0

    @property
    def min(self) -> float:
        return min(self.wall)

    @property
    def peak_rss(self) -> int:
        return max(self.rss_kib)


class CommandFailed(Exception):
    pass


# -------------------------------------------------------------- measuring

DEVNULL = os.open(os.devnull, os.O_RDWR)
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
if os.environ.get("BENCH_NO_GNU_TIME"):  # exercise the fallback below
    GNU_TIME = None

# Fallback when GNU time is missing: a small python3 that times the command
# and prints "<wall seconds> <max RSS KiB>" from getrusage(RUSAGE_CHILDREN).
# Its figure is an upper bound: a child starts from a copy of the python
# process, so ru_maxrss is at least python's own RSS (about 10 MiB).
RSS_HELPER = """\
import resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[2:]).returncode
t1 = time.perf_counter()
with open(sys.argv[1], "w") as f:
    f.write(f"{t1 - t0} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n")
sys.exit(rc)
"""


def _spawn(argv: list[str], cmd: Cmd, out_fd: int) -> tuple[float, int, float]:
    """Spawn argv in cmd's folder and environment, wait; (wall seconds, rc, CPU seconds).

    CPU is user + system time from wait4: the command's own and that of every process
    it waited for (a runner's jobs included).

    posix_spawn (vfork and exec) keeps the measuring process's own cost in the
    wall time as small as it can be; /bin/true in the startup group shows it.
    """
    actions = [
        (os.POSIX_SPAWN_DUP2, DEVNULL, 0),
        (os.POSIX_SPAWN_DUP2, out_fd, 1),
        (os.POSIX_SPAWN_DUP2, out_fd, 2),
    ]
    env = cmd.env if cmd.env is not None else os.environ
    prog = argv[0] if "/" in argv[0] else (shutil.which(argv[0]) or argv[0])
    old = os.getcwd() if cmd.cwd else None
    if cmd.cwd:
        os.chdir(cmd.cwd)  # posix_spawn has no chdir action before Python 3.13
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(prog, argv, env, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        t1 = time.perf_counter()
    finally:
        if old:
            os.chdir(old)
    return t1 - t0, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def timed_run(cmd: Cmd) -> tuple[float, int, float]:
    """A timed run: (wall seconds, exit code, CPU seconds); output discarded."""
    if cmd.before:
        cmd.before()
    return _spawn(cmd.argv, cmd, DEVNULL)


def rss_run(cmd: Cmd) -> tuple[float, int, int, str, float]:
    """A run that also reads peak RSS and keeps the output:
    (wall seconds, max RSS KiB, exit code, stdout and stderr, CPU seconds).

    Under `/usr/bin/time -f '%e %M'` when present; wall time is still
    perf_counter around it (GNU time's %e has 10 ms resolution), so it
    includes time(1)'s own start, a fraction of a millisecond. Without GNU
    time, through RSS_HELPER, which times the command itself.
    """
    import tempfile

    if cmd.before:
        cmd.before()
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile("r") as stats:
        if GNU_TIME:
            argv = [GNU_TIME, "-f", "%e %M", "-o", stats.name, *cmd.argv]
        else:
            argv = [sys.executable, "-S", "-c", RSS_HELPER, stats.name, *cmd.argv]
        wall, rc, cpu = _spawn(argv, cmd, out.fileno())
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
        # GNU time puts "Command exited with non-zero status N" before the figures.
        last = (stats.read().strip().splitlines() or ["0 0"])[-1].split()
    if not GNU_TIME:
        wall = float(last[0])
    return wall, int(float(last[1])), rc, output, cpu


def measure(group: Group, quick: bool, fixed_runs: Optional[int] = None) -> list[Result]:
    """Time every command of `group`, interleaved: A B C A B C ...

    Warm-up runs read peak RSS (`rss_run`); the first one also checks the
    exit code and output (`Cmd.check`) and raises CommandFailed. Timed runs
    (`timed_run`) give the wall times; a non-zero exit there fails too.
    Quick mode: each command runs exactly once, an `rss_run` that counts as
    its one timed run. Full mode: `warmups` rounds, then enough timed rounds
    to fill `budget_s` (at least `min_runs`, at most `max_runs`), or exactly
    `fixed_runs`.
    """
    results = [Result(c) for c in group.cmds]

    round_time = 0.0
    for i in range(1 if quick else max(1, group.warmups)):
        round_time = 0.0
        for r in results:
            wall, rss, rc, out, cpu = rss_run(r.cmd)
            err = r.cmd.check(rc, out) if r.cmd.check else (f"exit code {rc}" if rc else None)
            if err:
                shown = out if len(out) < 4000 else out[:4000] + "\n[... cut]"
                raise CommandFailed(f"{r.cmd.name}: {err}\n$ {' '.join(r.cmd.argv)}\n{shown}")
            r.rss_kib.append(rss)
            round_time += wall
            if quick:
                r.wall.append(wall)
                r.cpu.append(cpu)
    if quick:
        return results

    if fixed_runs:
        runs = fixed_runs
    else:
        runs = int(group.budget_s / max(round_time, 1e-6))
        runs = max(group.min_runs, min(group.max_runs, runs))
    for _ in range(runs):
        for r in results:
            wall, rc, cpu = timed_run(r.cmd)
            if rc != 0:
                raise CommandFailed(f"{r.cmd.name}: exit code {rc} in a timed run")
            r.wall.append(wall)
            r.cpu.append(cpu)
    return results


# ------------------------------------------------------------------ suite


def lint_clean(rc: int, out: str) -> Optional[str]:
    """A generated pipeline must lint with exit 0 and no diagnostics.

    `exe lint` ends with a summary such as `1 file: 0 errors, 0 warnings`;
    when it is there both counts must be 0. Without it, any line that starts
    like a diagnostic (`error`, `warning`) counts as one.
    """
    if rc != 0:
        return f"exe lint exited {rc}; generated pipelines must lint clean"
    m = re.search(r"(\d+) errors?, (\d+) warnings?", out)
    if m:
        if m.group(1) != "0" or m.group(2) != "0":
            return f"exe lint reported {m.group(0)} on a generated pipeline"
    elif re.search(r"^\s*(error|warning)\b", out, re.I | re.M):
        return "exe lint reported diagnostics on a generated pipeline"
    return None


SIZES = (200, 2_000, 100_000)


def suite(exe: str, work: str) -> list[Group]:
    """Generate the workloads into `work` and return the groups to measure."""
    files = {}
    for n in SIZES:
        model = gen.dag_pipeline(n)
        files[(n, "toml")] = gen.write(model, os.path.join(work, f"dag-{n}.toml"))
        if n == 2_000:
            for fmt in ("yaml", "json"):
                files[(n, fmt)] = gen.write(model, os.path.join(work, f"dag-{n}.{fmt}"))

    groups: list[Group] = []

    # Process start: exe against make and the floor of spawning any process.
    startup = [Cmd("exe --version", [exe, "--version"])]
    make = shutil.which("make")
    if make:
        startup.append(Cmd("make --version", [make, "--version"], notes="baseline"))
    true = "/bin/true" if os.path.exists("/bin/true") else shutil.which("true")
    startup.append(Cmd("/bin/true", [true], notes="process-start floor"))
    groups.append(Group("startup", startup, budget_s=3.0, max_runs=500, warmups=5))

    def lint(n: int, fmt: str, **kw) -> Group:
        path = files[(n, fmt)]
        size = os.path.getsize(path)
        c = Cmd(
            f"exe lint {n:,} jobs ({fmt})",
            [exe, "lint", path],
            cwd=work,
            check=lint_clean,
            jobs=n,
            notes=f"{size / 1e6:.2f} MB",
        )
        return Group(c.name, [c], **kw)

    groups.append(lint(200, "toml"))
    groups.append(lint(2_000, "toml"))
    groups.append(lint(2_000, "yaml"))
    groups.append(lint(2_000, "json"))
    groups.append(lint(100_000, "toml", budget_s=10.0, min_runs=5, max_runs=50, warmups=1))

    def plan(n: int, **kw) -> Group:
        c = Cmd(f"exe plan {n:,} jobs", [exe, "plan", files[(n, "toml")]], cwd=work, jobs=n)
        return Group(c.name, [c], **kw)

    groups.append(plan(200))
    groups.append(plan(2_000))
    groups.append(plan(100_000, budget_s=10.0, min_runs=5, max_runs=50, warmups=1))
    groups += apply_groups(exe, work, make)
    return groups


# (name, jobs, parallelism, target ratio exe/make)
RUN_WORKLOADS = (
    ("200 independent true, 8 at once", lambda: gen.independent(200), 8, 1.25),
    ("200-long chain", lambda: gen.chain(200), 8, 1.25),
    ("500-job DAG, 8 at once", lambda: gen.dag(500), 8, 1.25),
    ("2,000 independent true, 8 at once", lambda: gen.independent(2_000), 8, 1.25),
    ("2,000-long chain", lambda: gen.chain(2_000), 8, 1.25),
    ("40 x sleep 0.2, 8 at once", lambda: gen.independent(40, "sleep 0.2"), 8, 1.05),
    ("sleep 2 + 12 x sleep 0.2, 4 at once",
     lambda: [("long", "sleep 2", [])] + gen.independent(12, "sleep 0.2"), 4, 1.05),
)


def run_workload(folder: str, jobs: list, parallel: int) -> None:
    """The folder of one engine workload: `pipeline.toml` for exe, a `Makefile` for make."""
    os.makedirs(folder)
    with open(os.path.join(folder, "pipeline.toml"), "w") as f:
        f.write(gen.exe_pipeline(jobs, parallel))
    with open(os.path.join(folder, "Makefile"), "w") as f:
        f.write(gen.makefile(jobs))


def apply_groups(exe: str, work: str, make: Optional[str]) -> list[Group]:
    """`exe apply` against `make -j` on the same jobs, interleaved run by run."""
    groups = []
    for i, (name, make_jobs, parallel, _) in enumerate(RUN_WORKLOADS):
        jobs = make_jobs()
        folder = os.path.join(work, f"run-{i}")
        run_workload(folder, jobs, parallel)
        # Logs stay between runs, as they do for users (each run writes its own folder);
        # deleting them every run makes ext4 slow down inode creation for recently freed ones.
        cmds = [Cmd(f"apply: {name}", [exe, "apply", "--output", "quiet", "pipeline.toml"], cwd=folder,
                    jobs=len(jobs))]
        if make:
            cmds.append(Cmd(f"make: {name}", [make, "-s", f"-j{parallel}"], cwd=folder,
                            notes="baseline", jobs=len(jobs)))
        floor = peers.floor(jobs, parallel, folder)
        if floor:
            tool, argv = floor
            cmds.append(Cmd(f"{tool}: {name}", argv, cwd=folder, notes="floor", jobs=len(jobs)))
        for peer in peers.PEERS:
            if shutil.which(peer):
                argv = getattr(peers, peer)(jobs, parallel, folder)
                cmds.append(Cmd(f"{peer}: {name}", argv, cwd=folder, notes="peer", jobs=len(jobs)))
        slow = len(jobs) >= 2_000 or "sleep" in name
        # Five timed runs even for the 2,000-job workloads: a median of three is one
        # disturbed run away from another verdict on this VM. The sleep workloads barely vary.
        fewest = 3 if "sleep" in name else 5
        groups.append(Group(f"apply: {name}", cmds, budget_s=8.0 if slow else 4.0,
                            min_runs=fewest, max_runs=100, warmups=1 if slow else 2))
    return groups


def sweep(exe: str, work: str) -> list[Group]:
    """Optional (`--sweep`): exe lint on TOML files of growing size."""
    groups = []
    for n in (1, 200, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000):
        path = gen.write(gen.dag_pipeline(n), os.path.join(work, f"sweep-{n}.toml"))
        c = Cmd(f"sweep: exe lint {n:,} job{'' if n == 1 else 's'}", [exe, "lint", path], cwd=work,
                check=lint_clean, jobs=n)
        groups.append(Group(c.name, [c], budget_s=3.0, min_runs=3, max_runs=100, warmups=1))
    return groups


# ----------------------------------------------------------------- report


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.2f} us"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    right = {1, 2, 3, 4}

    def fmt(r):
        cells = [r[i].rjust(widths[i]) if i in right else r[i].ljust(widths[i]) for i in range(len(r))]
        return "  ".join(cells).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def report(results: dict[str, Result], quick: bool) -> None:
    rows = []
    for r in results.values():
        notes = r.cmd.notes
        if r.cmd.jobs:
            per_job = f"{us(r.median / r.cmd.jobs)}/job"
            notes = f"{notes}, {per_job}" if notes else per_job
        rows.append([r.cmd.name, ms(r.median), ms(r.min), ms(r.median_cpu), str(len(r.wall)),
                     f"{r.peak_rss / 1024:.1f} MiB", notes])
    print(table(rows, ["name", "median", "min", "CPU", "runs", "peak RSS", "notes"]))

    get = results.get
    exe_v, make_v, floor = get("exe --version"), get("make --version"), get("/bin/true")
    if exe_v and (make_v or floor):
        print()
        print("Startup (medians, same interleaved rounds):")
    if exe_v and make_v:
        print(f"  exe/make ratio: {exe_v.median / make_v.median:.2f}  "
              f"(exe {ms(exe_v.median)}, make {ms(make_v.median)})")
    if exe_v and floor:
        print(f"  exe above the process-start floor: {ms(exe_v.median - floor.median)}  "
              f"(/bin/true {ms(floor.median)})")

    lints = {r.cmd.jobs: r for r in results.values()
             if r.cmd.name.startswith("exe lint") and r.cmd.name.endswith("(toml)")}
    if lints:
        print()
        print("Lint scaling (TOML; per-job cost = median / jobs):")
        for n in sorted(lints):
            r = lints[n]
            print(f"  {n:>7,} jobs  {ms(r.median):>12}  {us(r.median / n):>10}/job")
        if 2_000 in lints and 100_000 in lints:
            a, b = lints[2_000], lints[100_000]
            marginal = (b.median - a.median) / (100_000 - 2_000)
            print(f"  marginal cost 2,000 -> 100,000: {us(marginal)}/job")

    apply_rows = [(name, get(f"apply: {name}"), get(f"make: {name}"), target)
                  for name, _, _, target in RUN_WORKLOADS]
    apply_rows = [row for row in apply_rows if row[1]]
    if apply_rows:
        print()
        print("exe apply vs make -j (medians, same interleaved rounds):")
        for name, exe_r, make_r, _ in apply_rows:
            if make_r:
                print(f"  {name:38} exe {ms(exe_r.median):>11}  make {ms(make_r.median):>11}"
                      f"  ratio {exe_r.median / make_r.median:.2f}")
        others = [(name, r, make_r) for name, _, make_r, _ in apply_rows for r in results.values()
                  if r.cmd.notes in ("floor", "peer") and r.cmd.name.endswith(f": {name}")]
        if others:
            print()
            print("The same workloads with the floor (xargs or a bash loop) and the peers on PATH"
                  " (median, and ratio to make):")
            for name, r, make_r in others:
                ratio = f"  ratio {r.median / make_r.median:.2f}" if make_r else ""
                print(f"  {r.cmd.name:50} {ms(r.median):>11}{ratio}")
        for line in peers.missing():
            print(f"  skipped: {line}")

    verdicts = []  # (label, met, detail)
    for name, exe_r, make_r, target in apply_rows:
        if make_r:
            ratio = exe_r.median / make_r.median
            verdicts.append((f"apply {name}: <= {target}x make", ratio <= target, f"{ratio:.2f}x"))
    big = get("apply: 2,000 independent true, 8 at once")
    if big:
        # peak_rss is in KiB; 20 MB = 20,000,000 bytes.
        verdicts.append(("peak RSS with 2,000 jobs <= 20 MB", big.peak_rss * 1024 <= 20_000_000,
                         f"{big.peak_rss * 1024 / 1e6:.1f} MB"))
    if exe_v:
        verdicts.append(("exe --version <= 2 ms", exe_v.median <= 0.002,
                         f"median {ms(exe_v.median)}"))
    for n, limit, label in ((200, 0.010, "lint 200 jobs <= 10 ms"),
                            (2_000, 0.050, "lint 2,000 jobs <= 50 ms")):
        if n in lints:
            verdicts.append((label, lints[n].median <= limit, f"median {ms(lints[n].median)}"))
    plans = {r.cmd.jobs: r for r in results.values() if r.cmd.name.startswith("exe plan")}
    for what, by_size in (("lint", lints), ("plan", plans)):
        if 2_000 in by_size and 100_000 in by_size:
            small = by_size[2_000].median / 2_000
            big = by_size[100_000].median / 100_000
            verdicts.append((f"{what} 100,000 jobs: per-job cost within 2x of the 2,000-job"
                             " per-job cost", big <= 2 * small,
                             f"{us(big)}/job vs {us(small)}/job = {big / small:.2f}x"))
    if verdicts:
        print()
        print("Verdicts" + (" (quick mode: one run each, indicative only)" if quick else "") + ":")
        for label, met, detail in verdicts:
            print(f"  {'MET' if met else 'MISSED':6} {label}: {detail}")


# ------------------------------------------------------------------- main


def header(exe: str, quick: bool) -> None:
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"exe benchmark suite ({'quick' if quick else 'full'} mode)")
    print(f"  binary:  {exe} ({version})")
    print(f"  host:    {platform.node()}, {os.cpu_count()} CPUs, {platform.platform()}")
    if load:
        print(f"  load:    {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min, at start)")
    print(f"  date:    {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    if GNU_TIME:
        print(f"  RSS:     {GNU_TIME} -f '%e %M' (max over the warm-up runs)")
    else:
        print("  RSS:     getrusage(RUSAGE_CHILDREN) in a python3 helper: an upper bound,"
              " it includes that python's own ~10 MiB")
    print("  wall:    time.perf_counter() around posix_spawn + wait, output to /dev/null")
    print()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", required=True, help="the exe binary to measure")
    p.add_argument("--work", required=True, help="empty folder for generated workloads")
    p.add_argument("--quick", action="store_true", help="run every workload once")
    p.add_argument("--runs", type=int, help="exactly this many timed runs per command")
    p.add_argument("--sweep", action="store_true",
                   help="also time exe lint on TOML files of growing size")
    p.add_argument("--only", help="only groups whose name contains this text")
    a = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep stdout and stderr in order in logs

    exe = os.path.abspath(a.exe)
    if not os.access(exe, os.X_OK):
        print(f"bench: no executable at {exe}", file=sys.stderr)
        return 2
    header(exe, a.quick)
    t0 = time.perf_counter()
    groups = suite(exe, a.work)
    if a.sweep:
        groups += sweep(exe, a.work)
    if a.only:
        groups = [g for g in groups if a.only in g.name]
    print(f"generated workloads in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    results: dict[str, Result] = {}
    failed = []
    for g in groups:
        print(f"measuring {g.name} ...", file=sys.stderr, flush=True)
        try:
            for r in measure(g, a.quick, a.runs):
                results[r.cmd.name] = r
        except CommandFailed as e:
            failed.append(str(e))
            print(f"bench: FAILED {e}", file=sys.stderr)
    if results:
        report(results, a.quick)
    # Workloads in modules of their own: each measures (or checks), prints its section, and
    # returns what failed.
    for workload in (watch_latency, runs_history, torture, inputs, store_cost):
        if not a.only or a.only in workload.NAME:
            failed += workload.run(exe, a.work, a.quick, a.runs)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if failed:
        print(f"\nbench: {len(failed)} command(s) failed:", file=sys.stderr)
        for f in failed:
            print("  " + f.splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
