"""`make bench`: every benchmark, each in a fresh process, then docs/performance.md.

    python -m benchmarks.run            # about 5-8 minutes on 2 cores
    python -m benchmarks.run --quick    # fewer rounds, to try the pipeline

Inference runs once per Keras backend (TensorFlow, PyTorch, and JAX where it
is installed), each process timing PyTorch as its own baseline. The GPU
check runs only where a GPU is visible.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import time

from benchmarks import common


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and runs")
    args = parser.parse_args(argv)
    if args.quick:
        os.environ.setdefault("BENCH_ROUNDS", str(common.MIN_RUNS))
        os.environ.setdefault("BENCH_MAIN_RUNS", "1")
    start = time.perf_counter()
    # This run's results only (the GPU checks' are committed in benchmarks/results/).
    if os.path.isdir(common.RESULTS):
        for name in os.listdir(common.RESULTS):
            if name.endswith(".json"):
                os.remove(os.path.join(common.RESULTS, name))
    backends = ["tensorflow", "torch"]
    if importlib.util.find_spec("jax") is not None:
        backends.append("jax")
    for backend in backends:
        common.run_module("inference", backend=backend)
    common.run_module("conversion")
    common.run_module("main_job")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        for backend in backends:  # exit status 2: no GPU for that backend's build
            try:
                common.run_module("gpu", backend=backend)
            except subprocess.CalledProcessError as error:
                print(f"benchmarks.gpu on {backend}: exit status {error.returncode}")
    common.run_module("report")
    print(f"make bench: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
