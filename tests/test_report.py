"""The parity report and the tolerance helper: they must catch what differs."""

import keras
import numpy as np
import pytest
import torch

import parity
from parity.tolerance import assert_allclose_named, diff_arrays


def test_report_table_and_fields(rng):
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    report = parity.compare(module, parity.to_keras(module), rng.normal(size=(5, 2, 3)))
    assert report.ok and report.max_abs_error < 1e-5 and report.max_rel_error >= 0
    assert list(report.outputs) == ["outputs", "h_n", "c_n"]
    text = str(report)
    for piece in ("outputs", "h_n", "c_n", "(5, 2, 8)", "(4, 2, 4)", "max abs err", "PASS"):
        assert piece in text


def test_perturbed_weight_fails_and_names_the_slot(rng):
    module = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    keras_model = parity.to_keras(module)
    # Perturb the backward direction of the last layer, on the Keras side only.
    backward_cell = keras_model.rnn_layers[1].backward_layer.cell
    backward_cell.bias.assign(backward_cell.bias + 0.5)
    x = rng.normal(size=(5, 2, 3))
    with pytest.raises(parity.ParityError) as info:
        parity.assert_parity(module, keras_model, x)
    report = info.value.report
    assert isinstance(info.value, AssertionError) and not report.ok
    assert not report["h_n"].ok and report["h_n"].worst_index[0] == 3
    assert report.path(report["h_n"]) == "h_n[3] (layer 1, backward)"
    # the forward half of h_n is untouched by a backward-only change
    assert "max abs diff" in str(info.value) and "FAIL at" in str(info.value)


def test_nan_mismatch_is_reported_not_passed():
    d = diff_arrays("h_n", np.array([1.0, np.nan]), np.array([1.0, 2.0]), 1e-5, 1e-5)
    assert not d.ok and d.nan_mismatches == 1 and d.max_abs_error == np.inf
    both = diff_arrays("h_n", np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), 1e-5, 1e-5)
    assert both.ok and both.max_abs_error == 0
    assert not diff_arrays("x", np.array([np.inf]), np.array([-np.inf]), 1, 1).ok


def test_tolerance_rule_is_allclose():
    assert diff_arrays("x", np.array([1.0 + 1.9e-5]), np.array([1.0]), 1e-5, 1e-5).ok
    assert not diff_arrays("x", np.array([1.0 + 2.1e-5]), np.array([1.0]), 1e-5, 1e-5).ok
    assert not diff_arrays("x", np.zeros(3), np.zeros(4), 1, 1).ok
    with pytest.raises(AssertionError, match=r"outputs\[1\]: max abs diff 0.1"):
        assert_allclose_named("outputs", np.array([0.0, 0.1]), np.array([0.0, 0.0]), 1e-5, 0)


def test_default_tolerances():
    assert parity.default_tolerance("float32") == {"atol": 1e-5, "rtol": 1e-5}
    assert parity.default_tolerance(torch.float64) == {"atol": 1e-10, "rtol": 1e-10}


def test_compare_leaves_torch_training_mode(rng):
    module = torch.nn.GRU(3, 4, num_layers=2, dropout=0.5)
    module.train()
    parity.assert_parity(module, parity.to_keras(module), rng.normal(size=(4, 2, 3)))
    assert module.training
