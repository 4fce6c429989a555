"""Test set-up: the Keras backend is fixed before anything imports keras."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
if torch.cuda.is_available():
    # The suite checks exactness (float32 within 1e-5). On a GPU, PyTorch lets
    # cuDNN compute float32 RNNs in TF32 by default, ~4e-4 from float64 on an
    # H200 (docs/performance.md): that is a precision choice of the runtime, not
    # of the conversion, so the suite runs without it.
    torch.backends.cudnn.allow_tf32 = False
if os.environ["KERAS_BACKEND"] == "jax":
    import jax  # noqa: E402

    # Likewise JAX: float32 matrix products (and cuDNN's LSTM) on a GPU run at
    # reduced precision unless asked for the highest (a no-op on the CPU).
    jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# Hypothesis profiles (tests/test_properties.py). "default" keeps `make test`
# within the CI budget and draws the same examples every run; `pytest
# --hypothesis-profile=thorough` (a built-in option of hypothesis's pytest
# plugin, which loads it after this file) draws many more, at random.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default", max_examples=40, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=1000, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")
