"""Writes docs/performance.md from build/benchmarks/*.json and benchmarks/notes.md.

The tables are generated from the last `make bench` run; the explanation
after them (what was tried, where the time goes) is `benchmarks/notes.md`,
written by hand and copied in as it is.
"""

import datetime
import os
import sys

from benchmarks import common

DOC = os.path.join(common.ROOT, "docs", "performance.md")
NOTES = os.path.join(common.ROOT, "benchmarks", "notes.md")
BACKENDS = {"tensorflow": "TensorFlow (Keras's default)", "torch": "PyTorch", "jax": "JAX"}


def _ms(value):
    return f"{value:.3f} ms" if value < 1 else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(machine, load_before, load_after):
    v = machine["versions"]
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['system']}; {machine['threads']} threads for every runtime. "
        f"Python {v['python']}, numpy {v['numpy']}, torch {v['torch']}, tensorflow "
        f"{v['tensorflow']}, keras {v['keras']}, jax {v['jax']}. Load average "
        f"(1/5/15 min) {load_before} before, {load_after} after."
    )


def inference_section(results):
    out = ["## 1. Inference on CPU: ported model vs the PyTorch original", ""]
    out.append(
        "Median of interleaved runs (PyTorch and every Keras way alternate within each "
        "round; a run is the mean of back-to-back calls filling ~50 ms, after a short "
        "pause and one untimed call, see benchmarks/common.py); the ratio is Keras's "
        "median over PyTorch's median measured in the same process. `max abs err` is the largest difference of the output sequence from "
        "PyTorch's (parity's float32 tolerance is 1e-5)."
    )
    summary = {}
    for backend, data in results.items():
        rows = data["results"]
        labels = list(rows[0]["keras"])
        out += ["", f"### Keras on {BACKENDS[backend]}", ""]
        header = ["workload", "PyTorch"] + [
            rows[0]["keras"][label]["how"] for label in labels
        ] + ["max abs err", "other processes"]
        table = []
        for row in rows:
            cells = [row["workload"], _ms(row["pytorch"]["median_ms"])]
            for label in labels:
                r = row["keras"][label]
                cells.append(f"{_ms(r['median_ms'])} (**{r['ratio']:.2f}x**)")
                summary.setdefault(row["workload"], {})
            fast = row["keras"].get("compile_inference")
            if fast:
                summary[row["workload"]][backend] = fast
            worst = max(r["max_abs_error"] for r in row["keras"].values())
            cells.append(f"{worst:.1e}")
            cells.append(f"{row.get('other_cores', float('nan')):.2f} cores")
            table.append(cells)
        out.append(_table(header, table))
        first = rows[0]
        out += ["", f"{data['rounds']} rounds. " + _machine(
            data["machine"], first["load_before"], rows[-1]["load_after"])]
    out += ["", "### `compile_inference`, ratio to PyTorch by Keras backend", ""]
    out.append(
        "Each cell: Keras's median over the fastest PyTorch median of the same workload "
        "in this run (PyTorch is timed in each backend's process; the JAX process, for "
        "one, slowed PyTorch's GRU and LSTM by up to 30%), then, in brackets, the ratio "
        "against the PyTorch baseline of the same process and the ratio of the fastest "
        "runs."
    )
    out.append("")
    header = ["workload"] + [BACKENDS[b] for b in results] + ["best", "<= 1.0"]
    fastest_torch = {
        row["workload"]: min(
            r["pytorch"]["median_ms"] for data in results.values() for r in data["results"]
            if r["workload"] == row["workload"]
        )
        for data in results.values() for row in data["results"]
    }
    table = []
    for workload, by_backend in summary.items():
        cells = [workload]
        conservative = {}
        for backend in results:
            r = by_backend.get(backend)
            if r is None:
                cells.append("-")
                continue
            conservative[backend] = r["median_ms"] / fastest_torch[workload]
            cells.append(f"**{conservative[backend]:.2f}x** ({r['ratio']:.2f}x, "
                         f"min {r['min_ratio']:.2f}x)")
        best_backend, best = min(conservative.items(), key=lambda kv: kv[1])
        cells += [f"{BACKENDS[best_backend]} {best:.2f}x", "yes" if best <= 1.0 else "no"]
        table.append(cells)
    out.append(_table(header, table))
    out += ["", "`min` is the ratio of the fastest runs, less sensitive to load from "
            "other processes than the median. `other processes`: the cores other "
            "processes kept busy while the workload was timed (each workload waits, up "
            "to a minute, for the machine to be quiet first)."]
    return out


def conversion_section(data):
    rows = data["rows"]
    weights = data["weights_bytes"]
    out = ["## 2. Conversion cost", "",
           f"`{data['workload']}`: {data['parameters'] / 1e6:.1f} M parameters, "
           f"{weights / 2**20:.0f} MiB in float32, both directions. Time: median of "
           f"{data['rounds']} interleaved warm runs (garbage collected before each). "
           "Memory and the first call: each operation once in a fresh "
           "process; peak resident memory above what the process held just before "
           "(the result included), and numpy's peak allocation (`tracemalloc`).", ""]
    table = []
    for name, r in rows.items():
        table.append([
            f"`{name}`" if name != "numpy copy" else "one numpy copy of every weight (baseline)",
            _ms(r["median_ms"]), f"**{r['ratio']:.2f}x**",
            _ms(r["first_call_ms"]) if "first_call_ms" in r else "-",
            f"{r['peak_rss_bytes'] / 2**20:.0f} MiB", f"**{r['peak_rss_ratio']:.2f}x**",
            f"{r['tracemalloc_peak_bytes'] / 2**20:.0f} MiB",
        ])
    out.append(_table(["operation", "median", "time / numpy copy",
                       "first call in a fresh process", "peak extra RSS",
                       "peak / weights", "numpy peak"], table))
    out += ["", _machine(data["machine"], data["load_before"], data["load_after"])
            + f" Other processes used {data.get('other_cores', float('nan')):.2f} cores "
            "while the times were taken."]
    return out


def main_job_section(data):
    out = ["## 3. The main job", ""]
    table = [[f"`{label}`", f"{r['median_s']:.1f} s", f"{r['min_s']:.1f} s", r["runs"],
              f"{r.get('other_cores', float('nan')):.2f} cores"]
             for label, r in data["rows"].items()]
    out.append(_table(["command", "median wall time", "fastest", "runs", "other processes"],
                      table))
    out += ["", _machine(data["machine"], data["load_before"], data["load_after"])]
    return out


GPU_RESULTS = os.path.join(common.ROOT, "benchmarks", "results")


def read_gpu_results():
    """Every committed GPU check (`benchmarks/results/gpu-*.json`), by file name."""
    import json

    if not os.path.isdir(GPU_RESULTS):
        return {}
    found = {}
    for name in sorted(os.listdir(GPU_RESULTS)):
        if name.startswith("gpu-") and name.endswith(".json"):
            with open(os.path.join(GPU_RESULTS, name)) as f:
                found[name] = json.load(f)
    return found


def _cudnn(evidence):
    return "yes" if evidence["cudnn"] else "**no**"


def gpu_section(runs):
    out = ["## 4. GPU", ""]
    if not runs:
        out.append(
            "**Not measured yet**: no GPU was available to the runs behind this page. "
            "`python -m benchmarks.gpu` is the prepared check (it refuses without a GPU)."
        )
        return out
    out.append(
        "From `python -m benchmarks.gpu` (one run per Keras backend; the JSON is "
        "committed in `benchmarks/results/`, because `make bench` usually runs without "
        "a GPU). \"cuDNN ran\" is read from the ops that ran, not from the time: "
        "PyTorch's profiler (`aten::_cudnn_rnn`) for PyTorch and Keras's torch "
        "backend, the compiled HLO's custom calls (`cudnn_rnn`) for JAX. Times are "
        "medians of interleaved rounds, each call synchronised; ratios are to "
        "PyTorch's cuDNN on the same weights in the same process. Errors are the "
        "largest absolute difference of the output sequence from a float64 CPU run, "
        "with PyTorch's default `torch.backends.cudnn.allow_tf32=True` and with it "
        "off (that switch does not reach JAX)."
    )
    for name, data in runs.items():
        out += ["", f"### {BACKENDS.get(data['backend'], data['backend'])} backend "
                f"(`{name}`)", ""]
        versions = data["machine"]["versions"]
        out.append(
            f"GPU: **{data['gpu']}**, CUDA {data['cuda']}, cuDNN {data['cudnn']}; "
            f"torch {versions['torch']}, keras {versions['keras']}, jax {versions['jax']}, "
            f"tensorflow {versions['tensorflow']}; {data['rounds']} rounds."
        )
        if data.get("note"):
            out += ["", data["note"]]
        out.append("")
        table = []
        for r in data["results"]:
            ev, t, ratio, err = r["evidence"], r["times"], r["ratios"], r["errors"]
            table.append([
                f"{r['layer']}({r['size']}) x{r['layers']}, batch {r['batch']}, "
                f"{r['steps']} steps",
                f"{_cudnn(ev['pytorch'])} / {_cudnn(ev['keras_call'])} / "
                f"{_cudnn(ev['compile_inference'])}",
                _ms(t["pytorch"]["median_ms"]),
                f"{_ms(t['keras_call']['median_ms'])} ({ratio['keras_call']:.2f}x)",
                f"{_ms(t['compile_inference']['median_ms'])} "
                f"(**{ratio['compile_inference']:.2f}x**)",
                " / ".join(f"{err[k]['compile_inference']:.0e}"
                           for k in ("default", "tf32_off") if k in err)
                + f" (PyTorch {err['default']['pytorch']:.0e} / "
                f"{err.get('tf32_off', err['default'])['pytorch']:.0e})",
            ])
        out.append(_table(
            ["workload", "cuDNN ran: PyTorch / Keras call / compile_inference", "PyTorch",
             "Keras's own call", "`compile_inference`",
             "max abs err of compile_inference, TF32 default / off"], table))
    return out


def main(argv=None):
    results = {b: common.read_results(f"inference-{b}") for b in BACKENDS}
    results = {b: r for b, r in results.items() if r is not None}
    conversion = common.read_results("conversion")
    main_job = common.read_results("main_job")
    gpu = read_gpu_results()
    today = datetime.date.today().isoformat()
    lines = [
        "# Performance",
        "",
        f"Generated by `make bench` (`python -m benchmarks.run`) on {today}; the tables "
        "are this run's, the explanation after them is `benchmarks/notes.md`. Reproduce "
        "with `make bench` (about 5-8 minutes on 2 cores).",
        "",
    ]
    if results:
        lines += inference_section(results) + [""]
    if conversion:
        lines += conversion_section(conversion) + [""]
    if main_job:
        lines += main_job_section(main_job) + [""]
    lines += gpu_section(gpu) + [""]
    with open(NOTES) as f:
        lines.append(f.read().rstrip() + "\n")
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
