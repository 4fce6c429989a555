"""PyTorch's projected LSTM (`proj_size > 0`) <-> `parity.keras_layers.ProjectedLSTM`."""

import itertools

import keras
import numpy as np
import pytest
import torch

import parity
from factories import keras_weights, randomize_keras
from parity.keras_layers import ProjectedLSTM, ProjectedLSTMCell

CASES = list(itertools.product((1, 2, 3), (False, True), (False, True), ("float32", "float64")))


@pytest.mark.parametrize("case", CASES, ids=[
    f"{n}layer-{'bi' if b else 'uni'}-{'h0' if h else 'noh0'}-{d}" for n, b, h, d in CASES])
def test_torch_to_keras_and_back(case, rng):
    layers, bi, with_state, dtype = case
    module = torch.nn.LSTM(4, 6, num_layers=layers, bidirectional=bi, proj_size=3).to(getattr(torch, dtype))
    keras_obj = parity.to_keras(module)
    assert isinstance(keras_obj, ProjectedLSTM if layers == 1 and not bi else parity.TorchRNN)
    x = rng.normal(size=(5, 2, 4))
    state = None
    if with_state:
        slots = layers * (2 if bi else 1)
        state = (rng.normal(size=(slots, 2, 3)), rng.normal(size=(slots, 2, 6)))
    tol = parity.default_tolerance(dtype)
    report = parity.assert_parity(module, keras_obj, x, initial_state=state, **tol)
    assert report["h_n"].shape[-1] == 3 and report["c_n"].shape[-1] == 6
    back = parity.to_torch(keras_obj)
    assert back.proj_size == 3
    parity.assert_parity(back, keras_obj, np.swapaxes(x, 0, 1), **tol)
    again = parity.to_keras(back)
    for a, b in zip(keras_weights(again), keras_weights(keras_obj)):
        np.testing.assert_array_equal(a, b)


def test_keras_projected_stack_to_torch(rng):
    model = keras.Sequential([
        keras.Input((None, 4)),
        keras.layers.Bidirectional(ProjectedLSTM(6, 2, return_sequences=True)),
        keras.layers.Bidirectional(ProjectedLSTM(6, 2, return_sequences=True)),
    ])
    randomize_keras(model, rng)
    module = parity.to_torch(model)
    assert (module.num_layers, module.bidirectional, module.proj_size) == (2, True, 2)
    assert module.weight_hr_l1_reverse.shape == (2, 6)
    parity.assert_parity(module, model, rng.normal(size=(2, 5, 4)))


def test_weight_hr_is_the_transposed_projection_kernel():
    module = torch.nn.LSTM(4, 6, proj_size=3)
    layer = parity.to_keras(module)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.cell.projection_kernel),
                                  module.weight_hr_l0.detach().numpy().T)
    assert tuple(layer.cell.recurrent_kernel.shape) == (3, 24)


def test_saves_and_reloads(tmp_path, rng):
    module = torch.nn.LSTM(4, 6, num_layers=2, proj_size=3, batch_first=True)
    model = parity.to_keras(module)
    model.save(tmp_path / "proj.keras")
    reloaded = keras.saving.load_model(tmp_path / "proj.keras", safe_mode=True)
    parity.assert_parity(module, reloaded, rng.normal(size=(2, 5, 4)))
    single = parity.to_keras(torch.nn.LSTM(4, 6, proj_size=2))
    path = tmp_path / "single.keras"
    keras.Sequential([keras.Input((None, 4)), single]).save(path)
    assert isinstance(keras.saving.load_model(path, safe_mode=True).layers[0], ProjectedLSTM)


def test_projected_cell_has_no_torch_cell():
    cell = ProjectedLSTMCell(6, 3)
    cell.build((None, 4))
    with pytest.raises(parity.ConversionError, match="no PyTorch cell computes these options"):
        parity.to_torch(cell)


def test_proj_units_must_be_smaller():
    with pytest.raises(ValueError, match=r"Received: units=4, proj_units=4"):
        ProjectedLSTMCell(4, 4)
