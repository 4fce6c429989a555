"""Property tests: random architectures and weights survive both round trips.

Hypothesis draws the architecture (cell type and activation, a cell or a
layer stack, sizes 1-64, layers 1-3, directions, bias, dtype, batch_first)
and a seed for the weights and the input. Two properties:

- torch -> keras -> torch: the Keras object computes what the module
  computes (outputs and final states within `parity.default_tolerance`);
  every weight that maps losslessly comes back bit for bit (kernels always,
  GRU biases too); SimpleRNN/LSTM biases come back as their sum in `bias_ih`
  and zeros in `bias_hh`, and from there the trip is a fixpoint.
- keras -> torch -> keras: the torch module computes what the Keras object
  computes, and every Keras weight comes back bit for bit.

The default profile (tests/conftest.py) keeps this within the CI budget;
`pytest --hypothesis-profile=thorough tests/test_properties.py` runs many
more examples.
"""

import dataclasses

import keras
import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

import parity
from parity.convert import keras_side
from parity.transforms import sum_biases

TORCH_LAYERS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TORCH_CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}
KERAS_LAYERS = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
KERAS_CELLS = {"rnn": keras.layers.SimpleRNNCell, "lstm": keras.layers.LSTMCell,
               "gru": keras.layers.GRUCell}


@dataclasses.dataclass(frozen=True)
class Architecture:
    kind: str
    activation: str
    cell: bool
    input_size: int
    hidden: int
    layers: int
    bidirectional: bool
    bias: bool
    dtype: str
    batch_first: bool
    time: int
    batch: int
    seed: int

    @property
    def tolerance(self):
        return parity.default_tolerance(self.dtype)


@st.composite
def architectures(draw):
    kind = draw(st.sampled_from(["rnn", "lstm", "gru"]))
    cell = draw(st.sampled_from([False, False, True]))  # mostly layer stacks
    return Architecture(
        kind=kind,
        activation=draw(st.sampled_from(["tanh", "relu"])) if kind == "rnn" else "tanh",
        cell=cell,
        input_size=draw(st.integers(1, 64)),
        hidden=draw(st.integers(1, 64)),
        layers=1 if cell else draw(st.integers(1, 3)),
        bidirectional=False if cell else draw(st.booleans()),
        bias=draw(st.booleans()),
        dtype=draw(st.sampled_from(["float32", "float64"])),
        batch_first=False if cell else draw(st.booleans()),
        time=draw(st.integers(1, 6)),
        batch=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def torch_module(arch):
    """The torch module, PyTorch's own initialisation (non-zero biases) from the seed."""
    options = {"nonlinearity": arch.activation} if arch.kind == "rnn" else {}
    with torch.random.fork_rng():
        torch.manual_seed(arch.seed)
        if arch.cell:
            module = TORCH_CELLS[arch.kind](arch.input_size, arch.hidden, bias=arch.bias, **options)
        else:
            module = TORCH_LAYERS[arch.kind](
                arch.input_size, arch.hidden, num_layers=arch.layers, bias=arch.bias,
                batch_first=arch.batch_first, bidirectional=arch.bidirectional, **options)
    return module.to(getattr(torch, arch.dtype))


def keras_object(arch):
    """The Keras object a user would write, with random weights from the seed.

    A cell; one layer (or `Bidirectional`); or a `keras.Sequential` stack.
    Weights are normal with standard deviation 1/sqrt(fan-in) (biases 0.1),
    so that relu RNNs stay finite over the steps.
    """
    options = dict(use_bias=arch.bias, dtype=arch.dtype)
    if arch.kind == "rnn":
        options["activation"] = arch.activation
    if arch.cell:
        obj = KERAS_CELLS[arch.kind](arch.hidden, **options)
        obj.build((None, arch.input_size))
    else:
        layers = []
        for _ in range(arch.layers):
            layer = KERAS_LAYERS[arch.kind](arch.hidden, return_sequences=True, **options)
            layers.append(keras.layers.Bidirectional(layer, dtype=arch.dtype)
                          if arch.bidirectional else layer)
        if arch.layers == 1:
            obj = layers[0]
            obj.build((None, None, arch.input_size))
        else:
            obj = keras.Sequential([keras.Input((None, arch.input_size), dtype=arch.dtype),
                                    *layers])
    rng = np.random.default_rng(arch.seed)
    obj.set_weights([
        (rng.normal(size=w.shape) * (1 / np.sqrt(w.shape[0]) if w.ndim == 2 else 0.1))
        .astype(w.dtype)
        for w in obj.get_weights()
    ])
    return obj


def inputs(arch, batch_major):
    """`(time, batch, features)`, or batch-major; `(time, batch, features)` for a cell loop."""
    shape = (arch.time, arch.batch, arch.input_size)
    if batch_major and not arch.cell:
        shape = (arch.batch, arch.time, arch.input_size)
    return np.random.default_rng(arch.seed + 1).normal(size=shape).astype(arch.dtype)


def bits(array):
    array = np.ascontiguousarray(array)
    return array.dtype.str, array.shape, array.view(np.uint8).tobytes()


def assert_same_bits(actual, expected, what):
    assert bits(actual) == bits(expected), what


def torch_arrays(module):
    return {name: p.detach().numpy() for name, p in module.named_parameters()}


@given(architectures())
def test_torch_to_keras_to_torch(arch):
    module = torch_module(arch)
    keras_obj = parity.to_keras(module)
    parity.assert_parity(module, keras_obj, inputs(arch, batch_major=arch.batch_first),
                         **arch.tolerance)

    back = parity.to_torch(keras_obj)
    original, returned = torch_arrays(module), torch_arrays(back)
    assert list(returned) == list(original)
    summed = arch.bias and arch.kind != "gru"
    for name, array in original.items():
        if summed and name.startswith("bias_ih"):
            # SimpleRNN/LSTM keep one bias: b_ih + b_hh, all of it in bias_ih on the way back.
            expected = sum_biases(array, original[name.replace("bias_ih", "bias_hh")])
        elif summed and name.startswith("bias_hh"):
            expected = np.zeros_like(array)
        else:
            expected = array
        assert_same_bits(returned[name], expected, name)
    parity.assert_parity(back, keras_obj, inputs(arch, batch_major=True), **arch.tolerance)

    # From the canonical form on, the round trip changes no bit.
    again = parity.to_torch(parity.to_keras(back))
    for name, array in torch_arrays(again).items():
        assert_same_bits(array, returned[name], f"second trip: {name}")


@given(architectures())
def test_keras_to_torch_to_keras(arch):
    keras_obj = keras_object(arch)
    module = parity.to_torch(keras_obj)
    parity.assert_parity(module, keras_obj, inputs(arch, batch_major=True), **arch.tolerance)

    again = parity.to_keras(module)
    original, returned = keras_side(keras_obj).arrays(), keras_side(again).arrays()
    assert sorted(returned) == sorted(original)
    for key, array in original.items():
        assert_same_bits(returned[key], array, key)
    parity.assert_parity(module, again, inputs(arch, batch_major=True), **arch.tolerance)
