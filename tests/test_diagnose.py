"""Mismatch diagnosis: plant each known mistake by copying by hand, expect its name.

The hand copies below are written with plain numpy, the way a user would
write them, so that they do not share code with the converters they check.
"""

import keras
import numpy as np
import pytest
import torch

import parity
from factories import keras_weights
from parity.diagnose import Mistake, diagnose

INPUT, HIDDEN, BATCH, TIME = 3, 4, 2, 5


def zrh(array):
    """PyTorch's GRU blocks (r, z, n) -> Keras's (z, r, h), along axis 0."""
    r, z, n = np.split(array, 3)
    return np.concatenate([z, r, n])


def reverse_suffix(reverse):
    return "_reverse" if reverse else ""


def hand_slots(keras_obj):
    """`(layer, reverse, cell)` of a cell / layer / Bidirectional / Sequential, PyTorch's order."""
    if isinstance(keras_obj, (keras.layers.SimpleRNNCell, keras.layers.LSTMCell,
                              keras.layers.GRUCell)):
        return [(None, False, keras_obj)]
    units = keras_obj.layers if isinstance(keras_obj, keras.Sequential) else [keras_obj]
    slots = []
    for layer, unit in enumerate(units):
        if isinstance(unit, keras.layers.Bidirectional):
            slots += [(layer, False, unit.forward_layer.cell),
                      (layer, True, unit.backward_layer.cell)]
        else:
            slots.append((layer, False, unit.cell))
    return slots


def copy_by_hand(module, keras_obj, *, gate_order=True, bias="both", kernel="transpose",
                 swap_directions=(), gru_bias_rows=True):
    """Copies `module`'s weights into `keras_obj` by hand, with the mistakes asked for.

    Args:
        gate_order: reorder GRU gates to Keras's order (False plants `gru_gates_swapped`).
        bias: `"both"` (summed, or GRU rows), `"ih"` / `"hh"` (only one of them).
        kernel: `"transpose"`, or `"reshape"` (plants `kernels_not_transposed`).
        swap_directions: layers whose forward/backward weights are exchanged.
        gru_bias_rows: False for a `reset_after=False` GRU, whose bias is `(3*units,)`.
    """
    is_gru = isinstance(module, (torch.nn.GRU, torch.nn.GRUCell))
    gates = zrh if is_gru and gate_order else (lambda a: a)
    for layer, reverse, cell in hand_slots(keras_obj):
        if layer is None:
            suffix = ""
        else:
            source_reverse = (not reverse) if layer in swap_directions else reverse
            suffix = f"_l{layer}{reverse_suffix(source_reverse)}"

        def w(name):
            return getattr(module, name + suffix).detach().numpy()

        def to_kernel(weight):
            weight = gates(weight)
            if kernel == "reshape":
                return weight.reshape(weight.shape[1], weight.shape[0])
            return weight.T

        cell.kernel.assign(to_kernel(w("weight_ih")))
        cell.recurrent_kernel.assign(to_kernel(w("weight_hh")))
        if module.bias:
            b_ih, b_hh = gates(w("bias_ih")), gates(w("bias_hh"))
            if bias == "ih":
                b_hh = np.zeros_like(b_hh)
            elif bias == "hh":
                b_ih = np.zeros_like(b_ih)
            if is_gru and gru_bias_rows:
                cell.bias.assign(np.stack([b_ih, b_hh]))
            elif is_gru and bias == "ih":  # a reset_after=False bias given bias_ih only
                cell.bias.assign(b_ih)
            else:
                cell.bias.assign(b_ih + b_hh)
    return keras_obj


def keras_layers(kind, layers=1, bidirectional=False, bias=True, reset_after=True):
    def one():
        extra = {"reset_after": reset_after} if kind == "gru" else {}
        layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
                 "gru": keras.layers.GRU}[kind](HIDDEN, return_sequences=True, use_bias=bias,
                                                 **extra)
        return keras.layers.Bidirectional(layer) if bidirectional else layer

    if layers == 1:
        obj = one()
        obj.build((None, None, INPUT))
        return obj
    return keras.Sequential([keras.Input((None, INPUT)), *[one() for _ in range(layers)]])


def torch_layer(kind, layers=1, bidirectional=False, bias=True):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    return cls(INPUT, HIDDEN, num_layers=layers, bidirectional=bidirectional, bias=bias)


@pytest.fixture
def x(rng):
    return rng.normal(size=(TIME, BATCH, INPUT)).astype("float32")


def test_correct_hand_copy_is_no_mistake(x):
    module = torch_layer("gru", layers=2, bidirectional=True)
    keras_obj = copy_by_hand(module, keras_layers("gru", 2, True))
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.NONE and found.mistake == "none"
    assert found.explained and found.report.ok and not found.tried


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, True)],
                         ids=["1layer-uni", "2layer-bi"])
def test_gru_gates_swapped(x, layers, bidirectional):
    module = torch_layer("gru", layers, bidirectional)
    keras_obj = copy_by_hand(module, keras_layers("gru", layers, bidirectional),
                             gate_order=False)
    with pytest.raises(parity.ParityError):
        parity.assert_parity(module, keras_obj, x)
    found = diagnose(module, keras_obj, x)
    assert found.mistake == "gru_gates_swapped"
    assert found.corrected.ok and found.explained
    assert "(z, r, h)" in found.message


@pytest.mark.parametrize("kind,kept", [("lstm", "ih"), ("rnn", "hh"), ("gru", "ih")])
def test_biases_not_summed(x, kind, kept):
    module = torch_layer(kind, layers=2)
    keras_obj = copy_by_hand(module, keras_layers(kind, 2), bias=kept)
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.BIASES_NOT_SUMMED
    assert found.variant == f"only bias_{kept}" and f"only bias_{kept}" in found.message


def test_biases_not_summed_in_a_cell(rng):
    cell = torch.nn.LSTMCell(INPUT, HIDDEN)
    keras_cell = keras.layers.LSTMCell(HIDDEN)
    keras_cell.build((None, INPUT))
    copy_by_hand(cell, keras_cell, bias="ih")
    found = diagnose(cell, keras_cell, rng.normal(size=(TIME, BATCH, INPUT)))
    assert found.mistake is Mistake.BIASES_NOT_SUMMED


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_kernels_not_transposed(x, kind):
    module = torch_layer(kind, bidirectional=True)
    keras_obj = copy_by_hand(module, keras_layers(kind, 1, True), kernel="reshape")
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.KERNELS_NOT_TRANSPOSED
    assert found.variant == "kernel and recurrent_kernel"
    assert "W.T" in found.message


def test_dense_kernel_not_transposed(rng):
    linear = torch.nn.Linear(INPUT, HIDDEN)
    dense = keras.layers.Dense(HIDDEN)
    dense.build((None, INPUT))
    dense.kernel.assign(linear.weight.detach().numpy().reshape(INPUT, HIDDEN))
    dense.bias.assign(linear.bias.detach().numpy())
    found = diagnose(linear, dense, rng.normal(size=(BATCH, INPUT)))
    assert found.mistake is Mistake.KERNELS_NOT_TRANSPOSED and found.variant == "kernel"


@pytest.mark.parametrize("bidirectional,bias", [(False, "ih"), (True, "both")],
                         ids=["uni-bias_ih", "bi-summed"])
def test_wrong_gru_variant(x, bidirectional, bias):
    module = torch_layer("gru", bidirectional=bidirectional)
    keras_obj = keras_layers("gru", 1, bidirectional, reset_after=False)
    copy_by_hand(module, keras_obj, bias=bias, gru_bias_rows=False)
    with pytest.raises((parity.ParityError, parity.ConversionError)):
        parity.assert_parity(module, keras_obj, x)
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.WRONG_GRU_VARIANT and found.explained
    assert (found.report is None or not found.report.ok) and found.corrected.ok
    expected = "its bias held bias_ih" if bias == "ih" else "its bias held bias_ih + bias_hh"
    assert found.variant == expected


def test_wrong_gru_variant_without_bias_in_a_stack(x):
    module = torch_layer("gru", layers=2, bias=False)
    keras_obj = copy_by_hand(module, keras_layers("gru", 2, bias=False, reset_after=False))
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.WRONG_GRU_VARIANT and found.variant == "no bias"
    assert found.explained


def test_wrong_gru_variant_in_a_cell(rng):
    cell = torch.nn.GRUCell(INPUT, HIDDEN)
    keras_cell = keras.layers.GRUCell(HIDDEN, reset_after=False)
    keras_cell.build((None, INPUT))
    copy_by_hand(cell, keras_cell, bias="ih", gru_bias_rows=False)
    found = diagnose(cell, keras_cell, rng.normal(size=(BATCH, INPUT)))
    assert found.mistake is Mistake.WRONG_GRU_VARIANT and found.explained


@pytest.mark.parametrize("swapped,variant", [((0, 1), "every layer"), ((1,), "layer 1 only")])
def test_directions_swapped(x, swapped, variant):
    module = torch_layer("lstm", layers=2, bidirectional=True)
    keras_obj = copy_by_hand(module, keras_layers("lstm", 2, True), swap_directions=swapped)
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.DIRECTIONS_SWAPPED and found.variant == variant


def test_unrelated_perturbation_is_unknown(x, rng):
    module = torch_layer("lstm", bidirectional=True)
    keras_obj = parity.to_keras(module)
    cell = keras_obj.rnn_layers[0].forward_layer.cell
    cell.recurrent_kernel.assign(
        cell.recurrent_kernel + rng.normal(size=cell.recurrent_kernel.shape).astype("float32"))
    found = diagnose(module, keras_obj, x)
    assert found.mistake is Mistake.UNKNOWN and found.mistake == "unknown"
    assert not found.explained and found.corrected is None
    assert "No known mistake explains" in found.message
    assert len(found.tried) == 6   # biases x2, kernels x3, directions x1
    text = str(found)
    assert "diagnosis: unknown" in text and "directions_swapped (every layer)" in text


def test_objects_are_left_as_they_were(x):
    module = torch_layer("gru", bidirectional=True)
    keras_obj = copy_by_hand(module, keras_layers("gru", 1, True), gate_order=False)
    torch_before = {n: p.detach().clone() for n, p in module.named_parameters()}
    keras_before = keras_weights(keras_obj)
    module.train()
    assert diagnose(module, keras_obj, x).mistake is Mistake.GRU_GATES_SWAPPED
    assert module.training
    for name, param in module.named_parameters():
        assert torch.equal(param, torch_before[name])
    for after, before in zip(keras_weights(keras_obj), keras_before):
        np.testing.assert_array_equal(after, before)


def test_mistake_names_are_stable_strings():
    assert [m.value for m in Mistake] == [
        "none", "gru_gates_swapped", "biases_not_summed", "kernels_not_transposed",
        "wrong_gru_variant", "directions_swapped", "unknown",
    ]
    assert str(Mistake.DIRECTIONS_SWAPPED) == "directions_swapped"


def test_whole_models_are_refused():
    torch_model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    keras_model = parity.to_keras(torch_model)
    with pytest.raises(parity.ConversionError, match="Received: Sequential"):
        diagnose(torch_model, keras_model, np.zeros((1, 3), "float32"))
