"""Everything that must fail loudly: a `ConversionError` naming the layer, the
option or weight and what was received, raised before anything is written."""

import keras
import numpy as np
import pytest
import torch

import parity
from factories import keras_weights, torch_weights


def built(layer, input_size=3):
    layer.build((None, None, input_size))
    return layer


def built_cell(cell, input_size=3):
    cell.build((None, input_size))
    return cell


def keras_sequential(*layers, input_size=3):
    return keras.Sequential([keras.Input((None, input_size)), *layers])


# (id, Keras source, torch destination of the nearest architecture, message regex)
KERAS_SOURCE_CASES = [
    ("unbuilt-layer", lambda: keras.layers.LSTM(4), lambda: torch.nn.LSTM(3, 4),
     r"LSTM 'lstm\w*'.*not built.*Received: built=False"),
    ("unbuilt-cell", lambda: keras.layers.GRUCell(4), lambda: torch.nn.GRUCell(3, 4),
     r"GRUCell 'gru_cell\w*'.*not built.*Received: built=False"),
    ("lstm-activation-gelu", lambda: built(keras.layers.LSTM(4, activation="gelu")),
     lambda: torch.nn.LSTM(3, 4),
     r"LSTM 'lstm\w*': activation='gelu' has no PyTorch equivalent.*Received: activation='gelu'"),
    ("gru-recurrent-activation-elu", lambda: built(keras.layers.GRU(4, recurrent_activation="elu")),
     lambda: torch.nn.GRU(3, 4),
     r"recurrent_activation='elu'.*Received: recurrent_activation='elu'"),
    ("gru-cell-hard-sigmoid",
     lambda: built_cell(keras.layers.GRUCell(4, recurrent_activation="hard_sigmoid")),
     lambda: torch.nn.GRUCell(3, 4), r"no PyTorch cell computes these options.*recurrent_activation='hard_sigmoid'"),
    ("simple-rnn-elu", lambda: built(keras.layers.SimpleRNN(4, activation="elu")),
     lambda: torch.nn.RNN(3, 4), r"activation='elu'.*supported: 'tanh', 'sigmoid', 'hard_sigmoid'"),
    ("go-backwards-alone", lambda: built(keras.layers.LSTM(4, go_backwards=True)),
     lambda: torch.nn.LSTM(3, 4), r"LSTM 'lstm\w*': go_backwards=True .*Received: go_backwards=True"),
    ("bidirectional-sum", lambda: built(keras.layers.Bidirectional(keras.layers.LSTM(4), merge_mode="sum")),
     lambda: torch.nn.LSTM(3, 4, bidirectional=True),
     r"Bidirectional '\w+': merge_mode='sum'.*Received: merge_mode='sum'"),
    ("mixed-stack", lambda: keras_sequential(keras.layers.GRU(4, return_sequences=True),
                                            keras.layers.LSTM(4)),
     lambda: torch.nn.GRU(3, 4, num_layers=2),
     r"LSTM 'lstm\w*' \(layer 1, forward\) has layer type 'lstm' but the first layer has 'gru'.*Received: layer type='lstm'"),
    ("mixed-directions", lambda: keras_sequential(
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True)), keras.layers.GRU(4)),
     lambda: torch.nn.GRU(3, 4, num_layers=2, bidirectional=True),
     r"mixes Bidirectional and one-direction layers"),
    ("mixed-units", lambda: keras_sequential(keras.layers.GRU(4, return_sequences=True),
                                            keras.layers.GRU(5)),
     lambda: torch.nn.GRU(3, 4, num_layers=2), r"has units 5 but the first layer has 4.*Received: units=5"),
    ("dropout-after-last", lambda: keras_sequential(keras.layers.GRU(4, return_sequences=True),
                                                   keras.layers.Dropout(0.5)),
     lambda: torch.nn.GRU(3, 4), r"Dropout layer before the first or after the last"),
    ("dense-relu", lambda: built_cell(keras.layers.Dense(4, activation="relu")),
     lambda: torch.nn.Linear(3, 4), r"Dense 'dense\w*': activation='relu'.*Received: activation='relu'"),
    ("mixed-precision", lambda: built(keras.layers.LSTM(4, dtype="mixed_float16")),
     lambda: torch.nn.LSTM(3, 4), r"computes in float16 with float32 weights.*Received: dtype_policy='mixed_float16'"),
    ("unsupported-layer-in-model", lambda: keras_sequential(keras.layers.GRU(4, return_sequences=True),
                                                           keras.layers.Conv1D(4, 2)),
     lambda: torch.nn.GRU(3, 4, num_layers=2),
     r"'conv1d\w*'.*not a layer parity converts.*Received: keras.*Conv1D"),
]


@pytest.mark.parametrize("name,source,destination,message", KERAS_SOURCE_CASES,
                         ids=[c[0] for c in KERAS_SOURCE_CASES])
def test_keras_source_refused(name, source, destination, message):
    src = source()
    with pytest.raises(parity.ConversionError, match=message):
        parity.to_torch(src)
    dst = destination()
    if name == "gru-cell-hard-sigmoid":  # the cell itself is readable; the copy
        message = r"recurrent_activation: source 'hard_sigmoid', destination 'sigmoid'"
    before = torch_weights(dst)
    with pytest.raises(parity.ConversionError, match=message):
        parity.copy_weights(src, dst)
    after = torch_weights(dst)
    assert all(torch.equal(before[k], after[k]) for k in before), "destination was modified"


@pytest.mark.parametrize("name,source,destination,message", KERAS_SOURCE_CASES,
                         ids=[c[0] for c in KERAS_SOURCE_CASES])
def test_messages_end_with_received(name, source, destination, message):
    with pytest.raises(parity.ConversionError) as info:
        parity.to_torch(source())
    assert "Received: " in str(info.value).splitlines()[-1]


def test_keras_only_option_into_a_pytorch_layer_is_refused():
    """A reset_after=False GRU converts to KerasGRU, never into a plain nn.GRU."""
    layer = built(keras.layers.GRU(4, reset_after=False))
    dst = torch.nn.GRU(3, 4)
    before = torch_weights(dst)
    with pytest.raises(parity.ConversionError, match="reset_after: source False, destination True"):
        parity.copy_weights(layer, dst)
    assert all(torch.equal(before[k], v) for k, v in torch_weights(dst).items())


def test_projected_lstm_into_a_plain_lstm_is_refused():
    module = torch.nn.LSTM(3, 4, proj_size=2)
    dst = built(keras.layers.LSTM(4, return_sequences=True, return_state=True))
    before = keras_weights(dst)
    with pytest.raises(parity.ConversionError, match="proj_size: source 2, destination 0"):
        parity.copy_weights(module, dst)
    for a, b in zip(keras_weights(dst), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("direction", ["t2k", "k2t"])
def test_shape_mismatch_names_both_architectures(direction):
    module = torch.nn.LSTM(3, 5)
    layer = built(keras.layers.LSTM(4), input_size=3)
    src, dst = (module, layer) if direction == "t2k" else (layer, module)
    before_k, before_t = keras_weights(layer), torch_weights(module)
    with pytest.raises(parity.ConversionError) as info:
        parity.copy_weights(src, dst)
    text = str(info.value)
    assert "hidden_size: source" in text and "nothing was written" in text
    assert "LSTM(input_size=3, hidden_size=5" in text and "LSTM(input_size=3, hidden_size=4" in text
    assert text.splitlines()[-1].startswith("Received: hidden_size: source")
    for a, b in zip(keras_weights(layer), before_k):
        np.testing.assert_array_equal(a, b)
    assert all(torch.equal(before_t[k], v) for k, v in torch_weights(module).items())


def test_swapped_input_and_hidden_sizes():
    module = torch.nn.GRU(3, 4)
    layer = built(keras.layers.GRU(3), input_size=4)
    with pytest.raises(parity.ConversionError, match=r"input_size: source 3, destination 4"):
        parity.copy_weights(module, layer)


def test_partial_copy_is_impossible_per_weight_shape_check():
    """Layer 0 matches, layer 1 does not: nothing at all may be written."""
    module = torch.nn.GRU(3, 4, num_layers=2)
    first = built(keras.layers.GRU(4, return_sequences=True), input_size=3)
    second = built(keras.layers.GRU(4), input_size=7)  # expects 4 inputs
    before = keras_weights(first) + keras_weights(second)
    with pytest.raises(parity.ConversionError) as info:
        parity.copy_weights(module, [first, second])
    text = str(info.value)
    assert "weight 'kernel_l1'" in text and "expected shape (7, 12), received (4, 12)" in text
    assert "nothing was written" in text and text.splitlines()[-1].startswith("Received: ")
    for a, b in zip(keras_weights(first) + keras_weights(second), before):
        np.testing.assert_array_equal(a, b)


def test_dtype_mismatch_refused():
    module = torch.nn.RNN(3, 4).double()
    layer = built(keras.layers.SimpleRNN(4))
    with pytest.raises(parity.ConversionError, match="dtype: source 'float64', destination 'float32'"):
        parity.copy_weights(module, layer)


def test_mixed_torch_dtypes_refused():
    module = torch.nn.RNN(3, 4)
    module.weight_hh_l0.data = module.weight_hh_l0.data.double()
    with pytest.raises(parity.ConversionError, match=r"Received: dtypes=\['float32', 'float64'\]"):
        parity.to_keras(module)


def test_half_precision_refused():
    with pytest.raises(parity.ConversionError, match=r"Received: dtypes=\['float16'\]"):
        parity.to_keras(torch.nn.GRU(3, 4).half())


@pytest.mark.parametrize("module", [torch.nn.Conv1d(3, 4, 2), torch.nn.ReLU(),
                                    torch.nn.PReLU()],
                         ids=["conv1d", "relu", "prelu"])
def test_unsupported_torch_module(module):
    with pytest.raises(parity.ConversionError, match=r"is not a layer parity converts.*Received: torch"):
        parity.to_keras(module)


def test_not_a_keras_object():
    with pytest.raises(parity.ConversionError, match="is not a Keras layer.*Received: builtins.str"):
        parity.to_torch("lstm")


def test_same_framework_copy_refused():
    with pytest.raises(parity.ConversionError, match="both objects are torch"):
        parity.copy_weights(torch.nn.GRU(3, 4), torch.nn.GRU(3, 4))


def test_cell_into_layer_refused():
    layer = built(keras.layers.LSTM(4))
    with pytest.raises(parity.ConversionError, match="cell: source True, destination False"):
        parity.copy_weights(torch.nn.LSTMCell(3, 4), layer)


def test_kind_mismatch_refused():
    with pytest.raises(parity.ConversionError, match="different layer types.*Received: source kind 'gru', destination kind 'lstm'"):
        parity.copy_weights(torch.nn.GRU(3, 4), built(keras.layers.LSTM(4)))


def test_embedding_max_norm_refused():
    with pytest.raises(parity.ConversionError, match=r"max_norm=1.0 .*Received: max_norm=1.0"):
        parity.to_keras(torch.nn.Embedding(5, 2, max_norm=1.0))


def test_wrong_number_of_initial_states():
    module = torch.nn.LSTM(3, 4)
    with pytest.raises(parity.ConversionError, match=r"expects 2 initial state\(s\) \(h, c\). Received: 1"):
        parity.compare(module, parity.to_keras(module), np.zeros((2, 1, 3)),
                       initial_state=np.zeros((1, 1, 4)))


def test_keras_training_dropout_warns():
    layer = built(keras.layers.GRU(4, dropout=0.2))
    with pytest.warns(UserWarning, match="dropout=0.2 is a training-time option"):
        parity.to_torch(layer)
