"""Wall time of the main job, `python examples/hello_keras.py` (issue 6, part 3).

All nine variants, each in a fresh process as a user runs it (imports
included), median of `MIN_RUNS` runs; and the import of Keras alone, the
floor under any run. `make test` takes minutes and is timed by hand (see
docs/performance.md), not here.

    python -m benchmarks.main_job     # writes build/benchmarks/main_job.json
"""

import os
import statistics
import subprocess
import sys
import time

from benchmarks import common

COMMANDS = {
    "python examples/hello_keras.py": ["examples/hello_keras.py"],
    "python -c 'import keras' (the floor)": ["-c", "import keras"],
}


def wall_time(args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "tensorflow"))
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=common.ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    runs = int(os.environ.get("BENCH_MAIN_RUNS", str(common.MIN_RUNS)))
    rows = {}
    waited = common.wait_for_quiet()
    load_before = common.load()
    for label, args in COMMANDS.items():
        with common.OtherLoad() as other:
            seconds = [wall_time(args) for _ in range(runs)]
        rows[label] = {"median_s": statistics.median(seconds), "min_s": min(seconds),
                       "runs": runs, "other_cores": other.cores}
        print(f"{label}: median {rows[label]['median_s']:.1f} s over {runs} runs", flush=True)
    path = common.write_results("main_job", {
        "machine": common.machine(), "rows": rows,
        "load_before": load_before, "load_after": common.load(), "waited_s": waited,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
