"""GPU check: converted Keras LSTM/GRU layers run cuDNN, and how fast (issue 6, part 4).

One short script for a machine with an NVIDIA GPU (it refuses, with exit
status 2, where there is none):

1. builds `nn.LSTM` / `nn.GRU` (input and hidden 256; and 1024) on the GPU,
   converts each with `parity.to_keras` (same weights);
2. proves from the ops that ran that Keras used cuDNN: the layer is called
   eagerly under TensorFlow's debugger (tfdbg2), whose record of executed
   ops must show a `CudnnRNN*` op on the GPU; the compiled function
   `compile_inference` returns must contain that op too; PyTorch's profiler
   must show its `_cudnn_rnn` kernel;
3. times PyTorch (cuDNN, `inference_mode`) and Keras (`compile_inference`,
   i.e. the layer's own cuDNN call inside `tf.function`), interleaved,
   medians of at least 5 runs, each call synchronised.

    KERAS_BACKEND=tensorflow python -m benchmarks.gpu     # build/benchmarks/gpu.json

It needs CUDA builds of both frameworks; constraints.txt pins CPU ones
(torch `+cpu`), so install e.g. `tensorflow[and-cuda]==2.21.0` and the CUDA
wheel of `torch==2.13.0` first.

`make bench` runs it only where a GPU is visible; `benchmarks.report` puts
its table, with the GPU's name, into docs/performance.md.
"""

import os
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


def keras_ops_that_ran(layer, x):
    """`[(op type, device)]` of every op one eager call of `layer` executed.

    Recorded by TensorFlow's debugger (tfdbg2), which logs each eager op
    execution with its output device.
    """
    import tensorflow as tf
    from tensorflow.python.debug.lib import debug_events_reader

    root = tempfile.mkdtemp(prefix="parity-gpu-")
    tf.debugging.experimental.enable_dump_debug_info(
        root, tensor_debug_mode="NO_TENSOR", circular_buffer_size=-1
    )
    try:
        result = layer(x)
        _ = [np.asarray(r) for r in result]
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


def graph_op_types(concrete_function):
    """Every op type in a concrete function's graph and the functions it calls."""
    graph_def = concrete_function.graph.as_graph_def()
    types = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        types |= {node.op for node in function.node_def}
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
        import torch

        print("benchmarks.gpu: no GPU visible (PyTorch: "
              f"{'yes' if torch_gpu else 'no'}, TensorFlow: {'yes' if tf_gpu else 'no'}; "
              f"torch {torch.__version__}); nothing measured. Both frameworks need CUDA "
              "builds and a GPU. The GPU figures of docs/performance.md stay 'not measured'.")
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
