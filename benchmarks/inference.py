"""Inference of ported models against their PyTorch originals, on CPU.

Issue 6, part 1. Every workload is built in PyTorch, converted by `parity`
(same weights on both sides), and run on the same input; PyTorch runs in
`torch.inference_mode()` with the same thread count as Keras. Each Keras
way of running the model is timed interleaved with PyTorch in this process
(`benchmarks.common.interleaved`), and its outputs are checked against
PyTorch's with `parity`'s float32 tolerance.

    KERAS_BACKEND=tensorflow python -m benchmarks.inference   # or torch, jax

Writes `build/benchmarks/inference-<backend>.json`; `benchmarks.report`
turns it into the table of docs/performance.md.
"""

import argparse
import os
import sys

import numpy as np

from benchmarks import common

BATCH, STEPS, FEATURES, HIDDEN = 64, 100, 256, 256


def _torch_layer(kind, **kwargs):
    import torch

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(FEATURES, HIDDEN, batch_first=True, **kwargs)
    return module.eval()


def recurrent_workload(kind, **kwargs):
    """An `nn.RNN/LSTM/GRU` of 256 units on (64, 100, 256), and its `parity.to_keras` port."""
    import parity
    import torch

    module = _torch_layer(kind, **kwargs)
    x = np.random.default_rng(0).normal(size=(BATCH, STEPS, FEATURES)).astype("float32")
    x_torch = torch.from_numpy(x)
    return {
        "torch_call": lambda: module(x_torch),
        "torch_output": lambda result: result[0].numpy(),
        "keras": parity.to_keras(module),
        "x": x,
        "keras_output": lambda result: result[0],
    }


def hello_workload(batch=None, steps=None):
    """The notes' 3.3 model (Embedding 4x10, 2-layer RNN of 8, Linear 8x4).

    With no sizes, on the notes' own input ("hello", one sequence of 5);
    else on random indices of the given shape.
    """
    import keras
    import parity
    import torch
    from keras_rnn import data, models, torch_twins

    torch.manual_seed(0)
    twin = torch_twins.build_twin("embedding", "rnn").eval()
    model = models.build_embedding_model("rnn")
    parity.copy_weights(twin, model)
    if batch is None:
        x, _ = data.hello_arrays("indices")
    else:
        x = np.random.default_rng(0).integers(0, 4, size=(batch, steps)).astype("int64")
    x_torch = torch.from_numpy(x)
    return {
        "torch_call": lambda: twin(x_torch),
        "torch_output": lambda result: result.numpy().reshape(x.shape[0], x.shape[1], -1),
        "keras": model,
        "x": x,
        "keras_output": lambda result: result,
        "is_model": isinstance(model, keras.Model),
    }


WORKLOADS = {
    "LSTM": lambda: recurrent_workload("LSTM"),
    "GRU": lambda: recurrent_workload("GRU"),
    "SimpleRNN": lambda: recurrent_workload("RNN"),
    "LSTM 2-layer bidirectional": lambda: recurrent_workload(
        "LSTM", num_layers=2, bidirectional=True
    ),
    "3.3 model, the notes' input (1 x 5)": lambda: hello_workload(),
    "3.3 model, 64 x 100": lambda: hello_workload(64, 100),
}

SIZES = {
    "LSTM": "input 256, hidden 256, batch 64, 100 steps",
    "GRU": "input 256, hidden 256, batch 64, 100 steps",
    "SimpleRNN": "input 256, hidden 256, batch 64, 100 steps",
    "LSTM 2-layer bidirectional": "input 256, hidden 256, batch 64, 100 steps",
    "3.3 model, the notes' input (1 x 5)": "Embedding(4, 10), RNN(10, 8, 2 layers), Linear(8, 4)",
    "3.3 model, 64 x 100": "Embedding(4, 10), RNN(10, 8, 2 layers), Linear(8, 4)",
}


def _as_model(keras_obj, x):
    """`keras_obj` as a functional model sharing its weights (for `predict`)."""
    import keras

    if isinstance(keras_obj, keras.Model):
        return keras_obj
    inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
    return keras.Model(inputs, keras_obj(inputs))


def keras_candidates(backend, keras_obj, x):
    """`{name: (call, how it is run)}` for the Keras ways of running `keras_obj` on `x`."""
    import keras
    from parity.serving import compile_inference

    x_backend = keras.ops.convert_to_tensor(x)
    candidates = {}
    if backend == "tensorflow":
        import tensorflow as tf

        model = _as_model(keras_obj, x)
        function = tf.function(lambda inputs: keras_obj(inputs, training=False))
        candidates["eager"] = (lambda: keras_obj(x_backend, training=False), "`model(x)`")
        candidates["predict"] = (
            lambda: model.predict(x, batch_size=len(x), verbose=0),
            "`model.predict(x, batch_size=len(x))`",
        )
        candidates["tf.function"] = (lambda: function(x_backend), "`tf.function(model)`")
        fast = compile_inference(keras_obj)
        candidates["compile_inference"] = (
            lambda: fast(x_backend), "`parity.serving.compile_inference(model)` (XLA)"
        )
        no_xla = compile_inference(keras_obj, jit_compile=False)
        candidates["compile_inference without XLA"] = (
            lambda: no_xla(x_backend), "`compile_inference(model, jit_compile=False)`"
        )
    elif backend == "torch":
        import torch

        def eager():
            with torch.no_grad():
                return keras_obj(x_backend, training=False)

        candidates["eager"] = (eager, "`model(x)` under `torch.no_grad()`")
        fast = compile_inference(keras_obj)
        candidates["compile_inference"] = (
            lambda: fast(x_backend), "`parity.serving.compile_inference(model)`"
        )
    elif backend == "jax":
        import jax

        fast = compile_inference(keras_obj)
        candidates["compile_inference"] = (
            lambda: jax.block_until_ready(fast(x_backend)),
            "`parity.serving.compile_inference(model)` (`jax.jit`)",
        )
    return candidates


def _numpy(value):
    import keras

    return keras.ops.convert_to_numpy(value)


def run_workload(name, backend, rounds):
    import torch
    from parity.tolerance import default_tolerance, diff_arrays

    workload = WORKLOADS[name]()
    keras_obj, x = workload["keras"], workload["x"]

    def torch_call():
        with torch.inference_mode():
            return workload["torch_call"]()

    expected = workload["torch_output"](torch_call())
    tolerance = default_tolerance("float32")
    candidates = keras_candidates(backend, keras_obj, x)
    calls, rows = {"PyTorch": torch_call}, {}
    for label, (call, how) in candidates.items():
        first, first_s = common.timed(call)
        if label == "predict":  # numpy arrays, a list of them for several outputs
            output = first[0] if isinstance(first, (list, tuple)) else first
        else:
            output = _numpy(workload["keras_output"](first))
        diff = diff_arrays("outputs", output, expected, **tolerance)
        calls[label] = call
        rows[label] = {"how": how, "first_call_s": first_s,
                       "max_abs_error": diff.max_abs_error, "within_tolerance": diff.ok}
    waited = common.wait_for_quiet()
    load_before = common.load()
    with common.OtherLoad() as other:
        times = common.interleaved(calls, rounds)
    baseline = common.summary(times["PyTorch"])
    for label in rows:
        rows[label].update(common.summary(times[label]))
        rows[label]["ratio"] = rows[label]["median_ms"] / baseline["median_ms"]
        rows[label]["min_ratio"] = rows[label]["min_ms"] / baseline["min_ms"]
    return {"workload": name, "sizes": SIZES[name], "pytorch": baseline, "keras": rows,
            "load_before": load_before, "load_after": common.load(),
            "other_cores": other.cores, "waited_s": waited}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", str(common.MIN_RUNS))))
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS),
                        help="one workload (repeatable; default: all)")
    args = parser.parse_args(argv)

    import keras

    backend = keras.backend.backend()
    common.set_threads()
    common.PAUSE_S = common.pause_for(backend)
    results = []
    for name in args.workload or list(WORKLOADS):
        row = run_workload(name, backend, args.rounds)
        results.append(row)
        cells = ", ".join(
            f"{label} {r['median_ms']:.2f} ms ({r['ratio']:.2f}x)" for label, r in row["keras"].items()
        )
        print(f"[{backend}] {name}: PyTorch {row['pytorch']['median_ms']:.2f} ms; {cells}",
              flush=True)
    path = common.write_results(f"inference-{backend}", {
        "backend": backend, "machine": common.machine(), "rounds": args.rounds,
        "results": results,
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
