"""Scale: 10,000-step sequences and a 92M-parameter stack convert and compare
within the memory of a 2-core / 24 GB machine.

Marked `slow`: `make test` skips them, `make test-all` runs them. Each
workload runs in its own Python process, so that its peak resident memory
(`ru_maxrss`) is its own and not the test session's; the process prints
one JSON line (errors, seconds, peak memory) that the test checks. Run one
by hand with `python tests/test_scale.py wide-lstm`.

Everything is float32 with a batch of 2: the point is the length of the
sequence and the size of the weights, not the batch.
"""

import json
import os
import resource
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 2**30


def run_workload(name, timeout):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, os.path.abspath(__file__), name], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{name}: {measured}")  # shown with `pytest -rP`
    return measured


def test_10000_steps_lstm():
    measured = run_workload("long-lstm", timeout=900)
    assert measured["ok"] and measured["max_abs_error"] < 1e-6  # measured ~2e-7
    assert measured["peak_rss_gib"] < 4


def test_10000_steps_bidirectional_gru_with_lengths():
    measured = run_workload("long-bigru-lengths", timeout=1200)
    assert measured["ok"] and measured["max_abs_error"] < 1e-6
    assert measured["peak_rss_gib"] < 4


def test_4_layer_bidirectional_1024_wide_lstm():
    measured = run_workload("wide-lstm", timeout=1200)
    assert measured["parameters"] == 92_340_224
    assert measured["ok"] and measured["back_ok"] and measured["lossless_weights_equal"]
    assert measured["peak_rss_gib"] < 8  # ~4 copies of 369 MB of weights, measured ~3 GiB


# -- the workloads, each run in a fresh process ----------------------------------------


def _long_lstm():
    import numpy as np
    import torch

    import parity

    module = torch.nn.LSTM(8, 32)  # time-major
    x = np.random.default_rng(0).normal(size=(10_000, 2, 8)).astype("float32")
    report = parity.compare(module, parity.to_keras(module), x)
    return {"ok": report.ok, "max_abs_error": report.max_abs_error}


def _long_bigru_lengths():
    import numpy as np
    import torch

    import parity

    module = torch.nn.GRU(8, 32, bidirectional=True, batch_first=True)
    x = np.random.default_rng(0).normal(size=(2, 10_000, 8)).astype("float32")
    report = parity.compare(module, parity.to_keras(module), x,
                            lengths=np.array([10_000, 7_321]))
    return {"ok": report.ok, "max_abs_error": report.max_abs_error}


def _wide_lstm():
    import numpy as np
    import torch

    import parity
    from parity.transforms import sum_biases

    module = torch.nn.LSTM(1024, 1024, num_layers=4, bidirectional=True)
    x = np.random.default_rng(0).normal(size=(16, 2, 1024)).astype("float32")
    keras_model = parity.to_keras(module)
    report = parity.compare(module, keras_model, x)
    back = parity.to_torch(keras_model)
    original = dict(module.named_parameters())
    lossless = True
    for name, p in back.named_parameters():
        expected = original[name].detach().numpy()
        if name.startswith("bias_ih"):
            expected = sum_biases(expected, original[name.replace("_ih", "_hh")].detach().numpy())
        elif name.startswith("bias_hh"):
            expected = np.zeros_like(expected)
        lossless = lossless and np.array_equal(p.detach().numpy().view(np.uint32),
                                               expected.view(np.uint32))
    back_report = parity.compare(back, keras_model, np.ascontiguousarray(np.swapaxes(x, 0, 1)))
    return {
        "parameters": sum(p.numel() for p in module.parameters()),
        "ok": report.ok, "max_abs_error": report.max_abs_error,
        "back_ok": back_report.ok, "lossless_weights_equal": bool(lossless),
    }


WORKLOADS = {"long-lstm": _long_lstm, "long-bigru-lengths": _long_bigru_lengths,
             "wide-lstm": _wide_lstm}


if __name__ == "__main__":
    import torch

    torch.manual_seed(0)  # the weights PyTorch initialises
    start = time.perf_counter()
    measured = WORKLOADS[sys.argv[1]]()
    measured["seconds"] = round(time.perf_counter() - start, 1)
    # Linux reports ru_maxrss in KiB.
    measured["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, 2)
    print(json.dumps(measured))
