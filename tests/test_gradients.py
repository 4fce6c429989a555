"""Gradient parity: the same loss differentiated on both sides, compared per PyTorch weight.

The matrix is cell type x layers x bidirectional x bias in float32 (target
1e-5, `parity.default_tolerance`), with float64 cases at 1e-10; every
comparison goes through the one tolerance helper.
"""

import itertools
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KINDS, initial_state, keras_stack, keras_weights, torch_layer
from parity.convert import torch_side
from parity.gradients import assert_gradients, compare_gradients, to_torch_gradients

INPUT, HIDDEN, BATCH, TIME = 3, 4, 2, 5

MATRIX = list(itertools.product(KINDS, (1, 2), (False, True), (True, False)))


def matrix_id(case):
    kind, layers, bi, bias = case
    return f"{kind}-{layers}layer-{'bi' if bi else 'uni'}-{'bias' if bias else 'nobias'}"


def expected_names(layers, bi, bias):
    names = []
    for layer in range(layers):
        for suffix in ("", "_reverse") if bi else ("",):
            weights = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if bias else ())
            names += [f"{w}_l{layer}{suffix}" for w in weights]
    return names


@pytest.mark.parametrize("case", MATRIX, ids=[matrix_id(c) for c in MATRIX])
def test_gradient_matrix_float32(case, rng):
    kind_id, layers, bi, bias = case
    kind, activation = KINDS[kind_id]
    module = torch_layer(kind, activation, INPUT, HIDDEN, layers, bi, bias)
    keras_obj = parity.to_keras(module)
    x = rng.normal(size=(TIME, BATCH, INPUT))
    y = rng.normal(size=(TIME, BATCH, HIDDEN * (2 if bi else 1)))
    report = assert_gradients(module, keras_obj, x, y, loss="mse")
    assert list(report.gradients) == expected_names(layers, bi, bias)
    assert report.atol == 1e-5 and report.max_abs_error < 1e-5
    if bias:
        # Both PyTorch biases get the gradient of the one they feed: for a summed
        # Keras bias that is the same array twice, never (gradient, zeros).
        last = f"_l{layers - 1}"
        mapped = report.keras_gradients
        assert np.any(report.torch_gradients["bias_hh" + last] != 0)
        if kind != "gru":
            np.testing.assert_array_equal(mapped["bias_ih" + last], mapped["bias_hh" + last])


@pytest.mark.parametrize("kind_id", ["rnn-relu", "lstm", "gru"])
def test_gradient_float64(kind_id, rng):
    kind, activation = KINDS[kind_id]
    module = torch_layer(kind, activation, INPUT, HIDDEN, 2, True, True, dtype=torch.float64)
    x = rng.normal(size=(TIME, BATCH, INPUT))
    y = rng.normal(size=(TIME, BATCH, 2 * HIDDEN))
    report = assert_gradients(module, parity.to_keras(module), x, y)
    assert report.atol == 1e-10 and report.rtol == 1e-10


@pytest.mark.parametrize("kind_id", ["rnn-tanh", "lstm", "gru"])
def test_gradient_keras_source_stack(kind_id, rng):
    """A user's `keras.Sequential` (sequences, no states), converted to a batch-first module."""
    kind, activation = KINDS[kind_id]
    keras_obj = keras_stack(kind, activation, INPUT, HIDDEN, 2, True, True, rng=rng)
    module = parity.to_torch(keras_obj)
    x = rng.normal(size=(BATCH, TIME, INPUT))
    h0 = initial_state(kind, rng, 4, BATCH, HIDDEN, "float32")
    targets = {"outputs": rng.normal(size=(BATCH, TIME, 2 * HIDDEN)),
               "h_n": rng.normal(size=(4, BATCH, HIDDEN))}
    report = assert_gradients(module, keras_obj, x, targets, initial_state=h0)
    assert report.loss_label == "mse on outputs, h_n"


@pytest.mark.parametrize("kind_id", ["rnn-tanh", "lstm", "gru"])
@pytest.mark.parametrize("steps", [1, 3], ids=["one-step", "loop"])
def test_gradient_cells(kind_id, steps, rng):
    kind, activation = KINDS[kind_id]
    cell = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind](
        INPUT, HIDDEN)
    x = rng.normal(size=(BATCH, INPUT) if steps == 1 else (steps, BATCH, INPUT))
    y = rng.normal(size=(BATCH, HIDDEN) if steps == 1 else (steps, BATCH, HIDDEN))
    report = assert_gradients(cell, parity.to_keras(cell), x, y)
    assert list(report.gradients) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert report.loss_label == ("mse on h" if steps == 1 else "mse on outputs")


def test_gradient_plain_layers(rng):
    linear = torch.nn.Linear(INPUT, 5)
    classes = rng.integers(0, 5, size=(6,))
    report = assert_gradients(linear, parity.to_keras(linear), rng.normal(size=(6, INPUT)),
                              classes, loss="cross_entropy")
    assert list(report.gradients) == ["weight", "bias"]
    embedding = torch.nn.Embedding(7, 3)
    report = assert_gradients(embedding, parity.to_keras(embedding),
                              np.array([[0, 2, 2], [6, 1, 2]]), None, loss="sum")
    # Row 2 is looked up three times, rows 3-5 never: the lookups add up.
    np.testing.assert_array_equal(report.keras_gradients["weight"][:, 0], [1, 1, 3, 0, 0, 0, 1])


class NotesModel(torch.nn.Module):
    """Embedding -> GRU (2 layers) -> Linear, the shape of the notes' character model."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(4, 6)
        self.rnn = torch.nn.GRU(6, 5, num_layers=2, batch_first=True)
        self.fc = torch.nn.Linear(5, 4)

    def forward(self, x):
        out, _ = self.rnn(self.emb(x))
        return self.fc(out).view(-1, 4)


def test_gradient_whole_model():
    torch_model = NotesModel()
    keras_model = keras.Sequential([
        keras.Input((None,), dtype="int32"), keras.layers.Embedding(4, 6),
        keras.layers.GRU(5, return_sequences=True), keras.layers.GRU(5, return_sequences=True),
        keras.layers.Dense(4),
    ])
    parity.copy_weights(torch_model, keras_model)
    report = assert_gradients(torch_model, keras_model, np.array([[1, 0, 2, 2, 3]]),
                              np.array([0, 2, 2, 3, 1]), loss="cross_entropy")
    assert list(report.gradients) == [name for name, _ in torch_model.named_parameters()]
    assert "rnn.bias_hh_l1" in str(report)


def test_losses_agree_on_every_result(rng):
    module = torch.nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True)
    keras_obj = parity.to_keras(module)
    x = rng.normal(size=(TIME, BATCH, INPUT))
    summed = assert_gradients(module, keras_obj, x, {"outputs": None, "h_n": None, "c_n": None},
                              loss="sum")
    assert summed.loss_label == "sum on outputs, h_n, c_n"

    def cube_torch(result, target):
        return torch.mean(result ** 3)

    def cube_keras(result, target):
        return keras.ops.mean(result ** 3)

    custom = assert_gradients(module, keras_obj, x, None, loss=(cube_torch, cube_keras))
    assert custom.loss_label == "(cube_torch, cube_keras) on outputs"


def test_summed_bias_gradient_goes_to_both_slots():
    """The adjoint of `bias = b_ih + b_hh` copies; the inverse weight map would split (g, 0)."""
    side = torch_side(torch.nn.LSTM(2, 3))
    shapes = {name: tuple(p.shape) for name, p in side.targets.items()}
    keras_grads = {"kernel_l0": np.arange(24.0).reshape(2, 12),
                   "recurrent_kernel_l0": np.arange(36.0).reshape(3, 12),
                   "bias_l0": np.arange(12.0)}
    grads = to_torch_gradients(side.to_other, shapes, keras_grads)
    np.testing.assert_array_equal(grads["bias_ih_l0"], keras_grads["bias_l0"])
    np.testing.assert_array_equal(grads["bias_hh_l0"], keras_grads["bias_l0"])
    np.testing.assert_array_equal(grads["weight_ih_l0"], keras_grads["kernel_l0"].T)


def test_gru_gradients_reorder_gates_and_keep_bias_rows():
    side = torch_side(torch.nn.GRU(2, 1))
    shapes = {name: tuple(p.shape) for name, p in side.targets.items()}
    # Keras columns z, r, h; PyTorch rows r, z, n.
    keras_grads = {"kernel_l0": np.array([[1.0, 2, 3], [4, 5, 6]]),
                   "recurrent_kernel_l0": np.array([[7.0, 8, 9]]),
                   "bias_l0": np.array([[10.0, 11, 12], [13, 14, 15]])}
    grads = to_torch_gradients(side.to_other, shapes, keras_grads)
    np.testing.assert_array_equal(grads["weight_ih_l0"], [[2, 5], [1, 4], [3, 6]])
    np.testing.assert_array_equal(grads["weight_hh_l0"], [[8], [7], [9]])
    np.testing.assert_array_equal(grads["bias_ih_l0"], [11, 10, 12])
    np.testing.assert_array_equal(grads["bias_hh_l0"], [14, 13, 15])


def test_a_perturbed_weight_is_named(rng):
    module = torch.nn.GRU(INPUT, HIDDEN, num_layers=2, bidirectional=True)
    keras_obj = parity.to_keras(module)
    cell = keras_obj.rnn_layers[1].backward_layer.cell
    cell.recurrent_kernel.assign(cell.recurrent_kernel + 0.1)
    x = rng.normal(size=(TIME, BATCH, INPUT))
    y = rng.normal(size=(TIME, BATCH, 2 * HIDDEN))
    report = compare_gradients(module, keras_obj, x, y)
    assert not report.ok and not report["weight_hh_l1_reverse"].ok
    assert report["weight_ih_l1"].ok   # the forward direction of layer 1 is untouched
    with pytest.raises(parity.ParityError, match=r"max abs diff .* > atol 1e-05") as info:
        assert_gradients(module, keras_obj, x, y)
    assert "FAIL at" in str(info.value) and not info.value.report.ok


def test_objects_are_left_as_they_were(rng):
    module = torch.nn.LSTM(INPUT, HIDDEN, dropout=0.0)
    module.train()
    keras_obj = parity.to_keras(module)
    before = {name: p.detach().clone() for name, p in module.named_parameters()}
    keras_before = keras_weights(keras_obj)
    assert_gradients(module, keras_obj, rng.normal(size=(TIME, BATCH, INPUT)), None, "sum")
    assert module.training
    for name, param in module.named_parameters():
        assert param.grad is None and torch.equal(param, before[name])
    for after, previous in zip(keras_weights(keras_obj), keras_before):
        np.testing.assert_array_equal(after, previous)


@pytest.mark.parametrize("loss,y,match", [
    ("l1", None, r"Received: loss='l1'"),
    ((len,), None, r"Received: loss=\(<built-in function len>,\)"),
    ("mse", None, r"needs a target for 'outputs'. Received: y=None"),
    ("sum", np.zeros((TIME, BATCH, HIDDEN)), r"takes no target"),
    ("mse", np.zeros((TIME, BATCH, HIDDEN + 1)), r"Received: shape=\(5, 2, 5\)"),
    ("cross_entropy", np.zeros((TIME, BATCH)), r"integer class targets. Received: dtype=float32"),
    ("mse", {"h": np.zeros(3)}, r"Received: keys \['h'\]"),
])
def test_bad_arguments(loss, y, match, rng):
    module = torch.nn.GRU(INPUT, HIDDEN)
    with pytest.raises(parity.ConversionError, match=match):
        compare_gradients(module, parity.to_keras(module), rng.normal(size=(TIME, BATCH, INPUT)),
                          y, loss)


def test_mismatched_architectures_are_refused(rng):
    keras_obj = parity.to_keras(torch.nn.GRU(INPUT, HIDDEN + 1))
    with pytest.raises(parity.ConversionError, match="Received:"):
        compare_gradients(torch.nn.GRU(INPUT, HIDDEN), keras_obj,
                          rng.normal(size=(TIME, BATCH, INPUT)), None, "sum")


def test_jax_backend_is_not_implemented(monkeypatch, rng):
    module = torch.nn.RNN(INPUT, HIDDEN)
    keras_obj = parity.to_keras(module)
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(NotImplementedError, match=r"backend\(\)='jax'"):
        compare_gradients(module, keras_obj, rng.normal(size=(TIME, BATCH, INPUT)), None, "sum")


TORCH_BACKEND_SCRIPT = textwrap.dedent("""
    import numpy as np, torch, keras, parity
    from parity.gradients import assert_gradients
    assert keras.backend.backend() == "torch"
    rng = np.random.default_rng(0)
    for cls in (torch.nn.LSTM, torch.nn.GRU):
        module = cls(3, 4, num_layers=2, bidirectional=True)
        report = assert_gradients(module, parity.to_keras(module), rng.normal(size=(5, 2, 3)),
                                  rng.normal(size=(5, 2, 8)))
        assert np.any(report.keras_gradients["bias_hh_l1_reverse"] != 0)
    print("ok")
""")


@pytest.mark.slow  # a second Python process importing Keras's torch backend: ~10 s
def test_torch_backend():
    """Keras's torch backend differentiates with autograd (a fresh process: one backend each)."""
    env = dict(os.environ, KERAS_BACKEND="torch")
    result = subprocess.run([sys.executable, "-c", TORCH_BACKEND_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
