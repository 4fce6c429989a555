"""Known answers for the pure transforms and for each family's weight mapping.

The expected arrays are written out by hand from the gate layouts documented
in PyTorch's `rnn.py` and Keras's `lstm.py`/`gru.py`, not computed by the
code under test.
"""

import numpy as np
import pytest

from parity import gru, lstm, simple_rnn
from parity.naming import keras_weight_key, slot_label, torch_param_name
from parity.transforms import (
    KERAS_GATES,
    TORCH_GATES,
    gate_permutation,
    reorder_gates,
    split_bias,
    stack_biases,
    sum_biases,
    transpose,
    unstack_biases,
)

H = 2  # hidden units, so each gate block has 2 rows


def blocks(*labels):
    """Rows `[10*g, 10*g+1]` for each gate label value g: easy to read back."""
    return np.concatenate([[10 * g, 10 * g + 1] for g in labels]).astype(np.float32)


def test_gate_permutations():
    assert gate_permutation(TORCH_GATES["gru"], KERAS_GATES["gru"]) == [1, 0, 2]
    assert gate_permutation(KERAS_GATES["gru"], TORCH_GATES["gru"]) == [1, 0, 2]
    assert gate_permutation(TORCH_GATES["lstm"], KERAS_GATES["lstm"]) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="name different gates"):
        gate_permutation("ifgo", "zrh")


def test_reorder_gru_rows():
    torch_rows = blocks(1, 2, 3)          # r=1, z=2, n=3
    keras_rows = reorder_gates(torch_rows, "rzn", "zrh")
    np.testing.assert_array_equal(keras_rows, [20, 21, 10, 11, 30, 31])
    np.testing.assert_array_equal(reorder_gates(keras_rows, "zrh", "rzn"), torch_rows)


def test_bias_helpers():
    a, b = np.array([1.0, 2.0]), np.array([10.0, 20.0])
    np.testing.assert_array_equal(sum_biases(a, b), [11.0, 22.0])
    ih, hh = split_bias(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(ih, [3.0, 4.0])
    np.testing.assert_array_equal(hh, [0.0, 0.0])
    stacked = stack_biases(a, b)
    np.testing.assert_array_equal(stacked, [[1.0, 2.0], [10.0, 20.0]])
    ih, hh = unstack_biases(stacked)
    np.testing.assert_array_equal(ih, a)
    np.testing.assert_array_equal(hh, b)
    assert transpose(np.zeros((2, 3))).shape == (3, 2)


def test_gru_mapping_known_answer():
    # weight_ih rows: r gate = 1s, z gate = 2s, n gate = 3s; input size 1
    w_ih = np.array([[1], [1], [2], [2], [3], [3]], dtype=np.float32)
    w_hh = w_ih * 10
    b_ih = blocks(1, 2, 3)
    b_hh = blocks(4, 5, 6)
    k = gru.torch_to_keras({"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh})
    np.testing.assert_array_equal(k["kernel"], [[2, 2, 1, 1, 3, 3]])          # z r h columns
    np.testing.assert_array_equal(k["recurrent_kernel"][0], [20, 20, 10, 10, 30, 30])
    np.testing.assert_array_equal(k["bias"], [[20, 21, 10, 11, 30, 31],       # input row
                                              [50, 51, 40, 41, 60, 61]])      # recurrent row
    back = gru.keras_to_torch(k)
    for name, value in {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh}.items():
        np.testing.assert_array_equal(back[name], value)


def test_lstm_mapping_known_answer():
    w_ih = np.repeat(np.arange(1, 5, dtype=np.float32), H)[:, None]        # i f g o rows
    k = lstm.torch_to_keras({"weight_ih": w_ih, "weight_hh": w_ih * 10,
                             "bias_ih": blocks(1, 2, 3, 4), "bias_hh": blocks(1, 2, 3, 4)})
    np.testing.assert_array_equal(k["kernel"], [[1, 1, 2, 2, 3, 3, 4, 4]])  # i f c o columns
    np.testing.assert_array_equal(k["bias"], 2 * blocks(1, 2, 3, 4))          # summed
    back = lstm.keras_to_torch(k)
    np.testing.assert_array_equal(back["bias_ih"], 2 * blocks(1, 2, 3, 4))
    np.testing.assert_array_equal(back["bias_hh"], np.zeros(8))


def test_simple_rnn_mapping_without_bias():
    w = {"weight_ih": np.ones((2, 3)), "weight_hh": np.eye(2)}
    k = simple_rnn.torch_to_keras(w)
    assert set(k) == {"kernel", "recurrent_kernel"} and k["kernel"].shape == (3, 2)
    assert set(simple_rnn.keras_to_torch(k)) == {"weight_ih", "weight_hh"}


def test_names():
    assert torch_param_name("weight_ih", 1, True) == "weight_ih_l1_reverse"
    assert torch_param_name("bias_hh", 0) == "bias_hh_l0"
    assert torch_param_name("weight_hh") == "weight_hh"
    assert keras_weight_key("kernel", 2) == "kernel_l2"
    assert slot_label(1, True) == "layer 1, backward" and slot_label() == "cell"
