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
