"""Timings that hold from run to run: interleaved rounds, min / median / max, the spread of a ratio,
and thread counts pinned and reported. Used by the benchmark (bench.py) and benchmarks/.

On a shared machine the speed drifts by tens of percent within a minute. Timing A fifteen times,
then B fifteen times, lets that drift into the ratio A/B; calling A, B, A, B, ... lets it hit both
alike, and the ratio of each round's pair shows how much of the drift is left (`Ratio.spread`).
"""
from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass

import numpy as np

SPREAD_WARNING = 0.20  # a ratio whose rounds disagree by more than this is flagged as untrustworthy


@dataclass(frozen=True)
class Samples:
    """The seconds of every timed call of one function."""
    seconds: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return float(np.median(self.seconds))

    @property
    def max(self) -> float:
        return max(self.seconds)

    def ms(self) -> dict[str, float]:
        """{"min", "median", "max"} in milliseconds, for JSON."""
        return {"min": self.min * 1e3, "median": self.median * 1e3, "max": self.max * 1e3}


@dataclass(frozen=True)
class Ratio:
    """A / B from interleaved samples: the ratio of the medians, and its spread, the interquartile range
    of the per-round ratios A_r / B_r over their median (0.1: the middle half of the rounds lie within
    a band 10 % wide). A spread above SPREAD_WARNING means the machine's drift was not cancelled."""
    value: float
    spread: float

    @classmethod
    def of(cls, a: Samples, b: Samples) -> Ratio:
        per_round = np.asarray(a.seconds) / np.asarray(b.seconds)
        q25, q50, q75 = np.percentile(per_round, [25, 50, 75])
        return cls(a.median / b.median, float((q75 - q25) / q50))

    @property
    def trusted(self) -> bool:
        return self.spread <= SPREAD_WARNING


def interleaved_samples(fns: dict, repeat: int, warm_up: bool = True) -> dict:
    """{key: fn} -> {key: Samples}: after one warm-up call each (allocations, BLAS threads, caches),
    `repeat` rounds that call every function once, in turn."""
    if warm_up:
        for fn in fns.values():
            fn()
    times = {key: [] for key in fns}
    for _ in range(repeat):
        for key, fn in fns.items():
            times[key].append(timed(fn))
    return {key: Samples(tuple(t)) for key, t in times.items()}


def interleaved(fns: dict, repeat: int, warm_up: bool = True) -> dict:
    """{key: fn} -> {key: median seconds}, timed as interleaved_samples does."""
    return {key: s.median for key, s in interleaved_samples(fns, repeat, warm_up).items()}


def timed(fn) -> float:
    """Seconds of one call."""
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@contextlib.contextmanager
def pinned_threads(n: int | None):
    """Run NumPy's BLAS (through threadpoolctl) and torch with n threads each (None: leave them), and
    restore both after. ONNX Runtime's sessions take n from `ort_threads`. Yields the counts in use:
    {"blas": ..., "torch": ..., "onnxruntime": ...} (None for a library that is not installed)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    try:
        import torch
    except ImportError:
        torch = None
    before = torch.get_num_threads() if torch is not None else None
    with contextlib.ExitStack() as stack:
        if n is not None and threadpool_limits is not None:
            stack.enter_context(threadpool_limits(limits=n, user_api="blas"))
        if torch is not None:
            torch.set_num_threads(n or blas_threads() or before)
        try:
            yield {"blas": blas_threads(), "torch": torch.get_num_threads() if torch is not None else None,
                   "onnxruntime": ort_threads(n)}
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def ort_threads(n: int | None) -> int | None:
    """The intra-op threads the benchmark gives ONNX Runtime: n, else the BLAS threads; None without ORT."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    return n or blas_threads() or os.cpu_count()


def blas_threads() -> int | None:
    """NumPy's BLAS threads as threadpoolctl reports them (None without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
    return max(counts) if counts else None


def machine() -> dict:
    """What the numbers were measured on: CPU, cores, library versions."""
    info = {"cpu": _cpu_name(), "cores": os.cpu_count(), "numpy": np.__version__}
    for name in ("torch", "onnxruntime", "threadpoolctl"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
