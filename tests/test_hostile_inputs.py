"""Hostile inputs: every one fails loudly, names what and where, and changes nothing.

`CASES` is the table. Each row builds its own objects and files, runs one
entry point (`to_keras`, `to_torch`, `copy_weights`, `compare`,
`parity.io`, or the command line) and asserts:

- the exception type (or, for the command line, the exit code),
- a message regex that names what is wrong and where, ending in `Received: ...`,
- that nothing was written and nothing read was changed: every watched
  object (source and destination) keeps its weights bit for bit, and every
  watched directory keeps exactly its files and their bytes (no destination,
  no partial file).

These rows reach the failures of `test_errors.py`, `test_io.py` and
`test_cli.py` through other entry points or other weights; none repeats a
case of those files. Below the table: NaN/Inf weights (converted bit for
bit, mismatches reported), inputs that are valid though unusual
(non-contiguous arrays, empty batches of plain layers), and proof that the
unsafe payloads of the table are real.
"""

import collections
import dataclasses
import json
import os
import pathlib
import pickle
import re
import shutil
import zipfile
from typing import Callable

import h5py
import keras
import numpy as np
import pytest
import safetensors.torch
import torch

import parity
from factories import randomize_keras
from parity import cli, io
from parity.io import CorruptFileError, FileError

# -- snapshots: what "unchanged" means ------------------------------------------------


def _bits(array):
    array = np.ascontiguousarray(array)
    return array.dtype.str, array.shape, array.view(np.uint8).tobytes()


def snapshot(obj):
    """Everything a failed call could have changed about `obj`, bit for bit."""
    if isinstance(obj, pathlib.Path):
        if obj.is_dir():
            return {str(p.relative_to(obj)): p.read_bytes() if p.is_file() else "dir"
                    for p in sorted(obj.rglob("*"))}
        return obj.read_bytes() if obj.exists() else None
    if isinstance(obj, torch.nn.Module):
        return {k: _bits(v.detach().cpu().numpy()) for k, v in obj.state_dict().items()}
    if isinstance(obj, (list, tuple)) and all(isinstance(o, keras.layers.Layer) for o in obj):
        return [snapshot(o) for o in obj]
    if isinstance(obj, keras.layers.Layer):
        return obj.built, [_bits(keras.ops.convert_to_numpy(v)) for v in obj.weights]
    if isinstance(obj, np.ndarray):
        return _bits(obj)
    raise TypeError(f"no snapshot for {type(obj).__name__}")


# -- builders -------------------------------------------------------------------------


def built(layer, input_size=3):
    layer.build((None, None, input_size))
    return layer


def torch_file(directory, name, state_dict):
    path = directory / name
    torch.save(state_dict, path)
    return path


def with_param(module, name, shape):
    """`module` with parameter `name` replaced by one of another shape."""
    setattr(module, name, torch.nn.Parameter(torch.zeros(shape)))
    return module


def lstm_state(input_size=3, hidden=4, **kwargs):
    return torch.nn.LSTM(input_size, hidden, **kwargs).state_dict()


def branching_model():
    inputs = keras.Input((None, 3))
    a = keras.layers.LSTM(4, name="branch_a")(inputs)
    b = keras.layers.GRU(4, name="branch_b")(inputs)
    return keras.Model(inputs, keras.layers.Concatenate()([a, b]), name="two_branches")


class WithLayerNorm(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(3, 4, batch_first=True)
        self.norm = torch.nn.LayerNorm(4)

    def forward(self, x):
        return self.norm(self.rnn(x)[0])


def notes_model():
    return torch.nn.Sequential(collections.OrderedDict(
        emb=torch.nn.Embedding(10, 4),
        rnn=torch.nn.GRU(4, 5, batch_first=True),
        fc=torch.nn.Linear(5, 3),
    ))


def pair(module):
    return module, parity.to_keras(module)


def normal(*shape, dtype="float32"):
    return np.random.default_rng(0).normal(size=shape).astype(dtype)


class RunsCode:
    """A pickle payload: unpickling it calls `exec(code)`, which creates `marker`."""

    def __init__(self, marker):
        self.code = f"open({str(marker)!r}, 'w').close()"

    def __reduce__(self):
        return (exec, (self.code,))


def weights_h5(directory, layer, input_size=3, name="k.weights.h5"):
    built(layer, input_size)
    path = directory / name
    keras.saving.save_weights(layer, path)
    return path


def rewrite_h5(path, replacements):
    """Replaces datasets of an HDF5 file: `{dataset path: array}`."""
    with h5py.File(path, "r+") as f:
        for key, value in replacements.items():
            del f[key]
            f.create_dataset(key, data=value)
    return path


def keras_file(directory, name="m.keras"):
    path = directory / name
    io.write(io.read(torch_file(directory, "for_keras.pt", lstm_state())), path)
    return path


def rezip(source, target, change):
    """Copies a zip archive, `change(name, bytes)` giving each member's new bytes
    (`None` drops the member)."""
    with zipfile.ZipFile(source) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            data = change(name, data)
            if data is not None:
                archive.writestr(name, data)
    return target


def keras2_h5(path, layer_names, groups):
    """A Keras 2 HDF5 weights file: `layer_names` as listed, `groups` as held."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layer_names])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.11.0"
        for group, weights in groups.items():
            g = f.create_group(group)
            g.attrs["weight_names"] = np.array([n.encode() for n in weights], dtype="S")
            for name, value in weights.items():
                g.create_dataset(name, data=value)
    return path


# -- the table ------------------------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One hostile input.

    Attributes:
        id: the test id.
        make: `tmp_path -> dict(run=..., watch=[...], where=str or None)`;
            `run` is a callable, or the argv of the command line when
            `raises` is an exit code; `watch` the objects and directories
            that must not change; `where` a string the message must contain.
        raises: the exception class, or the command line's exit code.
        message: a regex the message (stderr, or stdout for exit code 1) matches.
    """

    id: str
    make: Callable
    raises: object
    message: str


def _case(id, raises, message):
    def register(make):
        CASES.append(Case(id, make, raises, message))
        return make
    return register


CASES = []
E = parity.ConversionError

# -- wrong type --


@_case("copy-into-a-dict", E, r"dict is not a Keras layer, model or list of layers. "
       r"Received: builtins.dict")
def _(tmp):
    lstm, kernels = torch.nn.LSTM(3, 4), {"kernel": np.zeros((3, 16), "float32")}
    return dict(run=lambda: parity.copy_weights(lstm, kernels), watch=[lstm])


@_case("functional-with-branches-to-torch", E,
       r"Functional 'two_branches': to_torch converts keras.Sequential models.*"
       r"Received: Functional")
def _(tmp):
    model = branching_model()
    return dict(run=lambda: parity.to_torch(model), watch=[model])


@_case("functional-with-branches-into-one-lstm", E,
       r"nothing was written.*\n.*branch_a.*\n.*branch_b.*unpaired.*"
       r"Received: 1 mismatched pair\(s\): keras branch_b unpaired")
def _(tmp):
    model, lstm = branching_model(), torch.nn.LSTM(3, 4, batch_first=True)
    return dict(run=lambda: parity.copy_weights(model, lstm), watch=[model, lstm])


@_case("torch-model-with-layernorm-into-keras", E,
       r"WithLayerNorm: module 'norm' \(LayerNorm\) has weights but is not a layer parity "
       r"converts. Received: torch.nn.modules.normalization.LayerNorm")
def _(tmp):
    model = WithLayerNorm()
    keras_model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4, name="rnn")])
    return dict(run=lambda: parity.copy_weights(model, keras_model), watch=[model, keras_model])


@_case("sequential-with-layernorm-to-keras", E,
       r"LayerNorm layer_1: not a layer parity converts. "
       r"Received: torch.nn.modules.normalization.LayerNorm")
def _(tmp):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    return dict(run=lambda: parity.to_keras(model), watch=[model])


@_case("module-list-to-keras", E, r"ModuleList is not a layer parity converts \(supported: "
       r".*nn.LSTM.*\). Received: torch.nn.modules.container.ModuleList")
def _(tmp):
    modules = torch.nn.ModuleList([torch.nn.LSTM(3, 4)])
    return dict(run=lambda: parity.to_keras(modules), watch=[modules])


@_case("compare-arguments-swapped", E, r"takes the PyTorch object first; the arguments are "
       r"swapped. Received: GRU \(Keras\), GRU \(torch\)")
def _(tmp):
    gru, layer = pair(torch.nn.GRU(3, 4))
    x = normal(5, 2, 3)
    return dict(run=lambda: parity.compare(layer, gru, x), watch=[gru, layer, x])


# -- unbuilt Keras layers --


@_case("copy-into-unbuilt-dense", E, r"Dense '\w+': the layer is not built.*Received: built=False")
def _(tmp):
    linear, dense = torch.nn.Linear(3, 4), keras.layers.Dense(4)
    return dict(run=lambda: parity.copy_weights(linear, dense), watch=[linear, dense])


@_case("copy-into-unbuilt-bidirectional", E,
       r"LSTM 'forward_\w+': the layer is not built.*Received: built=False")
def _(tmp):
    lstm = torch.nn.LSTM(3, 4, bidirectional=True)
    wrapper = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
    return dict(run=lambda: parity.copy_weights(lstm, wrapper), watch=[lstm, wrapper])


@_case("unbuilt-embedding-to-torch", E,
       r"Embedding 'tokens': the layer is not built.*Received: built=False")
def _(tmp):
    layer = keras.layers.Embedding(10, 4, name="tokens")
    return dict(run=lambda: parity.to_torch(layer), watch=[layer])


@_case("unbuilt-sequential-stack-to-torch", E,
       r"LSTM 'first': the layer is not built.*Received: built=False")
def _(tmp):
    model = keras.Sequential([keras.layers.LSTM(4, return_sequences=True, name="first"),
                              keras.layers.LSTM(4, name="second")])
    return dict(run=lambda: parity.to_torch(model), watch=[model])


@_case("compare-with-unbuilt-keras-layer", E,
       r"GRU 'late': the layer is not built.*Received: built=False")
def _(tmp):
    gru, layer, x = torch.nn.GRU(3, 4), keras.layers.GRU(4, name="late"), normal(5, 2, 3)
    return dict(run=lambda: parity.compare(gru, layer, x), watch=[gru, layer, x])


# -- one shape mismatch per weight: parameters replaced on the torch side --

OWN_CONFIG = r"its parameters do not fit its own configuration.*nothing was written:\n  "


@_case("lstm-weight_ih_l0-replaced", E,
       OWN_CONFIG + r"weight_ih_l0: expected shape \(16, 3\), received \(16, 5\)\n"
       r"Received: 1 problem")
def _(tmp):
    lstm = with_param(torch.nn.LSTM(3, 4), "weight_ih_l0", (16, 5))
    return dict(run=lambda: parity.to_keras(lstm), watch=[lstm], where="nn.LSTM LSTM(input_size=3")


@_case("lstm-weight_hh_l0-replaced", E,
       OWN_CONFIG + r"weight_hh_l0: expected shape \(16, 4\), received \(16, 3\)")
def _(tmp):
    lstm = with_param(torch.nn.LSTM(3, 4), "weight_hh_l0", (16, 3))
    layer = built(keras.layers.LSTM(4, return_sequences=True, return_state=True))
    return dict(run=lambda: parity.copy_weights(lstm, layer), watch=[lstm, layer])


@_case("lstm-bias_ih_l0-replaced", E,
       OWN_CONFIG + r"bias_ih_l0: expected shape \(16,\), received \(17,\)")
def _(tmp):
    lstm = with_param(torch.nn.LSTM(3, 4), "bias_ih_l0", (17,))
    layer = built(keras.layers.LSTM(4, return_sequences=True, return_state=True))
    return dict(run=lambda: parity.copy_weights(lstm, layer), watch=[lstm, layer])


@_case("lstm-bias_hh_l0-replaced", E,
       OWN_CONFIG + r"bias_hh_l0: expected shape \(16,\), received \(4,\)")
def _(tmp):
    lstm = with_param(torch.nn.LSTM(3, 4), "bias_hh_l0", (4,))
    return dict(run=lambda: parity.to_keras(lstm), watch=[lstm])


@_case("gru-stack-bias_hh_l1_reverse-replaced", E,
       OWN_CONFIG + r"bias_hh_l1_reverse: expected shape \(12,\), received \(13,\)")
def _(tmp):
    gru = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True)
    keras_model = parity.to_keras(gru)
    with_param(gru, "bias_hh_l1_reverse", (13,))
    return dict(run=lambda: parity.copy_weights(gru, keras_model), watch=[gru, keras_model])


@_case("rnn-cell-weight_hh-replaced", E,
       OWN_CONFIG + r"weight_hh: expected shape \(4, 4\), received \(4, 5\)")
def _(tmp):
    cell = torch.nn.RNNCell(3, 4)
    keras_cell = parity.to_keras(cell)
    with_param(cell, "weight_hh", (4, 5))
    return dict(run=lambda: parity.copy_weights(cell, keras_cell), watch=[cell, keras_cell])


@_case("linear-weight-replaced", E,
       OWN_CONFIG + r"weight: expected shape \(4, 3\), received \(3, 4\)")
def _(tmp):
    linear = torch.nn.Linear(3, 4)
    dense = parity.to_keras(linear)
    with_param(linear, "weight", (3, 4))
    return dict(run=lambda: parity.copy_weights(linear, dense), watch=[linear, dense],
                where="nn.Linear Linear(in_features=3, out_features=4")


@_case("embedding-weight-replaced-compare", E,
       OWN_CONFIG + r"weight: expected shape \(10, 4\), received \(10, 5\)")
def _(tmp):
    embedding, layer = pair(torch.nn.Embedding(10, 4))
    with_param(embedding, "weight", (10, 5))
    x = np.zeros((2, 3), "int64")
    return dict(run=lambda: parity.compare(embedding, layer, x), watch=[embedding, layer, x])


# -- one shape mismatch per weight: files --


@_case("file-weight_ih_l1-wrong-input", E,
       r"layer \(no prefix\): the weights look like LSTM\(input_size=3, hidden_size=4, "
       r"num_layers=2.*do not fit it:\n  weight_ih_l1: expected shape \(16, 4\), "
       r"received \(16, 5\)")
def _(tmp):
    state = {**lstm_state(num_layers=2), "weight_ih_l1": torch.zeros(16, 5)}
    path = torch_file(tmp, "stack.pt", state)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("file-bias_hh_l0_reverse-wrong-cli", 4,
       r"bias_hh_l0_reverse: expected shape \(12,\), received \(11,\)")
def _(tmp):
    state = {**torch.nn.GRU(3, 4, bidirectional=True).state_dict(),
             "bias_hh_l0_reverse": torch.zeros(11)}
    path = torch_file(tmp, "bigru.pt", state)
    return dict(run=["convert", path, tmp / "bigru.keras"], watch=[tmp], where=str(path))


@_case("file-linear-bias-wrong", E,
       r"layer 'fc': its weights \(weight \(3, 4\), bias \(4,\)\) form no layer parity converts")
def _(tmp):
    path = torch_file(tmp, "fc.pt", {"fc.weight": torch.zeros(3, 4), "fc.bias": torch.zeros(4)})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("weights-h5-recurrent_kernel-wrong", E,
       r"layer 'gru\w*'.*kernel and recurrent_kernel have different gate columns. "
       r"Received: kernel \(3, 12\), recurrent_kernel \(4, 16\)")
def _(tmp):
    path = weights_h5(tmp, keras.layers.GRU(4))
    rewrite_h5(path, {"cell/vars/1": np.zeros((4, 16), "float32")})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("weights-h5-gru-bias-wrong", E,
       r"expected bias shape \(2, 12\) for a GRU of 4 units.*Received: kernel \(3, 12\), "
       r"recurrent_kernel \(4, 12\), bias \(2, 13\)")
def _(tmp):
    path = weights_h5(tmp, keras.layers.GRU(4))
    rewrite_h5(path, {"cell/vars/2": np.zeros((2, 13), "float32")})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("state-dict-into-a-wider-structure", E,
       r"its weights do not fit LSTM:\n  weight_ih_l0: expected \(20, 3\) float32, "
       r"received \(16, 3\) float32")
def _(tmp):
    checkpoint = io.read(torch_file(tmp, "lstm.pt", lstm_state()))
    structure = torch.nn.LSTM(3, 5)
    return dict(run=lambda: io.torch_object(checkpoint, structure=structure),
                watch=[tmp, structure], where="lstm.pt")


# -- swapped input_size / hidden_size --


@_case("swapped-sizes-keras-into-torch", E,
       r"architectures differ; nothing was written.*input_size: source 3, destination 4"
       r".*hidden_size: source 4, destination 3")
def _(tmp):
    layer = randomize_keras(built(keras.layers.LSTM(4)), np.random.default_rng(0))
    lstm = torch.nn.LSTM(4, 3)
    return dict(run=lambda: parity.copy_weights(layer, lstm), watch=[layer, lstm])


@_case("swapped-weight-names-in-file", E,
       r"the recurrent weights hold 16 gate rows for hidden size 3.*"
       r"Received: weight_ih_l0 \(16, 4\), weight_hh_l0 \(16, 3\)")
def _(tmp):
    state = lstm_state()
    state["weight_ih_l0"], state["weight_hh_l0"] = state["weight_hh_l0"], state["weight_ih_l0"]
    path = torch_file(tmp, "swapped.pt", state)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("swapped-sizes-cli-check", 1, r"FAIL: .*a.pt and .*b.keras hold different architectures; "
       r"nothing was run")
def _(tmp):
    torch_file(tmp, "a.pt", lstm_state(3, 4))
    io.write(io.read(torch_file(tmp, "b.pt", lstm_state(4, 3))), tmp / "b.keras")
    return dict(run=["check", tmp / "a.pt", tmp / "b.keras"], watch=[tmp])


# -- wrong gate multiple --


@_case("gate-multiple-5-in-file", E,
       r"the recurrent weights hold 20 gate rows for hidden size 4; an RNN has 1x, a GRU 3x "
       r"and an LSTM 4x")
def _(tmp):
    path = torch_file(tmp, "five.pt", {"weight_ih_l0": torch.zeros(20, 3),
                                       "weight_hh_l0": torch.zeros(20, 4)})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("gate-multiple-2-in-weights-h5", E, r"8 gate rows for hidden size 4.*"
       r"Received: kernel \(3, 8\), recurrent_kernel \(4, 8\)")
def _(tmp):
    path = weights_h5(tmp, keras.layers.SimpleRNN(4))
    rewrite_h5(path, {"cell/vars/0": np.zeros((3, 8), "float32"),
                      "cell/vars/1": np.zeros((4, 8), "float32"),
                      "cell/vars/2": np.zeros(8, "float32")})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("lstm-with-gru-sized-weight_hh-compare", E,
       OWN_CONFIG + r"weight_hh_l0: expected shape \(16, 4\), received \(12, 4\)")
def _(tmp):
    lstm, layer = pair(torch.nn.LSTM(3, 4))
    with_param(lstm, "weight_hh_l0", (12, 4))
    x = normal(5, 2, 3)
    return dict(run=lambda: parity.compare(lstm, layer, x), watch=[lstm, layer, x])


# -- missing and unexpected state_dict keys --


@_case("missing-bias_hh-cli-convert", 4, r"do not fit it:\n  missing bias_hh_l0 \(16,\)")
def _(tmp):
    state = {k: v for k, v in lstm_state().items() if k != "bias_hh_l0"}
    path = torch_file(tmp, "nobias.pt", state)
    return dict(run=["convert", path, tmp / "out.safetensors"], watch=[tmp], where=str(path))


@_case("unexpected-extra-key", E, r"its weights \(.*weight_ih_l0_extra \(2,\)\) form no layer "
       r"parity converts.*Received: keys \[.*'weight_ih_l0_extra'\]")
def _(tmp):
    path = torch_file(tmp, "extra.pt", {**lstm_state(), "weight_ih_l0_extra": torch.zeros(2)})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("missing-second-layer-of-a-bidirectional-stack", E,
       r"look like GRU\(input_size=3, hidden_size=4, num_layers=2, bidirectional=True.*"
       r"missing weight_hh_l1_reverse \(12, 4\)")
def _(tmp):
    state = torch.nn.GRU(3, 4, num_layers=2, bidirectional=True).state_dict()
    state = {k: v for k, v in state.items() if not (k.endswith("l1_reverse") and "hh" in k)}
    path = torch_file(tmp, "half.pt", state)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("unexpected-bias-for-a-biasless-structure", E,
       r"its weights do not fit GRU:\n  unexpected bias_ih_l0\n  unexpected bias_hh_l0")
def _(tmp):
    checkpoint = io.read(torch_file(tmp, "gru.pt", torch.nn.GRU(3, 4).state_dict()))
    structure = torch.nn.GRU(3, 4, bias=False)
    return dict(run=lambda: io.torch_object(checkpoint, structure=structure),
                watch=[tmp, structure], where="gru.pt")


# -- mixed and unsupported dtypes --


@_case("mixed-dtypes-in-file", E, r"layer \(no prefix\): all weights must share one dtype.*"
       r"Received: dtypes=\['float32', 'float64'\]")
def _(tmp):
    state = lstm_state()
    state["bias_ih_l0"] = state["bias_ih_l0"].double()
    path = torch_file(tmp, "mixed.pt", state)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("mixed-dtypes-in-a-keras-stack", E,
       r"LSTM 'upper' \(layer 1, forward\) has dtype 'float64' but the first layer has "
       r"'float32'.*Received: dtype='float64'")
def _(tmp):
    model = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.LSTM(4, return_sequences=True, name="lower"),
                              keras.layers.LSTM(4, dtype="float64", name="upper")])
    lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True)
    return dict(run=lambda: parity.copy_weights(model, lstm), watch=[model, lstm])


@_case("bfloat16-file-cli", 4, r"all weights must share one dtype out of \('float32', "
       r"'float64'\). Received: dtypes=\['bfloat16'\]")
def _(tmp):
    path = torch_file(tmp, "bf16.pt", {k: v.bfloat16() for k, v in lstm_state().items()})
    return dict(run=["convert", path, tmp / "bf16.keras"], watch=[tmp], where=str(path))


@_case("float64-keras-into-float32-torch", E,
       r"architectures differ.*dtype: source 'float64', destination 'float32'")
def _(tmp):
    layer = built(keras.layers.GRU(4, dtype="float64"))
    gru = torch.nn.GRU(3, 4, batch_first=True)
    return dict(run=lambda: parity.copy_weights(layer, gru), watch=[layer, gru])


# -- empty sequences and batches --


@_case("time-0", E, r"nn.LSTM: x holds 0 time step\(s\) of 2 sequence\(s\); there is nothing "
       r"to compare.*Received: shape=\(0, 2, 3\)")
def _(tmp):
    lstm, layer = pair(torch.nn.LSTM(3, 4))
    x = np.zeros((0, 2, 3), "float32")
    return dict(run=lambda: parity.compare(lstm, layer, x), watch=[lstm, layer, x])


@_case("batch-0-bidirectional-stack", E,
       r"nn.GRU: x holds 5 time step\(s\) of 0 sequence\(s\).*Received: shape=\(0, 5, 3\)")
def _(tmp):
    gru, keras_model = pair(torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True))
    x = np.zeros((0, 5, 3), "float32")
    return dict(run=lambda: parity.compare(gru, keras_model, x), watch=[gru, keras_model, x])


@_case("time-0-cell-loop", E,
       r"nn.LSTMCell: x holds 0 time step\(s\) of 2 sequence\(s\).*Received: shape=\(0, 2, 3\)")
def _(tmp):
    cell, keras_cell = pair(torch.nn.LSTMCell(3, 4))
    x = np.zeros((0, 2, 3), "float32")
    return dict(run=lambda: parity.compare(cell, keras_cell, x), watch=[cell, keras_cell, x])


@_case("batch-0-whole-model-with-rnn", E, r"Sequential: x is empty and the model holds "
       r"recurrent layers.*Received: shape=\(0, 5\)")
def _(tmp):
    model, keras_model = pair(notes_model())
    x = np.zeros((0, 5), "int64")
    return dict(run=lambda: parity.compare(model, keras_model, x), watch=[model, keras_model, x])


# -- inputs to compare --


@_case("bool-input", E, r"nn.GRU computes in floating point, so x must be a float array. "
       r"Received: dtype=bool")
def _(tmp):
    gru, layer = pair(torch.nn.GRU(3, 4))
    x = np.ones((5, 2, 3), bool)
    return dict(run=lambda: parity.compare(gru, layer, x), watch=[gru, layer, x])


@_case("complex-input", E, r"nn.Linear computes in floating point.*Received: dtype=complex128")
def _(tmp):
    linear, dense = pair(torch.nn.Linear(3, 4))
    x = np.ones((2, 3), complex)
    return dict(run=lambda: parity.compare(linear, dense, x), watch=[linear, dense, x])


@_case("string-input", E, r"nn.RNNCell computes in floating point.*Received: dtype=<U3")
def _(tmp):
    cell, keras_cell = pair(torch.nn.RNNCell(3, 4))
    x = np.full((2, 3), "0.5")
    return dict(run=lambda: parity.compare(cell, keras_cell, x), watch=[cell, keras_cell, x])


@_case("integer-input-to-lstm", E, r"nn.LSTM computes in floating point, so x must be a float "
       r"array \(integer indices go through an Embedding first\). Received: dtype=int64")
def _(tmp):
    lstm, layer = pair(torch.nn.LSTM(3, 4))
    x = np.ones((5, 2, 3), "int64")
    return dict(run=lambda: parity.compare(lstm, layer, x), watch=[lstm, layer, x])


@_case("float-indices-to-whole-model", E, r"Sequential \(its first layer is nn.Embedding\) "
       r"takes integer indices. Received: dtype=float32")
def _(tmp):
    model, keras_model = pair(notes_model())
    x = np.ones((2, 5), "float32")
    return dict(run=lambda: parity.compare(model, keras_model, x), watch=[model, keras_model, x])


@_case("index-out-of-range", E, r"nn.Embedding: every index must be in \[0, 10\). "
       r"Received: indices from -1 to 10")
def _(tmp):
    embedding, layer = pair(torch.nn.Embedding(10, 4))
    x = np.array([[0, 10], [-1, 3]])
    return dict(run=lambda: parity.compare(embedding, layer, x), watch=[embedding, layer, x])


@_case("features-mismatch", E, r"nn.LSTM: x has 4 features per step, the layer takes "
       r"input_size=3. Received: shape=\(2, 5, 4\)")
def _(tmp):
    lstm, layer = pair(torch.nn.LSTM(3, 4, batch_first=True))
    x = normal(2, 5, 4)
    return dict(run=lambda: parity.compare(lstm, layer, x), watch=[lstm, layer, x])


@_case("initial-state-wrong-shape", E, r"nn.LSTM: initial state c0 must have shape \(4, 2, 4\) "
       r"\(num_layers \* num_directions, batch, hidden\). Received: shape=\(2, 2, 4\)")
def _(tmp):
    lstm, keras_model = pair(torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True))
    x, h0, c0 = normal(5, 2, 3), normal(4, 2, 4), normal(2, 2, 4)
    return dict(run=lambda: parity.compare(lstm, keras_model, x, initial_state=(h0, c0)),
                watch=[lstm, keras_model, x, h0, c0])


# -- lengths and masks --


@_case("lengths-longer-than-the-sequence", E, r"every length must be between 1 and the "
       r"sequence length 5. Received: lengths=\[5, 9\]")
def _(tmp):
    gru, keras_model = pair(torch.nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True))
    x, lengths = normal(2, 5, 3), np.array([5, 9])
    return dict(run=lambda: parity.compare(gru, keras_model, x, lengths=lengths),
                watch=[gru, keras_model, x, lengths])


@_case("mask-longer-than-the-sequence", E, r"mask must be boolean \(batch, time\) = \(2, 5\).*"
       r"Received: dtype=bool, shape=\(2, 6\)")
def _(tmp):
    lstm, layer = pair(torch.nn.LSTM(3, 4, batch_first=True))
    x, mask = normal(2, 5, 3), np.ones((2, 6), bool)
    return dict(run=lambda: parity.compare(lstm, layer, x, mask=mask), watch=[lstm, layer, x, mask])


# -- truncated, corrupt and empty files --


@_case("empty-pt-cli-inspect", 3, r"not a readable PyTorch file \(truncated or corrupt")
def _(tmp):
    (tmp / "empty.pt").write_bytes(b"")
    return dict(run=["inspect", tmp / "empty.pt"], watch=[tmp], where=str(tmp / "empty.pt"))


@_case("garbage-second-file-cli-check", 3, r"not a readable safetensors file \(truncated or "
       r"corrupt\). Received: SafetensorError: .*header too large")
def _(tmp):
    torch_file(tmp, "good.pt", lstm_state())
    (tmp / "bad.safetensors").write_bytes(b"\xff" * 64)
    return dict(run=["check", tmp / "good.pt", tmp / "bad.safetensors"], watch=[tmp],
                where=str(tmp / "bad.safetensors"))


@_case("keras-archive-with-truncated-weights", CorruptFileError,
       r"\(model.weights.h5\): not a readable HDF5 file \(truncated or corrupt\). "
       r"Received: OSError")
def _(tmp):
    path = rezip(keras_file(tmp), tmp / "cut.keras",
                 lambda name, data: data[: len(data) // 2] if name == "model.weights.h5" else data)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("keras-archive-config-not-json", CorruptFileError,
       r"not a readable .keras archive \(truncated or corrupt\). Received: JSONDecodeError")
def _(tmp):
    path = rezip(keras_file(tmp), tmp / "noconfig.keras",
                 lambda name, data: b"{not json" if name == "config.json" else data)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("pt-archive-missing-a-tensor-record", CorruptFileError,
       r"not a readable PyTorch file \(truncated or corrupt\). Received: RuntimeError: .*data/0")
def _(tmp):
    source = torch_file(tmp, "whole.pt", lstm_state())
    path = rezip(source, tmp / "holed.pt",
                 lambda name, data: None if name.endswith("/data/0") else data)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("keras2-h5-lists-a-missing-layer", CorruptFileError,
       r"lists layer 'ghost' but holds no group for it \(truncated file\?\). "
       r"Received: groups \['dense'\]")
def _(tmp):
    path = keras2_h5(tmp / "legacy.h5", ["dense", "ghost"],
                     {"dense": {"dense/kernel:0": np.zeros((3, 2), "float32")}})
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("safetensors-header-past-the-end", CorruptFileError,
       r"not a readable safetensors file \(truncated or corrupt\). Received: SafetensorError: "
       r".*invalid header length")
def _(tmp):
    path = tmp / "long.safetensors"
    safetensors.torch.save_file(lstm_state(), path)
    data = path.read_bytes()
    path.write_bytes((len(data) * 2).to_bytes(8, "little") + data[8:])
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("sparse-tensor-in-pt", CorruptFileError, r"holds tensors that are not dense.*"
       r"Received: \{'bias_ih_l0': 'torch.sparse_coo'\}")
def _(tmp):
    state = lstm_state()
    state["bias_ih_l0"] = state["bias_ih_l0"].to_sparse()
    path = torch_file(tmp, "sparse.pt", state)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


# -- files that would run code --


@_case("legacy-format-pickle-that-runs-code", CorruptFileError,
       r"refused to load: its pickle needs (builtins\.)?exec, which loading weights only does not "
       r"allow.*Received: GLOBAL (builtins\.)?exec")
def _(tmp):
    path = tmp / "legacy.pt"
    torch.save({"w": RunsCode(tmp / "pwned")}, path, _use_new_zipfile_serialization=False)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("plain-pickle-that-runs-code-cli-inspect", 3,
       r"refused to load.*Received: GLOBAL (builtins\.)?exec")
def _(tmp):
    path = tmp / "plain.pt"
    path.write_bytes(pickle.dumps({"w": RunsCode(tmp / "pwned")}, protocol=2))
    return dict(run=["inspect", path], watch=[tmp], where=str(path))


@_case("lambda-inside-a-nested-model", CorruptFileError,
       r"refused to load: a Lambda layer \('double'\).*safe_mode=True only. "
       r"Received: class_name='Lambda'")
def _(tmp):
    inner = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.Lambda(lambda x: x * 2, name="double"),
                              keras.layers.GRU(4)], name="inner")
    path = tmp / "nested.keras"
    keras.Sequential([keras.Input((None, 3)), inner]).save(path)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("lambda-cli-check", 3, r"refused to load: a Lambda layer")
def _(tmp):
    torch_file(tmp, "lstm.pt", lstm_state())
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.Lambda(lambda x: x + 1),
                              keras.layers.LSTM(4)])
    model.save(tmp / "lambda.keras")
    return dict(run=["check", tmp / "lstm.pt", tmp / "lambda.keras"], watch=[tmp],
                where=str(tmp / "lambda.keras"))


@_case("keras-config-naming-os-system", 4, r"Keras cannot rebuild the model it holds.*"
       r"Received: TypeError: Could not locate class 'system'")
def _(tmp):
    marker = tmp / "pwned"
    config = {"module": "os", "class_name": "system", "registered_name": None,
              "config": {"command": f"touch {marker}"}}
    path = rezip(keras_file(tmp), tmp / "os.keras",
                 lambda name, data: json.dumps(config).encode() if name == "config.json" else data)
    return dict(run=["convert", path, tmp / "os.pt"], watch=[tmp], where=str(path))


# -- wrong extensions --


@_case("pt-named-safetensors-cli", 3, r"not a readable safetensors file \(truncated or corrupt\)")
def _(tmp):
    path = torch_file(tmp, "really_a_pt.safetensors", lstm_state())
    return dict(run=["convert", path, tmp / "out.pt"], watch=[tmp], where=str(path))


@_case("keras-named-pt", CorruptFileError, r"not a readable PyTorch file \(truncated or corrupt\)")
def _(tmp):
    path = tmp / "really_keras.pt"
    shutil.copy(keras_file(tmp), path)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("weights-h5-named-keras", CorruptFileError,
       r"not a readable .keras archive \(truncated or corrupt\). Received: BadZipFile")
def _(tmp):
    path = tmp / "really_weights.keras"
    shutil.copy(weights_h5(tmp, keras.layers.GRU(4)), path)
    return dict(run=lambda: io.read(path), watch=[tmp], where=str(path))


@_case("destination-without-a-suffix-cli", 2, r"unknown checkpoint format.*Received: 'model'")
def _(tmp):
    path = torch_file(tmp, "model.pt", lstm_state())
    return dict(run=["convert", path, tmp / "model"], watch=[tmp], where=str(tmp / "model"))


# -- destinations that cannot be written --


@_case("destination-name-too-long", FileError, r"cannot be written. Received: OSError: "
       r"\[Errno 36\] File name too long")
def _(tmp):
    checkpoint = io.read(torch_file(tmp, "lstm.pt", lstm_state()))
    path = tmp / ("x" * 240 + ".safetensors")
    return dict(run=lambda: io.write(checkpoint, path), watch=[tmp])


@_case("destination-is-a-directory", FileError, r"out.keras: is a directory")
def _(tmp):
    checkpoint = io.read(torch_file(tmp, "lstm.pt", lstm_state()))
    (tmp / "out.keras").mkdir()
    return dict(run=lambda: io.write(checkpoint, tmp / "out.keras"), watch=[tmp])


@_case("destination-on-a-read-only-filesystem-cli", 2, r"/proc/parity-test.pt: cannot be "
       r"written. Received: \w+Error")
def _(tmp):
    if not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux's /proc, where no file can be created")
    path = torch_file(tmp, "lstm.pt", lstm_state())
    return dict(run=["convert", path, "/proc/parity-test.pt"], watch=[tmp])


@_case("destination-in-a-read-only-directory", FileError, r"cannot be written. Received: "
       r"PermissionError")
def _(tmp):
    checkpoint = io.read(torch_file(tmp, "lstm.pt", lstm_state()))
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anyway
        locked.chmod(0o755)
        pytest.skip("this user can write into a read-only directory (root)")
    return dict(run=lambda: io.write(checkpoint, locked / "x.pt"), watch=[tmp])


# -- running the table ------------------------------------------------------------------


def run_cli(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case, tmp_path, capsys):
    scenario = case.make(tmp_path)
    watched = scenario["watch"]
    before = [snapshot(w) for w in watched]
    if isinstance(case.raises, int):
        code, out, err = run_cli(scenario["run"], capsys)
        text = out if case.raises == 1 else err
        assert code == case.raises, out + err
        assert "Traceback" not in err, err
        if case.raises != 1:
            assert err.startswith("parity: error: "), err
            assert "Received: " in err.strip().splitlines()[-1], err
    else:
        with pytest.raises(case.raises) as info:
            scenario["run"]()
        text = str(info.value)
        assert "Received: " in text.strip().splitlines()[-1], text
    assert re.search(case.message, text, re.S), text
    if scenario.get("where"):
        assert scenario["where"] in text, text
    after = [snapshot(w) for w in watched]
    for obj, was, now in zip(watched, before, after):
        assert was == now, f"{type(obj).__name__} changed"
    assert not (tmp_path / "pwned").exists(), "a payload ran"


def test_the_table_is_large_and_distinct():
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    assert len({c.message for c in CASES}) == len(CASES)


# -- the unsafe payloads are real ------------------------------------------------------


def test_the_code_running_payloads_would_run(tmp_path):
    """What the table refuses, an unsafe load executes: each creates its marker."""
    legacy, plain = tmp_path / "legacy.pt", tmp_path / "plain.pt"
    torch.save({"w": RunsCode(tmp_path / "from_legacy")}, legacy,
               _use_new_zipfile_serialization=False)
    plain.write_bytes(pickle.dumps({"w": RunsCode(tmp_path / "from_plain")}, protocol=2))
    torch.load(legacy, weights_only=False)
    with open(plain, "rb") as f:
        pickle.load(f)
    assert (tmp_path / "from_legacy").exists() and (tmp_path / "from_plain").exists()


# -- NaN and Inf ----------------------------------------------------------------------

SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0], "float32")
# A signalling NaN and a NaN with a payload: arithmetic would change their bits.
SPECIAL_BITS = np.array([0x7F800001, 0x7FC12345], np.uint32).view(np.float32)


def poison(array):
    """`array` with NaN, +-Inf, -0.0, a signalling NaN and a NaN payload in it."""
    flat = array.reshape(-1).copy()
    specials = np.concatenate([SPECIALS, SPECIAL_BITS])[: flat.size]
    flat[: len(specials)] = specials
    return flat.reshape(array.shape)


def assert_same_bits(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), what


TORCH_KINDS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


@pytest.mark.parametrize("kind", list(TORCH_KINDS))
def test_nan_inf_weights_torch_to_keras_to_torch(kind):
    module = TORCH_KINDS[kind](3, 8, num_layers=2, bidirectional=True)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(poison(p.numpy())))
    back = parity.to_torch(parity.to_keras(module))
    for name, p in module.named_parameters():
        original, returned = p.detach().numpy(), getattr(back, name).detach().numpy()
        if name.startswith("weight") or kind == "gru":  # lossless: every bit comes back
            assert_same_bits(returned, original, name)
        elif name.startswith("bias_hh"):  # the summed bias lives in bias_ih
            assert_same_bits(returned, np.zeros_like(original), name)


@pytest.mark.parametrize("kind", list(TORCH_KINDS))
def test_nan_inf_weights_keras_to_torch_to_keras(kind, rng):
    layer = {"rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
             "gru": keras.layers.GRU}[kind]
    model = keras.Sequential([keras.Input((None, 3)),
                              keras.layers.Bidirectional(layer(8, return_sequences=True)),
                              keras.layers.Bidirectional(layer(8, return_sequences=True))])
    model.set_weights([poison(w) for w in randomize_keras(model, rng).get_weights()])
    again = parity.to_keras(parity.to_torch(model))
    for i, (original, returned) in enumerate(zip(model.get_weights(), again.get_weights())):
        assert_same_bits(returned, original, f"weight {i}")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".keras", ".weights.h5"])
def test_nan_inf_weights_through_files(tmp_path, suffix):
    gru = torch.nn.GRU(3, 8, bidirectional=True)  # GRU: lossless both ways, biases too
    with torch.no_grad():
        for p in gru.parameters():
            p.copy_(torch.from_numpy(poison(p.numpy())))
    torch.save(gru.state_dict(), tmp_path / "gru.pt")
    io.write(io.read(tmp_path / "gru.pt"), tmp_path / f"out{suffix}")
    back = io.read(tmp_path / f"out{suffix}").state_dict
    for name, p in gru.state_dict().items():
        assert_same_bits(io.as_tensor(back[name]).numpy(), p.numpy(), name)


def test_compare_reports_a_nan_on_one_side(rng):
    gru, layer = pair(torch.nn.GRU(3, 4))
    x = rng.normal(size=(5, 2, 3)).astype("float32")
    assert parity.compare(gru, layer, x).ok
    with torch.no_grad():
        gru.weight_hh_l0[0, 0] = float("nan")  # the torch side only
    report = parity.compare(gru, layer, x)
    assert not report.ok
    assert report["outputs"].nan_mismatches > 0 and report["h_n"].nan_mismatches > 0
    assert "NaN mismatches" in str(report) and "FAIL at" in str(report)
    with pytest.raises(parity.ParityError, match=r"max abs diff inf"):
        parity.assert_parity(gru, layer, x)


def test_compare_reports_an_inf_on_one_side(rng):
    linear, dense = pair(torch.nn.Linear(3, 4))
    kernel, bias = dense.get_weights()
    # The Keras side only.
    dense.set_weights([kernel, np.array([np.inf, 0, 0, 0], "float32") + bias])
    report = parity.compare(linear, dense, rng.normal(size=(2, 3)).astype("float32"))
    assert not report.ok and report["outputs"].worst_index[1] == 0


def test_the_same_nan_on_both_sides_is_parity(rng):
    """A faithful conversion of NaN weights computes NaN in the same places."""
    lstm = torch.nn.LSTM(3, 4)
    with torch.no_grad():
        lstm.bias_ih_l0[5] = float("nan")
    x = rng.normal(size=(5, 2, 3)).astype("float32")
    with torch.no_grad():
        assert torch.isnan(lstm(torch.from_numpy(x))[0]).any()
    report = parity.compare(lstm, parity.to_keras(lstm), x)
    assert report.ok and report["outputs"].nan_mismatches == 0


# -- valid, if unusual, inputs ---------------------------------------------------------


def test_non_contiguous_inputs_compare_like_contiguous_ones(rng):
    lstm, keras_model = pair(torch.nn.LSTM(3, 4, num_layers=2))
    x = rng.normal(size=(5, 2, 3)).astype("float32")
    expected = parity.compare(lstm, keras_model, x)
    views = {
        "transposed": np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, 2)), 0, 2),
        "fortran": np.asfortranarray(x),
        "strided": np.repeat(x, 2, axis=1)[:, ::2],
        "reversed": np.ascontiguousarray(x[::-1])[::-1],
        "torch-transposed":
            torch.from_numpy(np.ascontiguousarray(np.swapaxes(x, 0, 1))).transpose(0, 1),
        "torch-requires-grad": torch.from_numpy(x.copy()).requires_grad_(),
    }
    for name, view in views.items():
        if isinstance(view, np.ndarray):
            assert not view.flags["C_CONTIGUOUS"], name
            np.testing.assert_array_equal(view, x)
        report = parity.compare(lstm, keras_model, view)
        for output, diff in expected.outputs.items():
            assert report[output].max_abs_error == diff.max_abs_error, (name, output)


@pytest.mark.parametrize("module,x", [
    (torch.nn.Linear(3, 4), np.zeros((0, 3), "float32")),
    (torch.nn.Embedding(10, 4), np.zeros((0, 5), "int64")),
], ids=["linear", "embedding"])
def test_an_empty_batch_of_a_plain_layer_is_an_empty_comparison(module, x):
    """Both frameworks run plain layers on an empty batch: a valid, empty result."""
    report = parity.compare(module, parity.to_keras(module), x)
    assert report.ok and report["outputs"].shape[0] == 0 and report["outputs"].note == "empty"
