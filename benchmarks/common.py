"""What every benchmark shares: threads, timing, the machine, the results file.

Timing rule (issue 6): medians of at least `MIN_RUNS` runs, and every ratio
is taken against a baseline measured in the same process, interleaved with
the candidate. Each round runs every candidate in rotating order, so that a
burst of load from other processes on a shared machine falls on all of them
alike. A candidate's sample in a round is the mean of back-to-back calls
filling about `SAMPLE_S` seconds, after a pause of `PAUSE_S` (the previous
candidate's runtime threads, XLA's above all, spin on after their work and
slowed PyTorch 2-3x when timed right after a JAX call) and one untimed call
(on this 2-core VM waking sleeping worker threads costs 0.5-1 ms, most of
what a small model's call would otherwise measure).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Intermediate results (one JSON per benchmark), under the ignored build/.
RESULTS = os.path.join(ROOT, "build", "benchmarks")
MIN_RUNS = 5
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
SAMPLE_S = 0.05
# Before each sample: a runtime's worker threads keep spinning for a while
# after a call, slowing whatever runs next on a 2-core machine. JAX's (XLA's
# Eigen pool) spin 0.2-1 s: PyTorch timed 0.2 s after a JAX call ran 2-3x
# slower, 0.5 s after it at its own speed. `pause_for(backend)` picks it.
PAUSE_S = 0.1


def pause_for(backend):
    """The pause before each sample when Keras runs on `backend` (`BENCH_PAUSE` overrides)."""
    default = 0.5 if backend == "jax" else 0.1
    return float(os.environ.get("BENCH_PAUSE", default))


def set_threads(threads=THREADS):
    """The same thread count for every runtime in this process (before any op runs)."""
    import torch

    torch.set_num_threads(threads)
    try:
        import keras

        backend = keras.backend.backend()
    except ImportError:
        backend = None
    if backend == "tensorflow" or "tensorflow" in sys.modules:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def interleaved(candidates, rounds, warmup=2, before_sample=None):
    """Times `{name: callable}` in rotating order; returns `{name: [seconds per call]}`.

    `before_sample`, if given, runs untimed before each sample (e.g. `gc.collect`).
    """
    repeats = {}
    for name, fn in candidates.items():
        for _ in range(warmup - 1):
            fn()
        _, seconds = timed(fn)  # the last warm-up call sizes the samples
        repeats[name] = max(1, min(100, int(SAMPLE_S / max(seconds, 1e-6))))
    times = {name: [] for name in candidates}
    order = list(candidates)
    for _ in range(max(rounds, MIN_RUNS)):
        order = order[1:] + order[:1]
        for name in order:
            fn, repeat = candidates[name], repeats[name]
            time.sleep(PAUSE_S)
            if before_sample is not None:
                before_sample()
            if repeat > 1:
                fn()  # untimed: wakes the runtime's threads
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            times[name].append((time.perf_counter() - start) / repeat)
    return times


def summary(seconds):
    """`{"median_ms", "min_ms", "runs"}` of a list of timings."""
    return {
        "median_ms": statistics.median(seconds) * 1e3,
        "min_ms": min(seconds) * 1e3,
        "runs": len(seconds),
    }


def timed(fn):
    """`(result, seconds)` of one call."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def machine():
    """The machine and library versions, for the report."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo") as f:
            memory = int(f.readline().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    versions = {"python": platform.python_version()}
    for name in ("numpy", "torch", "tensorflow", "keras", "jax"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": None if memory is None else round(memory, 1),
        "threads": THREADS,
        "system": f"{platform.system()} {platform.release()}",
        "versions": versions,
    }


def load():
    """`os.getloadavg()` (1, 5, 15 minutes), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_ticks():
    """`(all busy ticks of the machine, this process's ticks)` from /proc."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    with open("/proc/self/stat") as f:
        own = f.read().rsplit(")", 1)[1].split()
    return busy, sum(int(v) for v in own[11:15])  # utime, stime, and reaped children's


class OtherLoad:
    """Cores used by other processes while the block runs (`with OtherLoad() as l: ...; l.cores`)."""

    def __enter__(self):
        self.start = (time.perf_counter(), *_cpu_ticks())
        return self

    def __exit__(self, *exc):
        end = (time.perf_counter(), *_cpu_ticks())
        elapsed = end[0] - self.start[0]
        hz = os.sysconf("SC_CLK_TCK")
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        self.cores = max(0.0, others / hz / elapsed) if elapsed > 0 else 0.0


def wait_for_quiet(threshold=0.3, max_wait=None):
    """Waits (up to `BENCH_MAX_WAIT` s) until other processes use under `threshold` cores.

    On a shared machine a test run of someone else's can hold a core for
    minutes; PyTorch's OpenMP threads then wait for each other at every
    parallel region and its times grow 10x or more. Returns the seconds waited.
    """
    max_wait = float(os.environ.get("BENCH_MAX_WAIT", "60")) if max_wait is None else max_wait
    waited = 0.0
    while True:
        with OtherLoad() as other:
            time.sleep(0.5)
        if other.cores < threshold or waited >= max_wait:
            return waited
        time.sleep(2.0)
        waited += 2.5


def write_results(name, payload):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    return path


def read_results(name):
    path = os.path.join(RESULTS, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def run_module(module, *args, backend="tensorflow", timeout=900):
    """Runs `python -m benchmarks.<module>` in a fresh process with `KERAS_BACKEND`."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", f"benchmarks.{module}", *args]
    print(f"$ KERAS_BACKEND={backend} {' '.join(command[1:])}", flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True, timeout=timeout)
