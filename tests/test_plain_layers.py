"""Embedding <-> nn.Embedding and Dense <-> nn.Linear."""

import keras
import numpy as np
import pytest
import torch

import parity
from factories import randomize_keras, skip_unless_float64_exact

DTYPES = ("float32", "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("direction", ["t2k", "k2t"])
def test_dense_linear(dtype, bias, direction, rng):
    skip_unless_float64_exact(dtype)
    if direction == "t2k":
        module = torch.nn.Linear(5, 3, bias=bias).to(getattr(torch, dtype))
        layer = parity.to_keras(module)
        assert isinstance(layer, keras.layers.Dense) and layer.use_bias == bias
    else:
        layer = keras.layers.Dense(3, use_bias=bias, dtype=dtype)
        layer.build((None, 5))
        randomize_keras(layer, rng)
        module = parity.to_torch(layer)
        assert isinstance(module, torch.nn.Linear) and (module.bias is not None) == bias
    # rank-3 input: both apply the layer to the last axis
    x = rng.normal(size=(2, 4, 5))
    parity.assert_parity(module, layer, x, **parity.default_tolerance(dtype))
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.kernel), module.weight.detach().numpy().T
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("direction", ["t2k", "k2t"])
def test_embedding(dtype, direction, rng):
    skip_unless_float64_exact(dtype)
    if direction == "t2k":
        module = torch.nn.Embedding(7, 3).to(getattr(torch, dtype))
        layer = parity.to_keras(module)
        assert isinstance(layer, keras.layers.Embedding)
    else:
        layer = keras.layers.Embedding(7, 3, dtype=dtype)
        layer.build((None,))
        randomize_keras(layer, rng)
        module = parity.to_torch(layer)
        assert isinstance(module, torch.nn.Embedding)
    x = rng.integers(0, 7, size=(2, 5))
    report = parity.assert_parity(module, layer, x, atol=0, rtol=0)  # a lookup is exact
    assert report.max_abs_error == 0


def test_embedding_padding_idx_converts_lookup_exactly(rng):
    module = torch.nn.Embedding(6, 2, padding_idx=0)
    layer = parity.to_keras(module)
    parity.assert_parity(module, layer, np.array([[0, 1, 5]]), atol=0, rtol=0)


def test_embedding_rejects_float_indices():
    module = torch.nn.Embedding(6, 2)
    with pytest.raises(parity.ConversionError, match="integer indices. Received: dtype=float64"):
        parity.compare(module, parity.to_keras(module), np.zeros((1, 3)))
