"""The explicit registry: one line per family, duplicates refused."""

import keras
import pytest
import torch

import parity
from parity import gru, registry


def test_every_family_is_registered():
    assert set(registry.RECURRENT) == {"rnn", "lstm", "gru"}
    assert set(registry.PLAIN) == {"dense", "embedding"}
    assert registry.lookup_type(torch.nn.GRU(2, 3)) == (gru, "layer")
    assert registry.lookup_type(keras.layers.GRUCell(3)) == (gru, "cell")
    assert registry.lookup_type(torch.nn.Conv1d(1, 1, 1)) is None


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="'gru' is already registered"):
        registry.register_recurrent(gru)
    with pytest.raises(ValueError, match="'dense' is already registered"):
        registry.register_plain(parity.dense)


def test_subclasses_resolve_to_their_registered_base():
    class MyLSTM(torch.nn.LSTM):
        pass

    module = MyLSTM(3, 4)
    parity.assert_parity(module, parity.to_keras(module), torch.randn(5, 2, 3).numpy())
