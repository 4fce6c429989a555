"""Converters skip the initialisation they would overwrite, invisibly.

`to_keras` builds Keras layers with unfilled weights instead of running
their initialisers (the recurrent kernel's `orthogonal` is a QR per matrix)
and then gives the layers their own initialisers back; `to_torch` builds
modules on the meta device and gives them uninitialised memory. Neither may
show: every weight is the source's, `get_config()` reports Keras's defaults,
a saved model reloads, and a clone from the config initialises like a fresh
layer. Copies read the source through read-only views, never writing to it.
"""

import keras
import numpy as np
import pytest
import torch

import parity
from parity import recurrent

CASES = {
    "rnn": lambda: torch.nn.RNN(3, 5),
    "lstm": lambda: torch.nn.LSTM(3, 5),
    "gru": lambda: torch.nn.GRU(3, 5),
    "lstm-2layer-bi": lambda: torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True),
    "gru-2layer-bi-nobias": lambda: torch.nn.GRU(3, 5, num_layers=2, bidirectional=True,
                                                  bias=False),
    "lstmcell": lambda: torch.nn.LSTMCell(3, 5),
    "linear": lambda: torch.nn.Linear(3, 5),
    "embedding": lambda: torch.nn.Embedding(7, 5),
}


def _initializer_configs(obj):
    """`{(layer position, key): initializer config}` over `obj` and every layer inside it."""
    found = {}
    for position, layer in enumerate(obj._flatten_layers(include_self=True)):
        for key, value in layer.get_config().items():
            if key.endswith("_initializer"):
                found[(position, type(layer).__name__, key)] = value
    return found


def _ordinary_layer(keras_obj):
    """The same layer type with default arguments, as Keras builds it."""
    kind = type(keras_obj)
    if isinstance(keras_obj, keras.layers.Embedding):
        return kind(keras_obj.input_dim, keras_obj.output_dim)
    if isinstance(keras_obj, keras.layers.Dense):
        return kind(keras_obj.units)
    if isinstance(keras_obj, parity.TorchRNN):
        return parity.TorchRNN(keras_obj.kind, keras_obj.input_size, keras_obj.hidden_size,
                               num_layers=keras_obj.num_layers,
                               bidirectional=keras_obj.bidirectional,
                               use_bias=keras_obj.use_bias)
    return kind(keras_obj.units)


@pytest.mark.parametrize("case", sorted(CASES))
def test_to_keras_reports_keras_default_initializers(case):
    keras_obj = parity.to_keras(CASES[case]())
    converted = _initializer_configs(keras_obj)
    ordinary = _initializer_configs(_ordinary_layer(keras_obj))
    assert converted and converted == ordinary
    # ... and none of them is a stand-in the weights were built with, except
    # where Keras's own default is zeros (biases).
    defaults = {k: v["class_name"] for k, v in converted.items()}
    assert all(name not in ("Zeros", "Unfilled") for (_, _, key), name in defaults.items()
               if key != "bias_initializer")
    assert "Unfilled" not in defaults.values()


@pytest.mark.parametrize("case", sorted(CASES))
def test_to_keras_copies_every_weight_and_leaves_the_source(case):
    module = CASES[case]()
    before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    keras_obj = parity.to_keras(module)
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key]), key
    back = parity.to_torch(keras_obj)
    # keras -> torch puts the summed SimpleRNN/LSTM bias into bias_ih
    for key, value in module.state_dict().items():
        if key.startswith("bias_hh") and not isinstance(module, (torch.nn.GRU, torch.nn.GRUCell)):
            continue
        if key.startswith("bias_ih") and not isinstance(module, (torch.nn.GRU, torch.nn.GRUCell)):
            partner = key.replace("bias_ih", "bias_hh")
            np.testing.assert_allclose(
                back.state_dict()[key].numpy(),
                (value + module.state_dict()[partner]).numpy(), rtol=0, atol=1e-6)
            continue
        assert torch.equal(back.state_dict()[key], value), key


def test_converted_model_reinitialises_like_a_fresh_one():
    keras_obj = parity.to_keras(torch.nn.LSTM(3, 5))
    clone = keras.layers.LSTM.from_config(keras_obj.get_config())
    clone.build((None, None, 3))
    kernel = keras.ops.convert_to_numpy(clone.cell.recurrent_kernel)
    # orthogonal (5 orthonormal rows of 20), as a fresh LSTM's recurrent
    # kernel: not the unfilled memory the converted layer was built with
    np.testing.assert_allclose(kernel @ kernel.T, np.eye(5), atol=1e-5)


def test_converted_model_saves_and_loads(tmp_path):
    module = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
    keras_obj = parity.to_keras(module)
    path = tmp_path / "model.keras"
    keras_obj.save(path)
    loaded = keras.saving.load_model(path)
    assert _initializer_configs(loaded) == _initializer_configs(keras_obj)
    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype("float32")
    parity.assert_parity(module, loaded, np.swapaxes(x, 0, 1))


def test_build_keras_initializes_by_default():
    spec = recurrent.torch_spec(torch.nn.LSTM(3, 5))
    layer = recurrent.build_keras(spec)
    assert np.abs(keras.ops.convert_to_numpy(layer.cell.kernel)).sum() > 0


def test_build_torch_without_initialisation_allocates_real_memory():
    spec = recurrent.torch_spec(torch.nn.GRU(3, 5, num_layers=2))
    module = recurrent.build_torch(spec, initialize=False)
    assert all(p.device.type == "cpu" for p in module.parameters())
    assert module.weight_ih_l1.shape == (15, 5)


def test_copy_reads_read_only_views():
    from parity.convert import torch_side

    module = torch.nn.LSTM(3, 5)
    views = torch_side(module).arrays(copy=False)
    assert all(not v.flags.writeable for v in views.values())
    weight = views["weight_ih_l0"]
    assert np.shares_memory(weight, module.weight_ih_l0.detach().numpy())
    copies = torch_side(module).arrays()
    assert all(c.flags.writeable and not np.shares_memory(c, views[k])
               for k, c in copies.items())
