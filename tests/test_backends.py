"""Backend facts `parity` reports instead of loosening tolerances."""

import os
import subprocess
import sys

import keras
import pytest

from parity.backends import float64_problems


def test_tensorflow_computes_float64_exactly():
    assert keras.backend.backend() == "tensorflow"
    assert float64_problems() == ()


TORCH_BACKEND_SCRIPT = """
import numpy as np, torch, parity
module = torch.nn.RNN(3, 4).double()
report = parity.compare(module, parity.to_keras(module), np.random.default_rng(0).normal(size=(5, 2, 3)), atol=1e-10, rtol=1e-10)
print("OK" if report.ok else "FAIL")
print(str(report))
"""


def test_torch_backend_float64_limit_is_reported():
    """On Keras's torch backend float64 matmuls run in float32: the report says so."""
    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", TORCH_BACKEND_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "note: matmul computes float64 in float32 on the torch backend" in result.stdout
    # the float64 tolerance was not loosened: the comparison fails
    assert result.stdout.splitlines()[0] == "FAIL"


def test_compile_inference_on_the_torch_backend():
    """`compile_inference` has its own code path on Keras's torch backend (PyTorch's
    fused kernels on the Keras weights); run its tests there too, in the default suite.

    A regression in that path (a `NameError` for `Bidirectional(merge_mode=None,
    return_state=True)`) once passed the TensorFlow-only default suite.
    """
    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         os.path.join(os.path.dirname(__file__), "test_serving.py")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_gpu_check_script_runs(tmp_path):
    """`benchmarks/gpu.py` runs on GPUs only now and then; its `--cpu-smoke` mode runs
    the whole pipeline (conversion, ops recorded by PyTorch's profiler, errors,
    timings) on the CPU, so that the script is known to work before a GPU run."""
    import json

    env = dict(os.environ, KERAS_BACKEND="torch", TF_CPP_MIN_LOG_LEVEL="3",
               BENCH_ROUNDS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--cpu-smoke", "--out", str(tmp_path)],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    payload = json.loads((tmp_path / "gpu-torch.json").read_text())
    assert payload["smoke"] is True and len(payload["results"]) == 2
    for row in payload["results"]:
        # no GPU: nothing ran cuDNN, and the profiler's record says so
        assert {name: ev["cudnn"] for name, ev in row["evidence"].items()} == {
            "pytorch": False, "keras_call": False, "compile_inference": False}
        assert max(row["errors"]["default"].values()) < 1e-5
        assert set(row["ratios"]) == {"pytorch", "keras_call", "compile_inference"}
