"""Contention-aware timing and peak-memory measurement on a shared CPU machine.

Every measured round records wall seconds and the process's CPU seconds. With one compute thread, a process that
had its core to itself spends about one CPU second per wall second; a lower ratio means other processes took the
core for part of the round. Such rounds are *contended*: they are kept in the JSON (flagged) but never enter a
reported statistic, and the round is repeated while the time budget lasts.

Peak memory is measured in the same process, around the very same rounds, from the kernel's own accounting of
resident memory (see `RssProbe`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(key: str) -> int | None:
    try:
        with open(_STATUS) as handle:
            match = re.search(rf"^{key}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


class RssProbe:
    """Peak resident memory added by a piece of work, measured by the kernel (Linux).

    Why not tracemalloc: it only sees allocations made through Python's allocator, and torch allocates tensor
    memory in C++ (`posix_memalign`), so it reports almost nothing. Why not `ru_maxrss` alone: it is a high-water
    mark for the whole life of the process and cannot be reset, so in one process only the largest model would
    be seen. Torch's CPU allocator keeps no statistics of its own (unlike CUDA's).

    What this does: before the work, `malloc_trim(0)` hands memory that glibc keeps in its free lists back to the
    kernel (so that the work cannot silently reuse pages that are already resident), then writing "5" to
    `/proc/self/clear_refs` resets the kernel's high-water mark `VmHWM` to the current `VmRSS`. After the work,
    `VmHWM - VmRSS_before` is the peak extra resident memory of the work: activations, gradients, temporaries,
    optimizer state created during it. It is the same quantity a fresh process shows as its never-reset `VmHWM`
    minus its resident size before the step (the `memcheck` section of `compare_peers` compares the two).
    """

    def __init__(self):
        self.available = os.path.exists(_STATUS) and os.access(_CLEAR_REFS, os.W_OK)
        libc_name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(libc_name) if libc_name else None
        self._baseline_kib = 0

    def start(self) -> None:
        if not self.available:
            return
        if self._libc is not None and hasattr(self._libc, "malloc_trim"):
            self._libc.malloc_trim(0)
        with open(_CLEAR_REFS, "w") as handle:
            handle.write("5")
        self._baseline_kib = _status_kib("VmRSS") or 0

    def peak_mib(self) -> float | None:
        """Peak resident memory above the baseline since `start()`, in MiB."""
        if not self.available:
            return None
        high_water = _status_kib("VmHWM")
        return None if high_water is None else (high_water - self._baseline_kib) / 1024

    @staticmethod
    def resident_mib() -> float | None:
        kib = _status_kib("VmRSS")
        return None if kib is None else kib / 1024

    @staticmethod
    def high_water_mib() -> float | None:
        kib = _status_kib("VmHWM")
        return None if kib is None else kib / 1024


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes of the machine have spent busy since boot (Linux `/proc/stat`), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One measured execution: wall and CPU seconds, peak extra resident memory, and the CPU cores that other
    processes kept busy meanwhile (machine-wide busy time minus this process's, per wall second)."""

    wall: float
    cpu: float
    peak_mib: float | None = None
    other_cores: float | None = None

    @property
    def cpu_ratio(self) -> float:
        return self.cpu / self.wall if self.wall > 0 else 0.0


def measure(work: Callable[[], object], probe: RssProbe | None = None) -> Round:
    """Run `work()` once and record wall time, process CPU time, the other processes' load and (with a probe) peak
    extra memory."""
    if probe is not None:
        probe.start()
    busy_start = busy_cpu_seconds()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    work()
    wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
    busy_end = busy_cpu_seconds()
    others = None if busy_start is None or busy_end is None else max(0.0, busy_end - busy_start - cpu) / wall
    return Round(wall, cpu, probe.peak_mib() if probe is not None else None, others)


@dataclass
class Cell:
    """A thing to measure repeatedly (e.g. one model at one clip length) and its rounds."""

    key: tuple
    work: Callable[[], object]
    rounds: list[Round] = field(default_factory=list)

    def clean(self, min_cpu_ratio: float, max_other_cores: float | None = None) -> list[Round]:
        """Rounds with CPU/wall >= `min_cpu_ratio` and, if given, at most `max_other_cores` cores busy elsewhere (the
        check for multi-threaded work, whose CPU/wall on an idle machine is not known in advance)."""
        return [
            r
            for r in self.rounds
            if r.cpu_ratio >= min_cpu_ratio
            and (max_other_cores is None or r.other_cores is None or r.other_cores <= max_other_cores)
        ]

    def summary(self, min_cpu_ratio: float, max_other_cores: float | None = None) -> dict:
        """Median wall time over clean rounds only; if no round was clean, over all rounds and marked as such."""
        clean = self.clean(min_cpu_ratio, max_other_cores)
        used = clean or self.rounds
        walls = [r.wall for r in used]
        peaks = [r.peak_mib for r in self.rounds if r.peak_mib is not None]
        return {
            "wall_s": statistics.median(walls) if walls else None,
            "wall_min_s": min(walls) if walls else None,
            # CPU seconds hardly change with contention: a second, contention-robust estimate.
            "cpu_s": statistics.median(r.cpu for r in self.rounds) if self.rounds else None,
            "rounds": len(self.rounds),
            "clean_rounds": len(clean),
            "contended": not clean,
            "cpu_ratios": [round(r.cpu_ratio, 3) for r in self.rounds],
            "walls_s": [round(r.wall, 4) for r in self.rounds],
            "other_cores": [None if r.other_cores is None else round(r.other_cores, 2) for r in self.rounds],
            "peak_mib": max(peaks) if peaks else None,
        }


def run_interleaved(
    cells: Sequence[Cell],
    rounds: int,
    min_cpu_ratio: float,
    deadline: float | None = None,
    probe: RssProbe | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    measure_round: Callable[[Callable[[], object], RssProbe | None], Round] = measure,
    max_other_cores: float | None = None,
) -> None:
    """Measure every cell `rounds` times, interleaved, then repeat contended ones until `deadline`.

    Each pass visits the cells in a fresh random order, so that no model always runs right after the same other
    one and slow drifts of the machine's load spread over all cells alike. The first pass always runs; a later pass
    only if it fits before `deadline` (a `time.perf_counter()` value; None = no limit) at the pace of the previous
    one, so a heavily loaded machine gets fewer rounds instead of a run that never ends. Cells still short of
    `rounds` clean rounds are then repeated, cheapest first, while their last time fits before the deadline.
    """
    rng = random.Random(seed)

    def fits(seconds: float) -> bool:
        return deadline is None or time.perf_counter() + seconds <= deadline

    def run(cell: Cell, label: str) -> float:
        cell.rounds.append(measure_round(cell.work, probe))
        last = cell.rounds[-1]
        if progress is not None:
            progress(f"{label} {cell.key}: {last.wall:.3f}s cpu/wall {last.cpu_ratio:.2f}")
        return last.wall

    for number in range(rounds):
        order = list(cells)
        rng.shuffle(order)
        pass_start = time.perf_counter()
        for cell in order:
            run(cell, f"pass {number + 1}/{rounds}")
        if number + 1 < rounds and not fits(time.perf_counter() - pass_start):
            return
    retry = 0
    while True:
        todo = [cell for cell in cells if len(cell.clean(min_cpu_ratio, max_other_cores)) < rounds]
        todo = [cell for cell in todo if fits(cell.rounds[-1].wall)]
        if not todo:
            return
        retry += 1
        todo.sort(key=lambda cell: cell.rounds[-1].wall)  # cheapest first: a short budget fixes the most cells
        for cell in todo:
            if fits(cell.rounds[-1].wall):
                run(cell, f"retry {retry}")
