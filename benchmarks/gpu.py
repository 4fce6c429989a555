"""GPU check: converted Keras LSTM/GRU layers run cuDNN, and how fast (issue 6, part 4).

One short script for a machine with an NVIDIA GPU (it refuses, with exit
status 2, where there is none):

1. builds `nn.LSTM` / `nn.GRU` (input and hidden 256; and 1024) on the GPU,
   converts each with `parity.to_keras` (same weights);
2. proves from the ops that ran that Keras used cuDNN: the layer is called
   eagerly with TensorFlow's device-placement log on, and the log must show
   a `CudnnRNN*` op executed on the GPU; the compiled function
   `compile_inference` returns must contain that op too; PyTorch's profiler
   must show its `_cudnn_rnn` kernel;
3. times PyTorch (cuDNN, `inference_mode`) and Keras (`compile_inference`,
   i.e. the layer's own cuDNN call inside `tf.function`), interleaved,
   medians of at least 5 runs, each call synchronised.

    KERAS_BACKEND=tensorflow python -m benchmarks.gpu     # build/benchmarks/gpu.json

`make bench` runs it only where a GPU is visible; `benchmarks.report` puts
its table, with the GPU's name, into docs/performance.md.
"""

import contextlib
import os
import re
import sys
import tempfile

import numpy as np

from benchmarks import common

SIZES = ((256, 64, 100), (1024, 64, 100))  # (input = hidden, batch, steps)


def gpu_available():
    """`(torch sees a GPU, TensorFlow sees a GPU)`."""
    import tensorflow as tf
    import torch

    return torch.cuda.is_available(), bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def captured_stderr():
    """Captures file descriptor 2 (TensorFlow's C++ logging) into a string list."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        lines = []
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def keras_ops_that_ran(layer, x):
    """The TensorFlow ops one eager call of `layer` executed, with their devices."""
    import tensorflow as tf

    tf.debugging.set_log_device_placement(True)
    try:
        with captured_stderr() as lines:
            result = layer(x)
            _ = [np.asarray(r) for r in result]
    finally:
        tf.debugging.set_log_device_placement(False)
    ran = []
    for line in lines:
        match = re.search(r"Executing op (\S+) in device (\S+)", line)
        if match:
            ran.append((match.group(1), match.group(2)))
    return ran


def graph_op_types(concrete_function):
    """Every op type in a concrete function's graph and the functions it calls."""
    types = {op.type for op in concrete_function.graph.get_operations()}
    for function in concrete_function.graph._functions.values():
        definition = function.cached_definition if hasattr(function, "cached_definition") \
            else function.definition
        types |= {node.op for node in definition.node_def}
    return types


def torch_kernels_that_ran(module, x):
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        with torch.inference_mode():
            module(x)
        torch.cuda.synchronize()
    return {event.key for event in prof.key_averages()}


def run_case(kind, size, batch, steps, rounds):
    import keras
    import tensorflow as tf
    import torch

    import parity
    from parity.serving import compile_inference

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(size, size, batch_first=True).cuda().eval()
    keras_layer = parity.to_keras(module.cpu())
    module.cuda()
    x = np.random.default_rng(0).normal(size=(batch, steps, size)).astype("float32")
    x_torch = torch.from_numpy(x).cuda()
    with tf.device("/GPU:0"):
        x_keras = tf.constant(x)

    ran = keras_ops_that_ran(keras_layer, x_keras)
    cudnn_ran = sorted({op for op, device in ran if op.startswith("CudnnRNN") and "GPU" in device})
    fast = compile_inference(keras_layer)
    fast(x_keras)
    compiled_types = graph_op_types(fast._call.get_concrete_function(x_keras, None))
    torch_kernels = torch_kernels_that_ran(module, x_torch)

    def torch_call():
        with torch.inference_mode():
            out = module(x_torch)
        torch.cuda.synchronize()
        return out

    def keras_call():
        out = fast(x_keras)
        return [np.asarray(o) for o in out][0]  # copies to host: waits for the GPU

    def torch_to_host():
        with torch.inference_mode():
            return module(x_torch)[0].cpu().numpy()

    difference = float(np.abs(keras_call() - torch_to_host()).max())
    times = common.interleaved(
        {"PyTorch": lambda: torch_to_host(), "Keras": keras_call}, rounds
    )
    torch_row, keras_row = common.summary(times["PyTorch"]), common.summary(times["Keras"])
    return {
        "layer": kind, "size": size, "batch": batch, "steps": steps,
        "keras_cudnn_ops_ran": cudnn_ran,
        "keras_compiled_cudnn_ops": sorted(t for t in compiled_types if t.startswith("Cudnn")),
        "torch_cudnn_kernels": sorted(k for k in torch_kernels if "cudnn" in k.lower()),
        "pytorch": torch_row, "keras": keras_row,
        "ratio": keras_row["median_ms"] / torch_row["median_ms"],
        "max_abs_error": difference,
        "keras_runs_cudnn": bool(cudnn_ran) and any(
            t.startswith("Cudnn") for t in compiled_types),
        "pytorch_runs_cudnn": any("cudnn" in k.lower() for k in torch_kernels),
    }


def main(argv=None):
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    if keras.backend.backend() != "tensorflow":
        print("benchmarks.gpu checks Keras's TensorFlow backend; run it with "
              f"KERAS_BACKEND=tensorflow. Received: {keras.backend.backend()}")
        return 2
    torch_gpu, tf_gpu = gpu_available()
    if not (torch_gpu and tf_gpu):
        print("benchmarks.gpu: no GPU visible (PyTorch: "
              f"{'yes' if torch_gpu else 'no'}, TensorFlow: {'yes' if tf_gpu else 'no'}); "
              "nothing measured. The GPU figures of docs/performance.md stay 'not measured'.")
        return 2
    import tensorflow as tf
    import torch

    rounds = int(os.environ.get("BENCH_ROUNDS", "7"))
    results = []
    for size, batch, steps in SIZES:
        for kind in ("LSTM", "GRU"):
            row = run_case(kind, size, batch, steps, rounds)
            results.append(row)
            print(f"{kind} {size}: cuDNN in Keras {row['keras_runs_cudnn']} "
                  f"({', '.join(row['keras_cudnn_ops_ran']) or 'none ran'}), in PyTorch "
                  f"{row['pytorch_runs_cudnn']}; PyTorch {row['pytorch']['median_ms']:.2f} ms, "
                  f"Keras {row['keras']['median_ms']:.2f} ms ({row['ratio']:.2f}x), "
                  f"max abs diff {row['max_abs_error']:.1e}", flush=True)
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    payload = {
        "gpu": torch.cuda.get_device_name(0),
        "tensorflow_gpu": details.get("device_name"),
        "cuda": torch.version.cuda, "cudnn_torch": torch.backends.cudnn.version(),
        "machine": common.machine(), "rounds": rounds, "results": results,
    }
    path = common.write_results("gpu", payload)
    print(f"wrote {path}")
    failed = [f"{r['layer']} {r['size']}" for r in results if not r["keras_runs_cudnn"]]
    if failed:
        print(f"Keras did NOT run cuDNN for: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
