"""The cost of `parity.to_keras` / `parity.to_torch` against one numpy copy.

Issue 6, part 2. Workload: `nn.LSTM(1024, 1024, num_layers=4,
bidirectional=True)`. Time: median of interleaved runs of `to_keras(lstm)`,
`to_torch(keras_model)` and the baseline, one numpy copy of every weight.
The median is
of warm calls (the garbage collector run before each, so that memory freed by
the previous call can be reused); each operation's first call in a fresh
process, which has to fault in all its new memory, is reported apart.
Memory: each operation runs once in a fresh process, which reports the peak
resident memory above what it held just before (`VmHWM` after resetting it
through `/proc/self/clear_refs`) and the peak of numpy's allocations
(`tracemalloc`). The result is part of the peak: a conversion that holds
nothing but its result peaks at 1x the weights.

    python -m benchmarks.conversion            # writes build/benchmarks/conversion.json
    python -m benchmarks.conversion --memory to_keras   # one measurement, JSON to stdout
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc

from benchmarks import common

SIZE, LAYERS = 1024, 4
OPERATIONS = ("numpy copy", "to_keras", "to_torch")


def build_lstm():
    import torch

    torch.manual_seed(0)
    return torch.nn.LSTM(SIZE, SIZE, num_layers=LAYERS, bidirectional=True)


def operations(lstm, keras_model):
    import parity

    arrays = [p.detach().numpy() for p in lstm.parameters()]
    return {
        "numpy copy": lambda: [a.copy() for a in arrays],
        "to_keras": lambda: parity.to_keras(lstm),
        "to_torch": lambda: parity.to_torch(keras_model),
    }


def _status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def measure_memory(operation):
    """Peak memory of one `operation` in this (fresh) process."""
    import parity

    lstm = build_lstm()
    keras_model = parity.to_keras(lstm) if operation == "to_torch" else None
    fn = operations(lstm, keras_model)[operation]
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident size
    before = _status_bytes("VmRSS")
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    first_call = time.perf_counter() - start
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status_bytes("VmHWM") - before
    del result
    return {"peak_rss_bytes": peak, "tracemalloc_peak_bytes": traced_peak,
            "first_call_ms": first_call * 1e3}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memory", choices=OPERATIONS, help="measure one operation's memory")
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = parser.parse_args(argv)
    common.set_threads()
    if args.memory:
        print(json.dumps(measure_memory(args.memory)))
        return 0

    import parity

    lstm = build_lstm()
    weights_bytes = sum(p.numel() * p.element_size() for p in lstm.parameters())
    parameters = sum(p.numel() for p in lstm.parameters())
    keras_model = parity.to_keras(lstm)
    waited = common.wait_for_quiet()
    load_before = common.load()
    with common.OtherLoad() as other:
        # gc.collect() before each sample: a Keras model is freed by the garbage
        # collector (its layers refer to each other), and until it is, the next
        # conversion cannot reuse its memory but has to fault in fresh pages
        # (~1.5 ms per MiB on this VM), which the numpy copy never has to.
        times = common.interleaved(operations(lstm, keras_model), args.rounds, warmup=1,
                                   before_sample=gc.collect)
    load_after = common.load()
    rows = {name: common.summary(seconds) for name, seconds in times.items()}
    baseline = rows["numpy copy"]["median_ms"]
    for name, row in rows.items():
        row["ratio"] = row["median_ms"] / baseline
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for name in OPERATIONS:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.conversion", "--memory", name],
            cwd=common.ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout
        memory = json.loads(out.strip().splitlines()[-1])
        rows[name].update(memory)
        rows[name]["peak_rss_ratio"] = memory["peak_rss_bytes"] / weights_bytes
        print(f"{name}: {rows[name]['median_ms']:.0f} ms ({rows[name]['ratio']:.2f}x), "
              f"peak +{memory['peak_rss_bytes'] / 2**20:.0f} MiB "
              f"({rows[name]['peak_rss_ratio']:.2f}x the weights)", flush=True)
    path = common.write_results("conversion", {
        "workload": f"nn.LSTM({SIZE}, {SIZE}, num_layers={LAYERS}, bidirectional=True)",
        "parameters": parameters, "weights_bytes": weights_bytes,
        "machine": common.machine(), "rounds": args.rounds, "rows": rows,
        "load_before": load_before, "load_after": load_after,
        "other_cores": other.cores, "waited_s": waited,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
