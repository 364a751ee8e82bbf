"""The same run workloads for the other tools: xargs or a bash loop (the floor of
running the commands at all), just and go-task when they are on PATH.

Each function takes the jobs (`(id, command, needs)` tuples from gen.py), the
parallelism and the workload's folder, writes what the tool reads there, and
returns the argv to run it, or None when the tool cannot express the workload.

Dagu is not here: it was not installable on the machine the suite was written
on, so a generator for it could not be checked; `missing()` says so.
"""

from __future__ import annotations

import os
import shutil
from typing import Optional

PEERS = ("just", "task")


def missing() -> list[str]:
    """The peers the suite knows but cannot run here, with why."""
    out = [f"{p}: not on PATH" for p in PEERS if not shutil.which(p)]
    out.append("dagu: not supported by the suite (it could not be installed here to check one)")
    return out


def floor(jobs, parallel: int, folder: str) -> Optional[tuple[str, list[str]]]:
    """Independent jobs of one program: `xargs -P N`, which execs the program itself, without
    a shell, as make does. A chain: a bash script running the commands one after another
    (programs by path, so bash cannot use its builtin `true`). Anything else: None."""
    words = [command.split() for _, command, _ in jobs]
    programs = {w[0] for w in words}
    if all(not needs for _, _, needs in jobs) and len(programs) == 1:
        program = shutil.which(words[0][0]) or words[0][0]
        # One line of arguments per run; with `-d '\n'` an empty line is a run too (with one
        # empty argument, which `true` ignores).
        with open(os.path.join(folder, "args.txt"), "w") as f:
            f.writelines(" ".join(w[1:]) + "\n" for w in words)
        if all(len(w) == 1 for w in words):
            return "xargs", ["xargs", "-P", str(parallel), "-n", "1", "-d", "\n", "-a", "args.txt",
                             program]
        return "xargs", ["xargs", "-P", str(parallel), "-L", "1", "-a", "args.txt", program]
    chain = all(needs == ([jobs[i - 1][0]] if i else []) for i, (_, _, needs) in enumerate(jobs))
    if chain:
        lines = ["set -e"]
        for _, command, _ in jobs:
            program, *args = command.split()
            lines.append(" ".join([shutil.which(program) or program, *args]))
        with open(os.path.join(folder, "chain.sh"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return "bash loop", ["bash", "chain.sh"]
    return None


def just(jobs, parallel: int, folder: str) -> list[str]:
    """A justfile: one recipe per job, its needs as dependencies, `all` needing every job.
    just runs dependencies one at a time (it has no cap to set), so `parallel` is unused."""
    del parallel
    out = ["all: " + " ".join(j for j, _, _ in jobs), ""]
    for job_id, command, needs in jobs:
        out.append(f"{job_id}: {' '.join(needs)}".rstrip())
        out.append(f"    @{command}")
    with open(os.path.join(folder, "justfile"), "w") as f:
        f.write("\n".join(out) + "\n")
    return [shutil.which("just") or "just", "--justfile", "justfile", "all"]


def task(jobs, parallel: int, folder: str) -> list[str]:
    """A Taskfile (v3): one task per job with its needs as `deps`, each task run once per
    invocation (`run: once`, so shared needs are not run again), at most `parallel` at once
    (`--concurrency`)."""
    out = ["version: '3'", "run: once", "silent: true", "tasks:", "  all:",
           "    deps: [" + ", ".join(j for j, _, _ in jobs) + "]"]
    for job_id, command, needs in jobs:
        out.append(f"  {job_id}:")
        if needs:
            out.append("    deps: [" + ", ".join(needs) + "]")
        out.append(f"    cmds: [{command!r}]".replace("'", '"'))
    with open(os.path.join(folder, "Taskfile.yml"), "w") as f:
        f.write("\n".join(out) + "\n")
    return [shutil.which("task") or "task", "--concurrency", str(parallel), "all"]
