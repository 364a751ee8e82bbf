"""`exe watch` latency: from a file write to the start of the rerun it causes.

The watched pipeline has one job whose first action appends the time
(`date +%s%N`, the realtime clock) to stamps.txt. The benchmark notes
time.time_ns() (the same clock) just before it writes an input file, then waits
for the new stamp: latency = stamp - write time. It includes the debounce
(default 100 ms), reloading the pipeline, recording the run and starting the
job's shell. Each write comes once the watch is idle again. Median over the
writes; the target is 150 ms with the default debounce.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from typing import Optional

NAME = "watch latency"
TARGET_S = 0.150
PIPELINE = """\
[jobs.stamp]
command = "date +%s%N >> stamps.txt"
inputs = ["src/*.txt"]
"""


class Watch:
    """`exe watch` in the background; counts the "watching" lines it prints when idle."""

    def __init__(self, exe: str, cwd: str):
        self.proc = subprocess.Popen(
            [exe, "watch", "--output", "quiet", "p.toml"], cwd=cwd,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "NO_COLOR": "1"})
        self.idle = 0
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line)
                if "(Ctrl-C to stop)" in line:
                    self.idle += 1
                self.cond.notify_all()

    def wait_idle(self, n: int, timeout: float = 30.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.idle >= n, timeout):
                raise RuntimeError("exe watch did not become idle:\n" + "".join(self.lines))

    def stop(self) -> Optional[int]:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def stamps(path: str) -> list[int]:
    try:
        with open(path) as f:
            return [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def measure(exe: str, work: str, writes: int) -> list[float]:
    """Latency in seconds of each of `writes` input writes."""
    folder = os.path.join(work, "watch-latency")
    os.makedirs(os.path.join(folder, "src"), exist_ok=True)
    with open(os.path.join(folder, "p.toml"), "w") as f:
        f.write(PIPELINE)
    with open(os.path.join(folder, "src", "in.txt"), "w") as f:
        f.write("0\n")
    stamp_file = os.path.join(folder, "stamps.txt")
    watch = Watch(exe, folder)
    latencies = []
    try:
        for i in range(writes):
            watch.wait_idle(i + 1)
            time.sleep(0.3)  # well past the debounce: this write starts a burst of its own
            before = len(stamps(stamp_file))
            t0 = time.time_ns()
            with open(os.path.join(folder, "src", "in.txt"), "w") as f:
                f.write(f"{i + 1}\n")  # new content: an unchanged input is up to date
            deadline = time.monotonic() + 30
            while len(stamps(stamp_file)) <= before:
                if time.monotonic() > deadline:
                    raise RuntimeError("no rerun after a write:\n" + "".join(watch.lines))
                time.sleep(0.005)
            latencies.append((stamps(stamp_file)[before] - t0) / 1e9)
        watch.wait_idle(writes + 1)
    finally:
        code = watch.stop()
    if code != 130:
        raise RuntimeError(f"exe watch exited {code} on Ctrl-C, not 130")
    return latencies


def run(exe: str, work: str, quick: bool, runs: Optional[int]) -> list[str]:
    """Measures and prints the section; returns failures (empty when it ran)."""
    writes = runs or (3 if quick else 20)
    try:
        latencies = measure(exe, work, writes)
    except RuntimeError as e:
        return [f"{NAME}: {e}"]
    med = statistics.median(latencies)
    print()
    print(f"exe watch, write to rerun start (default 100 ms debounce, {writes} writes):")
    print(f"  median {med * 1000:.1f} ms, min {min(latencies) * 1000:.1f} ms,"
          f" max {max(latencies) * 1000:.1f} ms")
    label = "MET" if med <= TARGET_S else "MISSED"
    note = " (quick mode: indicative only)" if quick else ""
    print(f"  {label:6} watch: write to rerun start <= {TARGET_S * 1000:.0f} ms{note}")
    return []
