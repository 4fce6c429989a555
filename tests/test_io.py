"""Checkpoint readers and writers (`parity.io`).

Every writer round-trips: write, read back, compare every key bit for bit.
PyTorch formats give back the very tensors written; Keras formats give back
the conversion's own result (`to_torch(to_keras(m)).state_dict()`: the
SimpleRNN/LSTM biases are summed on the way in), and a second round trip
through the same format changes nothing. Then: files written by Keras
itself, a Keras 2 HDF5 file built here in Keras 2's layout, and every kind
of bad file.
"""

import collections
import json
import os
import zipfile

import h5py
import keras
import numpy as np
import pytest
import safetensors.torch
import torch

import parity
from factories import randomize_keras
from parity import infer, io
from parity.errors import ConversionError
from parity.plain import PlainSpec
from parity.recurrent import RecurrentSpec

WRITABLE = [".pt", ".safetensors", ".keras", ".weights.h5"]


def notes_model(rnn=None):
    return torch.nn.Sequential(collections.OrderedDict(
        emb=torch.nn.Embedding(20, 4),
        rnn=rnn or torch.nn.LSTM(4, 6, num_layers=2, batch_first=True),
        fc=torch.nn.Linear(6, 3),
    ))


def randomized(module):
    """Random weights everywhere, biases included, so every key is distinct."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module


MODELS = {
    "lstm-2layer-bi": lambda: torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True),
    "gru-1layer-nobias": lambda: torch.nn.GRU(3, 5, bias=False),
    "rnn-1layer": lambda: torch.nn.RNN(3, 5),
    "grucell": lambda: torch.nn.GRUCell(3, 5),
    "linear": lambda: torch.nn.Linear(3, 5),
    "emb-lstm-fc": notes_model,
    "emb-bigru-fc": lambda: notes_model(torch.nn.GRU(4, 3, bidirectional=True, batch_first=True)),
}


def assert_same_tensors(actual, expected):
    """Same keys in the same order, every tensor equal bit for bit with the same dtype."""
    assert list(actual) == list(expected)
    for key in expected:
        a, e = io.as_tensor(actual[key]), io.as_tensor(expected[key])
        assert a.dtype == e.dtype, key
        assert a.shape == e.shape, key
        assert torch.equal(a, e), key


def canonical(state_dict_module):
    """What a Keras round trip gives back: the converter's own torch weights."""
    return parity.to_torch(parity.to_keras(state_dict_module)).state_dict()


@pytest.fixture
def source(tmp_path):
    def make(name, dtype=torch.float32):
        module = randomized(MODELS[name]().to(dtype))
        path = tmp_path / f"{name}.pt"
        torch.save(module.state_dict(), path)
        return module, io.read(path)

    return make


@pytest.mark.parametrize("suffix", WRITABLE)
@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip(tmp_path, source, name, suffix):
    module, checkpoint = source(name)
    first = tmp_path / f"first{suffix}"
    io.write(checkpoint, first)
    back = io.read(first)
    assert back.layers == checkpoint.layers
    if io.format_of(first).framework == "torch":
        assert_same_tensors(back.state_dict, module.state_dict())
    else:
        assert_same_tensors(back.state_dict, canonical(io.torch_object(checkpoint)))
    # A second trip through the same format is exact for every format.
    second = tmp_path / f"second{suffix}"
    io.write(back, second)
    assert_same_tensors(io.read(second).state_dict, back.state_dict)


def test_float64_round_trips(tmp_path, source):
    module, checkpoint = source("lstm-2layer-bi", torch.float64)
    for suffix in WRITABLE:
        io.write(checkpoint, tmp_path / f"x{suffix}")
        back = io.read(tmp_path / f"x{suffix}")
        assert back.layers[0][1].dtype == "float64"
        assert all(io.as_tensor(v).dtype == torch.float64 for v in back.state_dict.values())


def test_keras_archive_is_the_converted_object(tmp_path, source):
    module, checkpoint = source("lstm-2layer-bi")
    io.write(checkpoint, tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded, parity.TorchRNN)
    x = np.random.default_rng(0).normal(size=(2, 7, 3)).astype("float32")
    parity.assert_parity(module, loaded, np.swapaxes(x, 0, 1))


@pytest.mark.parametrize("suffix", WRITABLE)
def test_converted_files_compute_the_same(tmp_path, source, suffix):
    module, checkpoint = source("emb-lstm-fc")
    io.write(checkpoint, tmp_path / f"m{suffix}")
    back = io.read(tmp_path / f"m{suffix}")
    x = np.random.default_rng(0).integers(0, 20, size=(2, 9))
    parity.assert_parity(io.torch_object(checkpoint), io.keras_object(back), x)


# -- files written by Keras itself -------------------------------------------------------


def keras_model(rng):
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(30, 6, name="tokens"),
        keras.layers.Bidirectional(keras.layers.GRU(5, return_sequences=True, name="gru"),
                                   name="bigru"),
        keras.layers.Dropout(0.2),
        keras.layers.LSTM(4, return_sequences=True, name="lstm"),
        keras.layers.Dense(3, name="head"),
    ])
    return randomize_keras(model, rng)


def test_keras_weights_file_written_by_keras(tmp_path, rng):
    model = keras_model(rng)
    model.save_weights(tmp_path / "k.weights.h5")
    checkpoint = io.read(tmp_path / "k.weights.h5")
    assert [p for p, _ in checkpoint.layers] == ["tokens", "bigru", "lstm", "head"]
    assert checkpoint.layers[1][1] == RecurrentSpec("gru", 6, 5, bidirectional=True)
    assert checkpoint.notes  # the order was inferred, and the user is told
    assert_same_tensors(checkpoint.state_dict, parity.to_torch(model).state_dict())
    x = rng.integers(0, 30, size=(2, 8))
    parity.assert_parity(io.torch_object(checkpoint), model, x)


def test_keras_weights_skip_optimizer_state(tmp_path, rng):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)  # what fit() would do first
    model.save_weights(tmp_path / "trained.weights.h5")
    checkpoint = io.read(tmp_path / "trained.weights.h5")
    assert checkpoint.layers == [("", RecurrentSpec("gru", 3, 4))]
    assert any("optimizer state" in note for note in checkpoint.notes)
    assert not any(e.name.startswith("optimizer") for e in checkpoint.entries)


def test_keras_archive_written_by_keras(tmp_path, rng):
    model = keras_model(rng)
    model.save(tmp_path / "k.keras")
    checkpoint = io.read(tmp_path / "k.keras")
    assert [p for p, _ in checkpoint.layers] == ["tokens", "bigru", "lstm", "head"]
    assert isinstance(checkpoint.keras_object, keras.Sequential)


def test_keras_archive_records_the_activation(tmp_path):
    layer = keras.layers.SimpleRNN(4, activation="relu")
    layer.build((None, None, 3))
    keras.saving.save_model(layer, tmp_path / "relu.keras")
    assert io.read(tmp_path / "relu.keras").layers[0][1].activation == "relu"
    with pytest.raises(ConversionError, match="contradicts"):
        io.read(tmp_path / "relu.keras", nonlinearity="tanh")


def test_bare_keras_layers_in_weights_files(tmp_path):
    for layer, shape, expected in [
        (keras.layers.Dense(4, use_bias=False), (None, 3), PlainSpec("dense", 3, 4, False, "float32")),
        (keras.layers.Embedding(9, 4), (None,), PlainSpec("embedding", 9, 4, False, "float32")),
        (keras.layers.LSTMCell(4), (None, 3), RecurrentSpec("lstm", 3, 4, cell=True)),
    ]:
        layer.build(shape)
        path = tmp_path / f"{layer.name}.weights.h5"
        keras.saving.save_weights(layer, path)
        assert io.read(path).layers == [("", expected)], layer.name


# -- Keras 2 / tf.keras 2 HDF5 ----------------------------------------------------------


def keras2_weight_names(layer):
    """The variable names tf.keras 2 gave, e.g. `lstm/lstm_cell/kernel:0`."""
    if isinstance(layer, keras.layers.Bidirectional):
        names = []
        # Keras names the wrapped layers `forward_gru` / `backward_gru`, as Keras 2 did.
        for inner, cell_index in ((layer.forward_layer, 1), (layer.backward_layer, 2)):
            cell = type(inner.cell).__name__.replace("Cell", "").lower()
            cell = {"simplernn": "simple_rnn"}.get(cell, cell)
            for variable in ("kernel", "recurrent_kernel", "bias")[:len(inner.weights)]:
                names.append(f"{layer.name}/{inner.name}/{cell}_cell_{cell_index}/{variable}:0")
        return names
    if hasattr(layer, "cell"):
        cell = {"SimpleRNNCell": "simple_rnn_cell"}.get(
            type(layer.cell).__name__, type(layer.cell).__name__.replace("Cell", "").lower() + "_cell")
        return [f"{layer.name}/{cell}/{v}:0"
                for v in ("kernel", "recurrent_kernel", "bias")[:len(layer.weights)]]
    if isinstance(layer, keras.layers.Embedding):
        return [f"{layer.name}/embeddings:0"]
    return [f"{layer.name}/{v}:0" for v in ("kernel", "bias")[:len(layer.weights)]]


def write_keras2_h5(path, model, model_config=None):
    """`model`'s weights in the layout Keras 2's `save_weights_to_hdf5_group` writes."""
    layers = [layer for layer in model.layers]
    with h5py.File(path, "w") as f:
        root = f
        if model_config is not None:
            f.attrs["model_config"] = json.dumps(model_config).encode("utf8")
            f.attrs["keras_version"] = b"2.11.0"
            root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([l.name.encode("utf8") for l in layers])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.11.0"
        for layer in sorted(layers, key=lambda l: l.name):
            group = root.create_group(layer.name)
            names = keras2_weight_names(layer) if layer.weights else []
            group.attrs["weight_names"] = np.array([n.encode("utf8") for n in names], dtype="S")
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def test_keras2_hdf5_converts_and_matches(tmp_path, rng):
    model = keras_model(rng)
    write_keras2_h5(tmp_path / "legacy.h5", model)
    with h5py.File(tmp_path / "legacy.h5") as f:  # the layout is really Keras 2's
        assert "lstm/lstm/lstm_cell/kernel:0" in f
        assert "bigru/bigru/backward_gru/gru_cell_2/bias:0" in f
    checkpoint = io.read(tmp_path / "legacy.h5")
    assert checkpoint.format.name == "keras2-h5"
    assert [p for p, _ in checkpoint.layers] == ["tokens", "bigru", "lstm", "head"]
    assert_same_tensors(checkpoint.state_dict, parity.to_torch(model).state_dict())
    io.write(checkpoint, tmp_path / "legacy.pt")
    converted = io.torch_object(io.read(tmp_path / "legacy.pt"))
    parity.assert_parity(converted, model, rng.integers(0, 30, size=(3, 11)))


def test_keras2_full_model_file_records_activations(tmp_path, rng):
    model = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.SimpleRNN(4, activation="relu", name="rnn")])
    randomize_keras(model, rng)
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "input_1"}},
        {"class_name": "SimpleRNN", "config": {"name": "rnn", "activation": "relu"}},
    ]}}
    write_keras2_h5(tmp_path / "full.h5", model, model_config=config)
    checkpoint = io.read(tmp_path / "full.h5")
    assert checkpoint.layers == [("", RecurrentSpec("rnn", 3, 4, activation="relu"))]
    x = rng.normal(size=(2, 6, 3)).astype("float32")
    parity.assert_parity(io.torch_object(checkpoint), model.layers[0], x)


def test_keras2_hard_sigmoid_is_refused(tmp_path, rng):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, name="lstm")])
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "LSTM", "config": {"name": "lstm", "recurrent_activation": "hard_sigmoid"}},
    ]}}
    write_keras2_h5(tmp_path / "old.h5", model, model_config=config)
    with pytest.raises(ConversionError, match="Received: recurrent_activation='hard_sigmoid'"):
        io.read(tmp_path / "old.h5")


def test_keras2_gru_reset_after_false_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4, reset_after=False, name="gru")])
    write_keras2_h5(tmp_path / "gru.h5", model)
    with pytest.raises(ConversionError, match="reset_after=False"):
        io.read(tmp_path / "gru.h5")


# -- safetensors order ---------------------------------------------------------------


def test_safetensors_records_module_order(tmp_path, source):
    module, checkpoint = source("emb-lstm-fc")
    io.write(checkpoint, tmp_path / "m.safetensors")
    with safetensors.safe_open(tmp_path / "m.safetensors", framework="pt") as f:
        assert list(f.keys()) != list(module.state_dict())  # the file itself sorts by name
        assert f.metadata()["format"] == "pt"
    back = io.read(tmp_path / "m.safetensors")
    assert list(back.state_dict) == list(module.state_dict())
    assert not back.notes


def test_foreign_safetensors_are_ordered_by_sizes(tmp_path):
    module = notes_model()
    safetensors.torch.save_file(dict(module.state_dict()), tmp_path / "hub.safetensors")
    back = io.read(tmp_path / "hub.safetensors")
    assert [p for p, _ in back.layers] == ["emb", "rnn", "fc"]
    assert back.notes and "ordered by sizes" in back.notes[0]


def test_order_by_sizes():
    dense = PlainSpec("dense", 6, 3, True, "float32")
    emb = PlainSpec("embedding", 20, 4, False, "float32")
    rnn = RecurrentSpec("gru", 4, 6)
    ordered, chained = io.order_by_sizes([("fc", dense), ("rnn", rnn), ("emb", emb)])
    assert [p for p, _ in ordered] == ["emb", "rnn", "fc"] and chained
    _, chained = io.order_by_sizes([("a", dense), ("b", PlainSpec("dense", 9, 9, True, "float32"))])
    assert not chained


# -- --prefix ------------------------------------------------------------------------


def test_prefix_selects_one_layer(tmp_path):
    model = torch.nn.Sequential(collections.OrderedDict(
        rnn=torch.nn.GRU(3, 4), norm=torch.nn.LayerNorm(4)))  # LayerNorm does not convert
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(ConversionError, match="layer 'norm'"):
        io.read(tmp_path / "m.pt")
    checkpoint = io.read(tmp_path / "m.pt", prefix="rnn.")
    assert checkpoint.layers == [("", RecurrentSpec("gru", 3, 4))]
    assert list(checkpoint.state_dict) == list(model.rnn.state_dict())
    with pytest.raises(ConversionError, match="Received: prefix='enc.'"):
        io.read(tmp_path / "m.pt", prefix="enc.")


def test_prefix_on_a_keras_file(tmp_path, rng):
    model = keras_model(rng)
    model.save(tmp_path / "k.keras")
    checkpoint = io.read(tmp_path / "k.keras", prefix="lstm")
    assert checkpoint.layers == [("", RecurrentSpec("lstm", 10, 4))]
    assert checkpoint.keras_object is None


# -- bad files -----------------------------------------------------------------------


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("suffix", WRITABLE)
def test_truncated_files(tmp_path, source, suffix):
    _, checkpoint = source("lstm-2layer-bi")
    path = tmp_path / f"t{suffix}"
    io.write(checkpoint, path)
    with pytest.raises(io.CorruptFileError, match="truncated or corrupt") as error:
        io.read(truncate(path))
    assert str(path) in str(error.value) and "Received: " in str(error.value)


@pytest.mark.parametrize("suffix", WRITABLE + [".h5"])
@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 10])
def test_garbage_files(tmp_path, suffix, content):
    path = tmp_path / f"g{suffix}"
    path.write_bytes(content)
    with pytest.raises(io.CorruptFileError):
        io.read(path)


class WritesAFile:
    """A pickle payload: unpickling it calls `open(marker, "w")`, creating the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.zeros(2, 2), "x": WritesAFile(marker)}, tmp_path / "evil.pt")
    with pytest.raises(io.CorruptFileError, match="refused to load") as error:
        io.read(tmp_path / "evil.pt")
    assert "Received: GLOBAL" in str(error.value)
    assert not marker.exists()
    # The payload is real: a plain (unsafe) load does create the file.
    control = tmp_path / "control"
    torch.save({"x": WritesAFile(control)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()


@pytest.mark.parametrize("obj,fragment", [
    (lambda: torch.nn.Linear(2, 2), "GLOBAL torch.nn.modules.linear.Linear"),
    (lambda: torch.zeros(3), "not a dictionary of tensors"),
    (lambda: {"epoch": 3, "state_dict": torch.nn.Linear(2, 2).state_dict()},
     "under 'state_dict'"),
    (lambda: {1: torch.zeros(2)}, "not a plain tensor dictionary"),
])
def test_pickles_that_are_not_tensor_dicts(tmp_path, obj, fragment):
    torch.save(obj(), tmp_path / "x.pt")
    with pytest.raises(io.CorruptFileError, match=fragment):
        io.read(tmp_path / "x.pt")


def test_keras_lambda_is_refused(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2, name="double")])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(io.CorruptFileError, match="a Lambda layer \\('double'\\)") as error:
        io.read(tmp_path / "lambda.keras")
    assert "safe_mode=True" in str(error.value)


def test_keras_archive_without_weights(tmp_path):
    with zipfile.ZipFile(tmp_path / "half.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(io.CorruptFileError, match="missing"):
        io.read(tmp_path / "half.keras")


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(io.FileError, match="no such file"):
        io.read(tmp_path / "missing.pt")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(io.FileError, match="unknown checkpoint format") as error:
        io.read(tmp_path / "weights.npz")
    assert "Received: 'weights.npz'" in str(error.value)


def test_keras2_hdf5_is_not_written(tmp_path, source):
    _, checkpoint = source("rnn-1layer")
    with pytest.raises(io.FileError, match="read, not written"):
        io.write(checkpoint, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_unsupported_keras_layer_in_weights_file(tmp_path):
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.LSTM(4, return_sequences=True),
                              keras.layers.LayerNormalization()])
    model.save_weights(tmp_path / "ln.weights.h5")
    with pytest.raises(ConversionError, match="layer_normalization"):
        io.read(tmp_path / "ln.weights.h5")


# -- never a partial destination ---------------------------------------------------------


@pytest.mark.parametrize("suffix", WRITABLE)
def test_failed_write_leaves_nothing(tmp_path, source, monkeypatch, suffix):
    _, checkpoint = source("gru-1layer-nobias")
    fmt = io.format_of(f"x{suffix}")

    def half_then_fail(checkpoint, path):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(io.FORMATS, fmt.name, io.dataclasses.replace(fmt, writer=half_then_fail))
    destination = tmp_path / "out" / f"model{suffix}"
    destination.parent.mkdir()
    with pytest.raises(RuntimeError, match="disk on fire"):
        io.write(checkpoint, destination)
    assert os.listdir(destination.parent) == []
    # An existing destination is left as it was.
    destination.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        io.write(checkpoint, destination)
    assert destination.read_bytes() == b"old"
    assert os.listdir(destination.parent) == [destination.name]


def test_write_into_a_missing_directory(tmp_path, source):
    _, checkpoint = source("linear")
    with pytest.raises(io.FileError, match="does not exist"):
        io.write(checkpoint, tmp_path / "nope" / "x.pt")


def test_format_of_prefers_the_longest_suffix():
    assert io.format_of("a/b.weights.h5").name == "weights.h5"
    assert io.format_of("B.H5").name == "keras2-h5"
    assert io.format_of("x.pth").name == "pt"
    assert infer.join_key("", "weight") == "weight"
