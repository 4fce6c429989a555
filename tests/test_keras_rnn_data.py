"""keras_rnn.data and keras_rnn.hello: the hello task, framework-free."""

import argparse
import doctest

import numpy as np
import pytest

from keras_rnn import data, hello


def test_vocabulary_and_texts_are_the_notes():
    assert data.VOCAB == ("e", "h", "l", "o")
    assert data.encode("hello").tolist() == [1, 0, 2, 2, 3]  # the notes' x_data
    assert data.encode("ohlol").tolist() == [3, 1, 2, 3, 2]  # the notes' y_data


@pytest.mark.parametrize("text", ["hello", "ohlol", "", "leo"])
def test_decode_inverts_encode(text):
    assert data.decode(data.encode(text)) == text


def test_encode_rejects_unknown_characters():
    with pytest.raises(ValueError, match=r"\['x', 'y'\].*Received: text='hexy'"):
        data.encode("hexy")


@pytest.mark.parametrize(
    "indices, message",
    [([0, 4], r"Received: indices=\[0, 4\]"), ([-1], r"Received: indices=\[-1\]"),
     (np.zeros((2, 2), int), r"Received: indices with shape \(2, 2\)"),
     ([0.5], r"Received: indices with shape \(1,\) and dtype float64")],
)
def test_decode_rejects_bad_indices(indices, message):
    with pytest.raises(ValueError, match=message):
        data.decode(indices)


def test_decode_logits_takes_the_argmax_per_step():
    logits = np.full((5, 4), -1.0)
    logits[np.arange(5), [3, 1, 2, 3, 2]] = 2.0
    assert data.decode_logits(logits) == "ohlol"
    with pytest.raises(ValueError, match=r"Received: logits with shape \(1, 5, 4\)"):
        data.decode_logits(logits[None])


def test_one_hot_is_the_notes_lookup_table():
    table = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]  # one_hot_lookup
    expected = np.array([table[x] for x in [1, 0, 2, 2, 3]], dtype="float32")
    encoded = data.one_hot(data.encode("hello"))
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded, expected)
    with pytest.raises(ValueError, match=r"Received: indices=\[4\]"):
        data.one_hot([4])


@pytest.mark.parametrize(
    "form, time_major, x_shape, y_shape, x_dtype",
    [
        ("one_hot", False, (1, 5, 4), (1, 5), np.float32),
        ("one_hot", True, (5, 1, 4), (5, 1), np.float32),
        ("indices", False, (1, 5), (1, 5), np.int64),
        ("indices", True, (5, 1), (5, 1), np.int64),
    ],
)
def test_hello_arrays_shapes(form, time_major, x_shape, y_shape, x_dtype):
    x, y = data.hello_arrays(form, time_major=time_major)
    assert (x.shape, y.shape, x.dtype, y.dtype) == (x_shape, y_shape, x_dtype, np.int64)
    assert x.flags.c_contiguous and y.flags.c_contiguous  # torch.from_numpy-ready
    sequence = x[:, 0] if time_major else x[0]
    labels = y[:, 0] if time_major else y[0]
    indices = sequence if form == "indices" else sequence.argmax(-1)
    assert (data.decode(indices), data.decode(labels)) == ("hello", "ohlol")


def test_hello_arrays_rejects_unknown_form():
    with pytest.raises(ValueError, match="Received: input_form='embedding'"):
        data.hello_arrays("embedding")


def test_history_first_epoch_reaching():
    history = hello.History()
    for loss, prediction in [(1.4, "hhhhh"), (1.1, "ohlol"), (0.9, "oolol"), (0.8, "ohlol")]:
        history.record(loss, prediction)
    assert history.first_epoch_reaching() == 2
    assert history.first_epoch_reaching("oolol") == 3
    assert history.first_epoch_reaching("lllll") is None


def test_epoch_line_is_the_notes_format():
    assert (
        hello.epoch_line("ohlol", 15, 15, 0.56304)
        == "Predicted string: ohlol, Epoch [15/15] loss: 0.5630"
    )


def test_notes_settings():
    assert hello.NOTES_SETTINGS["cell"] == hello.HelloSettings(0.1, "sum")
    assert hello.NOTES_SETTINGS["layer"] == hello.HelloSettings(0.05, "mean")
    assert hello.NOTES_SETTINGS["embedding"] == hello.HelloSettings(0.05, "mean")


@pytest.mark.parametrize(
    "check, value, message",
    [
        (hello.check_cell_type, "tanh", "Received: cell='tanh'"),
        (hello.check_hello_model, "rnn", "Received: model='rnn'"),
        (hello.check_epochs, 0, "Received: epochs=0"),
        (hello.check_epochs, 2.0, "Received: epochs=2.0"),
    ],
)
def test_checks_fail_loudly(check, value, message):
    with pytest.raises(ValueError, match=message):
        check(value)


def parse_variant_arguments(argv):
    return hello.add_variant_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_variant_arguments_select_in_the_notes_order():
    everything = hello.variants(parse_variant_arguments([]))
    assert everything == [(m, c) for m in ("cell", "layer", "embedding")
                          for c in ("rnn", "lstm", "gru")]
    args = parse_variant_arguments(["--model", "layer", "--cell", "gru", "--epochs", "3"])
    assert hello.variants(args) == [("layer", "gru")] and (args.epochs, args.seed) == (3, 0)
    assert hello.variant_name("layer", "gru") == "3.2 layer/gru"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "must be a positive integer. Received: '0'"),
        (["--epochs", "many"], "must be a positive integer. Received: 'many'"),
        (["--cell", "elman"], "invalid choice: 'elman'"),
        (["--model", "dense"], "invalid choice: 'dense'"),
    ],
)
def test_variant_arguments_reject_bad_values(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_variant_arguments(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("module", [data, hello], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0
