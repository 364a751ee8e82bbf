"""Workload generators for the exe benchmark suite (standard library only).

Every workload file is built from one in-memory model (plain dicts and lists)
and written by one of the small emitters below, so the TOML, YAML and JSON
versions of a pipeline describe exactly the same jobs.

To add a workload: write a function that returns a model (see `dag_pipeline`)
and call `write(model, path)`; the file's extension picks the format.
"""

from __future__ import annotations

import json
import os
import random

SEED = 20240601  # fixed: every run of the suite generates byte-identical files


def dag_pipeline(n_jobs: int, name: str | None = None, seed: int = SEED) -> dict:
    """A pipeline of `n_jobs` shell jobs forming a DAG.

    - job 0 is the only root (`mkdir -p out && echo job 0 > out/0.txt`);
    - every other job needs one earlier job, every third one needs two, all
      picked (deterministically) among the 100 jobs before it;
    - every job has a command, a description and a timeout;
    - every 10th job extends the template `standard`;
    - every 50th job has a retry table.
    """
    rng = random.Random(seed)
    jobs: dict[str, dict] = {}
    for i in range(n_jobs):
        job: dict = {}
        job["description"] = f"Job {i} of {n_jobs}: write out/{i}.txt"
        if i == 0:
            job["command"] = "mkdir -p out && echo job 0 > out/0.txt"
        else:
            job["command"] = f"echo job {i} > out/{i}.txt"
        job["timeout"] = "30s"
        if i > 0:
            low = max(0, i - 100)
            first = rng.randrange(low, i)
            needs = [first]
            if i % 3 == 0 and i - low > 1:
                second = rng.randrange(low, i)
                while second == first:
                    second = rng.randrange(low, i)
                needs.append(second)
            job["needs"] = [job_id(k) for k in sorted(needs)]
        if i % 10 == 0:
            job["extends"] = "standard"
        if i % 50 == 0:
            job["retry"] = {"max": 2, "delay": "1s", "backoff": 2.0}
        jobs[job_id(i)] = job
    return {
        "version": 1,
        "name": name or f"bench-dag-{n_jobs}",
        "description": f"Generated benchmark pipeline: {n_jobs} jobs in a DAG.",
        "templates": {
            "standard": {
                "timeout_grace": "2s",
                "priority": 1,
                "env": {"KIND": "templated"},
            }
        },
        "jobs": jobs,
    }


def job_id(i: int) -> str:
    return f"job_{i}"


# ---------------------------------------------------------------- emitters


def write(model: dict, path: str) -> str:
    """Write `model` to `path` in the format its extension names; return path."""
    ext = os.path.splitext(path)[1]
    if ext == ".toml":
        text = to_toml(model)
    elif ext in (".yaml", ".yml"):
        text = to_yaml(model)
    elif ext == ".json":
        text = json.dumps(model, indent=2) + "\n"
    else:
        raise ValueError(f"unknown pipeline format: {path}")
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _scalar(v) -> str:
    """A scalar in the syntax shared by TOML, YAML flow style and JSON."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # ASCII escapes valid in TOML and YAML too
    raise TypeError(f"not a scalar: {v!r}")


def _inline(v, toml: bool) -> str:
    """A value on one line: TOML inline table / YAML flow mapping."""
    if isinstance(v, dict):
        sep = " = " if toml else ": "
        keys = (k if toml else json.dumps(k) for k in v)
        return "{ " + ", ".join(f"{k}{sep}{_inline(x, toml)}" for k, x in zip(keys, v.values())) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_inline(x, toml) for x in v) + "]"
    return _scalar(v)


def to_toml(model: dict) -> str:
    """Top-level scalars first, then one `[section.name]` table per entry of
    each map of tables (`templates`, `jobs`); nested maps are inline tables."""
    lines: list[str] = []
    sections = []
    for key, value in model.items():
        if isinstance(value, dict) and value and all(isinstance(x, dict) for x in value.values()):
            sections.append((key, value))
        else:
            lines.append(f"{key} = {_inline(value, toml=True)}")
    for key, table in sections:
        for name, body in table.items():
            lines.append("")
            lines.append(f"[{key}.{name}]")
            for k, v in body.items():
                lines.append(f"{k} = {_inline(v, toml=True)}")
    return "\n".join(lines) + "\n"


def to_yaml(model: dict) -> str:
    """Block mappings down to the job level, flow style below it."""
    lines: list[str] = []

    def block(mapping: dict, indent: int, depth: int) -> None:
        pad = "  " * indent
        for k, v in mapping.items():
            if isinstance(v, dict) and v and depth > 0:
                lines.append(f"{pad}{k}:")
                block(v, indent + 1, depth - 1)
            else:
                lines.append(f"{pad}{k}: {_inline(v, toml=False)}")

    # depth 2: top level -> `jobs`/`templates` -> each job -> its keys in flow style
    block(model, 0, 2)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ run workloads
#
# The same jobs for `exe apply` and for GNU make: a list of (id, command, needs).


def independent(n: int, command: str = "true") -> list[tuple[str, str, list[str]]]:
    return [(f"j{i}", command, []) for i in range(n)]


def chain(n: int, command: str = "true") -> list[tuple[str, str, list[str]]]:
    return [(f"j{i}", command, [f"j{i - 1}"] if i else []) for i in range(n)]


def dag(n: int, command: str = "true", seed: int = SEED) -> list[tuple[str, str, list[str]]]:
    """Each job needs one or two random earlier jobs (the first ten need nothing)."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        needs = sorted({rng.randrange(i) for _ in range(rng.choice((1, 2)))}) if i >= 10 else []
        jobs.append((f"j{i}", command, [f"j{k}" for k in needs]))
    return jobs


def exe_pipeline(jobs, max_parallel: int) -> str:
    lines = ["version = 1", f"max_parallel = {max_parallel}", ""]
    for job_id, command, needs in jobs:
        lines.append(f"[jobs.{job_id}]")
        lines.append(f"command = {_scalar(command)}")
        if needs:
            lines.append("needs = [" + ", ".join(_scalar(n) for n in needs) + "]")
    return "\n".join(lines) + "\n"


def makefile(jobs) -> str:
    """Phony targets, so make runs every recipe on every run, like exe does."""
    ids = [j[0] for j in jobs]
    out = [".PHONY: all " + " ".join(ids), "all: " + " ".join(ids), ""]
    for job_id, command, needs in jobs:
        out.append(f"{job_id}: {' '.join(needs)}".rstrip())
        out.append(f"\t{command}")
    return "\n".join(out) + "\n"
