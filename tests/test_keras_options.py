"""Keras options PyTorch's layers lack: GRU reset_after=False, hard_sigmoid and
other activations, computed on the PyTorch side by `KerasFormulaRNN`."""

import itertools

import keras
import numpy as np
import pytest
import torch

import parity
from factories import KERAS_LAYERS, keras_weights, randomize_keras
from parity.activations import TORCH_ACTIVATIONS
from parity.torch_modules import KerasGRU, KerasLSTM, KerasSimpleRNN

OPTIONS = {
    "gru-reset-before": ("gru", {"reset_after": False}),
    "gru-hard-sigmoid": ("gru", {"recurrent_activation": "hard_sigmoid"}),
    "gru-reset-before-hard-sigmoid": ("gru", {"reset_after": False,
                                              "recurrent_activation": "hard_sigmoid"}),
    "lstm-hard-sigmoid": ("lstm", {"recurrent_activation": "hard_sigmoid"}),
    "lstm-relu": ("lstm", {"activation": "relu"}),
    "rnn-sigmoid": ("rnn", {"activation": "sigmoid"}),
    "rnn-linear": ("rnn", {"activation": "linear"}),
}
FORMULA = {"rnn": KerasSimpleRNN, "lstm": KerasLSTM, "gru": KerasGRU}
CASES = [(*c, "float32") for c in itertools.product(OPTIONS, (1, 2), (False, True))]
CASES += [(name, 2, True, "float64") for name in OPTIONS]


def keras_object(kind, options, layers, bi, dtype, rng):
    made = []
    for _ in range(layers):
        layer = KERAS_LAYERS[kind](4, return_sequences=True, dtype=dtype, **options)
        made.append(keras.layers.Bidirectional(layer, dtype=dtype) if bi else layer)
    if layers == 1:
        obj = made[0]
        obj.build((None, None, 3))
    else:
        obj = keras.Sequential([keras.Input((None, 3), dtype=dtype), *made])
    return randomize_keras(obj, rng)


@pytest.mark.parametrize("case", CASES, ids=[f"{o}-{n}layer-{'bi' if b else 'uni'}-{d}" for o, n, b, d in CASES])
def test_keras_to_torch_and_back(case, rng):
    name, layers, bi, dtype = case
    kind, options = OPTIONS[name]
    keras_obj = keras_object(kind, options, layers, bi, dtype, rng)
    module = parity.to_torch(keras_obj)
    assert isinstance(module, FORMULA[kind])
    x = rng.normal(size=(2, 6, 3)) * 2   # large enough to reach hard_sigmoid's flat parts
    tol = parity.default_tolerance(dtype)
    parity.assert_parity(module, keras_obj, x, **tol)
    again = parity.to_keras(module)
    parity.assert_parity(module, again, x, **tol)
    for a, b in zip(keras_weights(again), keras_weights(keras_obj)):
        np.testing.assert_array_equal(a, b)   # keras -> torch -> keras is bit-exact


@pytest.mark.parametrize("name", list(OPTIONS))
def test_torch_formula_module_to_keras(name, rng):
    kind, options = OPTIONS[name]
    module = FORMULA[kind](3, 4, num_layers=2, bidirectional=True, batch_first=False, **options)
    keras_model = parity.to_keras(module)
    for key, value in options.items():
        assert getattr(keras_model, key) == value
    parity.assert_parity(module, keras_model, rng.normal(size=(6, 2, 3)))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_formula_module_with_pytorch_options_equals_pytorch(kind, rng):
    """The Python loop computes PyTorch's own layer exactly when the options agree."""
    native = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        3, 4, num_layers=2, bidirectional=True)
    formula = FORMULA[kind](3, 4, num_layers=2, bidirectional=True)
    formula.load_state_dict(native.state_dict())
    x = torch.from_numpy(rng.normal(size=(5, 2, 3)).astype("float32"))
    with torch.no_grad():
        a, b = native(x), formula(x)
    torch.testing.assert_close(b[0], a[0], atol=1e-6, rtol=1e-6)


def test_hard_sigmoid_is_keras_3s_formula():
    x = np.array([-4.0, -3.0, -1.5, 0.0, 0.7, 3.0, 5.0], dtype="float32")
    expected = np.array([0.0, 0.0, 0.25, 0.5, 0.7 / 6 + 0.5, 1.0, 1.0], dtype="float32")
    ours = TORCH_ACTIVATIONS["hard_sigmoid"](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-7)
    np.testing.assert_array_equal(
        ours, keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(x)))


def test_reset_after_false_saves_as_keras_file(tmp_path, rng):
    module = KerasGRU(3, 4, num_layers=2, reset_after=False, batch_first=True)
    model = parity.to_keras(module)
    model.save(tmp_path / "gru.keras")
    reloaded = keras.saving.load_model(tmp_path / "gru.keras", safe_mode=True)
    assert reloaded.reset_after is False
    parity.assert_parity(module, reloaded, rng.normal(size=(2, 5, 3)))


def test_unknown_activation_for_the_formula_module():
    with pytest.raises(ValueError, match="Received: activation='gelu'"):
        KerasLSTM(3, 4, activation="gelu")
