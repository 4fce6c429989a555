"""GPU check: do converted Keras LSTM/GRU layers run cuDNN, and how fast (issue 6, part 4).

One short script for a machine with an NVIDIA GPU (it refuses, with exit
status 2, where there is none). It runs on the Keras backend that
`KERAS_BACKEND` names; run it once per backend you ship on:

    KERAS_BACKEND=torch      python -m benchmarks.gpu   # benchmarks/results/gpu-torch.json
    KERAS_BACKEND=tensorflow python -m benchmarks.gpu   # needs a CUDA build of TensorFlow
    KERAS_BACKEND=jax        python -m benchmarks.gpu   # needs a CUDA build of jaxlib

For each workload (LSTM and GRU with input = hidden 256 and 1024, and a
2-layer bidirectional LSTM(256); batch 64, 100 steps) it

1. builds the PyTorch module on the GPU and converts it with
   `parity.to_keras` (the same weights);
2. records the ops that ran -- not only the time -- for three calls:
   PyTorch's module, the Keras model's own call, and `compile_inference`:
   - torch backend: PyTorch's profiler; cuDNN ran when `aten::_cudnn_rnn`
     (the op behind cuDNN's fused RNN kernels) is among the recorded ops;
   - TensorFlow: the debugger's (tfdbg2) record of an eager call must show
     a `CudnnRNN*` op placed on the GPU, and the graph `compile_inference`
     traced must contain one;
   - JAX: the compiled HLO must call a cuDNN RNN (Keras's JAX backend has
     no cuDNN RNN, so this reports "no", from the HLO);
3. checks the outputs against a float64 CPU run of the PyTorch module
   (cuDNN may use TF32 on Ampere and later: the error with PyTorch's
   default `allow_tf32` and with it off are both recorded);
4. times the three calls, interleaved, medians of at least 5 rounds, each
   call synchronised with the GPU.

The GPU results are committed (`benchmarks/results/`), because `make bench`
usually runs on a machine without a GPU; `benchmarks.report` puts them,
with the GPU named, into docs/performance.md.

`--cpu-smoke` runs the same pipeline on the CPU with tiny sizes (it proves
the script works, records that no cuDNN ran, and writes to `build/`): the
test suite runs it so that the script cannot rot between GPU runs.
"""

import argparse
import copy
import json
import os
import sys
import tempfile

import numpy as np

from benchmarks import common

# (layer, input = hidden, layers, bidirectional); batch and steps below.
CASES = (
    ("LSTM", 256, 1, False),
    ("GRU", 256, 1, False),
    ("LSTM", 1024, 1, False),
    ("GRU", 1024, 1, False),
    ("LSTM", 256, 2, True),
)
BATCH, STEPS = 64, 100
SMOKE_CASES = (("LSTM", 8, 1, False), ("GRU", 8, 2, True))
SMOKE_BATCH, SMOKE_STEPS = 2, 5
GPU_RESULTS = os.path.join(common.ROOT, "benchmarks", "results")


# --------------------------------------------------------------------------
# What ran, per backend
# --------------------------------------------------------------------------


def torch_ops_that_ran(fn):
    """`(op names, CUDA kernel names by total time)` of one call of `fn`, from PyTorch's profiler."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        fn()
        _synchronize("torch")
    events = prof.key_averages()
    ops = sorted({e.key for e in events if e.key.startswith("aten::")})
    kernels = sorted(
        (e for e in events if e.device_type.name == "CUDA"),
        key=lambda e: -getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0)),
    )
    return ops, [e.key[:80] for e in kernels[:4]]


def torch_ran_cudnn(ops):
    return "aten::_cudnn_rnn" in ops


def tensorflow_ops_that_ran(fn):
    """`[(op type, device)]` of every op one eager call executed (tfdbg2's record)."""
    import tensorflow as tf
    from tensorflow.python.debug.lib import debug_events_reader

    root = tempfile.mkdtemp(prefix="parity-gpu-")
    tf.debugging.experimental.enable_dump_debug_info(
        root, tensor_debug_mode="NO_TENSOR", circular_buffer_size=-1
    )
    try:
        _first_output_to_host(fn())
    finally:
        tf.debugging.experimental.disable_dump_debug_info()
    with debug_events_reader.DebugDataReader(root) as reader:
        reader.update()
        return [
            (execution.op_type,
             ",".join(reader.device_name_by_id(d)
                      for d in (execution.output_tensor_device_ids or [])))
            for execution in reader.executions()
        ]


def tensorflow_graph_op_types(concrete_function):
    """Every op type in a concrete function's graph and the functions it calls."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
    return types


def jax_custom_calls(lowered):
    """The custom-call targets in the compiled HLO of a lowered JAX function."""
    import re

    text = lowered.compile().as_text()
    return sorted(set(re.findall(r'custom_call_target="([^"]+)"', text)))


# --------------------------------------------------------------------------
# One workload
# --------------------------------------------------------------------------


def _synchronize(backend):
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def _first(result):
    while isinstance(result, (list, tuple)):
        result = result[0]
    return result


def _first_output_to_host(result):
    import keras
    import torch

    first = _first(result)
    if isinstance(first, torch.Tensor):  # PyTorch's own output, on any Keras backend
        return first.detach().cpu().double().numpy()
    return np.asarray(keras.ops.convert_to_numpy(first), dtype="float64")


def _block(backend, result):
    """Waits until `result` is computed on the device, without copying it."""
    first = _first(result)
    if backend == "torch":
        _synchronize("torch")
    elif backend == "jax":
        first.block_until_ready()
    else:
        import tensorflow as tf

        tf.test.experimental.sync_devices()
    return result


def _torch_module(kind, size, layers, bidirectional, device):
    import torch

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(
        size, size, num_layers=layers, bidirectional=bidirectional, batch_first=True
    )
    return module.to(device).eval()


def _keras_input(backend, x):
    if backend == "torch":
        import torch

        return torch.from_numpy(x).to("cuda" if torch.cuda.is_available() else "cpu")
    if backend == "jax":
        import jax

        return jax.device_put(x)
    import tensorflow as tf

    with tf.device("/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"):
        return tf.constant(x)


def run_case(backend, kind, size, layers, bidirectional, batch, steps, rounds):
    import torch

    import parity
    from parity.serving import compile_inference

    device = "cuda" if torch.cuda.is_available() else "cpu"
    module = _torch_module(kind, size, layers, bidirectional, device)
    # converted straight from the module on the GPU
    keras_model = parity.to_keras(module)
    x = np.random.default_rng(0).normal(size=(batch, steps, size)).astype("float32")
    x_torch = torch.from_numpy(x).to(device)
    x_keras = _keras_input(backend, x)
    fast = compile_inference(keras_model)

    def torch_call():
        with torch.inference_mode():
            return _block("torch", module(x_torch))

    def keras_call():
        return _block(backend, keras_model(x_keras, training=False))

    def fast_call():
        return _block(backend, fast(x_keras))

    # Outputs against a float64 CPU run of the same module.
    reference_module = copy.deepcopy(module).cpu().double()
    with torch.no_grad():
        reference = reference_module(torch.from_numpy(x).double())[0].numpy()
    errors = {}
    allow_tf32 = torch.backends.cudnn.allow_tf32
    for tf32 in sorted({allow_tf32, False}, reverse=True):
        torch.backends.cudnn.allow_tf32 = tf32
        label = "default" if tf32 == allow_tf32 else "tf32_off"
        errors[label] = {
            name: float(np.abs(_first_output_to_host(fn()) - reference).max())
            for name, fn in (("pytorch", torch_call), ("keras_call", keras_call),
                             ("compile_inference", fast_call))
        }
    torch.backends.cudnn.allow_tf32 = allow_tf32

    evidence = {}
    torch_ops, torch_kernels = torch_ops_that_ran(torch_call)
    evidence["pytorch"] = {"cudnn": torch_ran_cudnn(torch_ops), "kernels": torch_kernels}
    if backend == "torch":
        for name, fn in (("keras_call", keras_call), ("compile_inference", fast_call)):
            ops, kernels = torch_ops_that_ran(fn)
            evidence[name] = {
                "cudnn": torch_ran_cudnn(ops), "kernels": kernels,
                "ops": [op for op in ops if "rnn" in op or "lstm" in op or "gru" in op],
            }
    elif backend == "tensorflow":
        ran = tensorflow_ops_that_ran(keras_call)
        cudnn_ops = sorted({op for op, dev in ran if op.startswith("CudnnRNN") and "GPU" in dev})
        evidence["keras_call"] = {"cudnn": bool(cudnn_ops), "ops": cudnn_ops}
        fast_call()
        graph = tensorflow_graph_op_types(fast._call.get_concrete_function(x_keras, None))
        graph_cudnn = sorted(t for t in graph if t.startswith("CudnnRNN"))
        evidence["compile_inference"] = {"cudnn": bool(graph_cudnn), "ops": graph_cudnn}
    else:
        import jax

        for name, lowered in (
            ("keras_call", jax.jit(lambda inputs: keras_model(inputs, training=False))
             .lower(x_keras)),
            ("compile_inference", fast._jax_lower(x_keras)),
        ):
            targets = jax_custom_calls(lowered)
            cudnn = [t for t in targets if "cudnn" in t.lower() and "rnn" in t.lower()]
            evidence[name] = {"cudnn": bool(cudnn), "custom_calls": targets}

    times = common.interleaved(
        {"pytorch": torch_call, "keras_call": keras_call, "compile_inference": fast_call},
        rounds,
    )
    rows = {name: common.summary(seconds) for name, seconds in times.items()}
    base = rows["pytorch"]["median_ms"]
    layer = f"{'bidirectional ' if bidirectional else ''}{kind}"
    return {
        "layer": layer, "size": size, "layers": layers, "batch": batch, "steps": steps,
        "times": rows,
        "ratios": {name: row["median_ms"] / base for name, row in rows.items()},
        "errors": errors, "evidence": evidence,
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def gpu_visible(backend):
    import torch

    if not torch.cuda.is_available():
        return False
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny sizes on the CPU: checks the script, measures nothing")
    parser.add_argument("--out", help="folder for the JSON (default: benchmarks/results, "
                        "or build/benchmarks with --cpu-smoke)")
    args = parser.parse_args(argv)
    import keras
    import torch

    backend = keras.backend.backend()
    if not args.cpu_smoke and not gpu_visible(backend):
        print(f"benchmarks.gpu: no GPU visible to PyTorch and Keras's {backend} backend "
              f"(torch {torch.__version__}); nothing measured. Both need CUDA builds and a "
              "GPU. The GPU figures of docs/performance.md stay as they are.")
        return 2
    cases, batch, steps = (SMOKE_CASES, SMOKE_BATCH, SMOKE_STEPS) if args.cpu_smoke \
        else (CASES, BATCH, STEPS)
    rounds = int(os.environ.get("BENCH_ROUNDS", "2" if args.cpu_smoke else "7"))
    results = []
    for kind, size, layers, bidirectional in cases:
        row = run_case(backend, kind, size, layers, bidirectional, batch, steps, rounds)
        results.append(row)
        ev = row["evidence"]
        print(f"{row['layer']} {size} x{layers}: cuDNN ran in PyTorch "
              f"{ev['pytorch']['cudnn']}, Keras call {ev['keras_call']['cudnn']}, "
              f"compile_inference {ev['compile_inference']['cudnn']}; PyTorch "
              f"{row['times']['pytorch']['median_ms']:.2f} ms, Keras call "
              f"{row['ratios']['keras_call']:.2f}x, compile_inference "
              f"{row['ratios']['compile_inference']:.2f}x; max abs error vs float64 "
              f"{row['errors']}", flush=True)
    payload = {
        "backend": backend,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "allow_tf32_default": torch.backends.cudnn.allow_tf32,
        "machine": common.machine(), "rounds": rounds, "smoke": args.cpu_smoke,
        "results": results,
    }
    out = args.out or (common.RESULTS if args.cpu_smoke else GPU_RESULTS)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"gpu-{backend}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=1)
    print(f"wrote {path}")
    if args.cpu_smoke:
        return 0
    failed = [f"{r['layer']} {r['size']}" for r in results
              if not r["evidence"]["keras_call"]["cudnn"]]
    if failed:
        print(f"Keras's own call did NOT run cuDNN on the {backend} backend for: "
              f"{', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
