"""Checkpoint files: read any supported format, write any writable one.

| format | suffixes | read | write |
|---|---|---|---|
| PyTorch `state_dict` (pickle) | `.pt`, `.pth` | `torch.load(weights_only=True)` | `torch.save` of `{name: tensor}` |
| safetensors | `.safetensors` | `safetensors` | `safetensors` (PyTorch names) |
| Keras 3 archive | `.keras` | `keras.saving.load_model(safe_mode=True)` | `keras.saving.save_model` |
| Keras 3 weights | `.weights.h5` | `h5py` (the layers inferred) | `keras.saving.save_weights` |
| Keras 2 / tf.keras 2 HDF5 | `.h5`, `.hdf5` | `h5py` (`layer/layer/kernel:0` names) | refused |

Every file is read into one form: an ordered list of layers `[(prefix,
spec)]` and a `state_dict` in PyTorch's names and layouts (Keras files are
converted on the way in). From that form any format is written: PyTorch
formats directly, Keras formats through the torch model the specs build and
`parity.to_keras`. A `.keras` file keeps the Keras object it loaded, so a
Keras -> Keras conversion or a parity check uses the file's own model.

Nothing here runs code from a file: pickles are loaded with
`weights_only=True`, `.keras` archives with `safe_mode=True` (a `Lambda`
layer is refused before Keras sees it), HDF5 files are read with `h5py`.
A destination is written under a temporary name in its directory and
renamed only once complete, so a failure never leaves a partial file.

Errors are `ConversionError`s; their subclasses say which kind, and the
command line turns each into its exit code (`exit_code`).

Example:

>>> torch.save(torch.nn.LSTM(3, 5).state_dict(), "lstm.pt")
>>> checkpoint = parity.io.read("lstm.pt")
>>> checkpoint.layers
[('', RecurrentSpec(kind='lstm', input_size=3, hidden_size=5, ...))]
>>> parity.io.write(checkpoint, "lstm.keras")     # a keras.layers.LSTM
"""

import dataclasses
import io as _bytes_io
import json
import os
import pickle
import re
import secrets
import zipfile
from typing import Callable

import h5py
import keras
import numpy as np
import safetensors
import safetensors.torch
import torch

from parity import infer, recurrent
from parity.dtypes import dtype_name
from parity.errors import ConversionError
from parity.registry import PLAIN


class FileError(ConversionError):
    """A missing file, an unknown format or an unwritable destination (exit code 2)."""

    exit_code = 2


class CorruptFileError(ConversionError):
    """A truncated, corrupt or unsafe file, or not a tensor dictionary (exit code 3)."""

    exit_code = 3


@dataclasses.dataclass(frozen=True)
class Entry:
    """One weight as the file stores it."""

    name: str
    shape: tuple
    dtype: str


@dataclasses.dataclass
class Checkpoint:
    """A file's weights, read into the one form every writer takes.

    Attributes:
        path: the file.
        format: the `Format` it was read as.
        entries: every weight as stored in the file, in the file's own names.
        layers: `[(prefix, spec)]` in order; `prefix` is `""` for a bare layer.
        state_dict: `{PyTorch name: tensor or array}`, PyTorch's layouts.
        keras_object: the Keras model a `.keras` file holds, else `None`.
        notes: things the reader had to assume (the layer order of a
            `.weights.h5`, skipped optimizer state), for the user to see.
    """

    path: str
    format: "Format"
    entries: list
    layers: list
    state_dict: dict
    keras_object: object = None
    notes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Format:
    """A checkpoint format: its suffixes, its framework and how to read/write it."""

    name: str
    suffixes: tuple
    framework: str
    description: str
    reader: Callable
    writer: Callable = None


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _shape(value):
    return tuple(int(n) for n in value.shape)


def as_tensor(value):
    """A contiguous CPU torch tensor for a tensor or a numpy array (no copy when possible)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous()
    return torch.from_numpy(np.ascontiguousarray(value))


def _entries(state_dict):
    return [Entry(k, _shape(v), dtype_name(v.dtype)) for k, v in state_dict.items()]


def _natural_key(name):
    """`"gru_10"` after `"gru_2"`: Keras numbers same-type layers `x`, `x_1`, `x_2`, ..."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


# --------------------------------------------------------------------------
# PyTorch pickles (.pt / .pth)
# --------------------------------------------------------------------------

# torch's weights-only unpickler names the refused global one way for the zip
# format ("Unsupported global: GLOBAL x") and another for the legacy one
# ("Trying to load unsupported GLOBAL x whose module y is blocked").
_UNSAFE_GLOBAL = re.compile(r"(?:Unsupported global:|unsupported) GLOBAL (\S+)")


def _unpickling_reason(error):
    """The line of a weights-only `UnpicklingError` that says what failed (its
    first line is the same advice for every file)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if "nsupported" in line or "rror:" in line]
    return reasons[-1] if reasons else _first_line(error)


def _check_tensor_dict(obj, path):
    """Refuses anything but `{str: tensor}` (a module's `state_dict()`)."""
    if not isinstance(obj, dict):
        raise CorruptFileError(
            f"{path}: holds a pickled {type(obj).__name__}, not a dictionary of "
            f"tensors; parity reads a module's state_dict() (torch.save(module."
            f"state_dict(), path)). Received: {type(obj).__module__}.{type(obj).__name__}"
        )
    others = {k: type(v).__name__ for k, v in obj.items()
              if not isinstance(k, str) or not isinstance(v, torch.Tensor)}
    if others:
        nested = [k for k, v in obj.items() if isinstance(v, dict)]
        hint = (
            f" If the weights are under {nested[0]!r}, save that dictionary alone."
            if nested else ""
        )
        raise CorruptFileError(
            f"{path}: is a dictionary but not a plain tensor dictionary (a training "
            f"checkpoint?); parity reads a module's state_dict().{hint} Received: "
            f"non-tensor entries {dict(list(others.items())[:5])}"
        )
    # Sparse (or other non-strided) tensors have no dense layout to transpose or save.
    layouts = {k: str(v.layout) for k, v in obj.items() if v.layout != torch.strided}
    if layouts:
        raise CorruptFileError(
            f"{path}: holds tensors that are not dense; parity reads a module's "
            f"state_dict() of dense tensors (call .to_dense() on them first). Received: "
            f"{dict(list(layouts.items())[:5])}"
        )
    return obj


def read_torch_pickle(path):
    """`{name: tensor}` from a `.pt`/`.pth` file; nothing in it is executed."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        unsafe = _UNSAFE_GLOBAL.search(str(error))
        if unsafe:
            raise CorruptFileError(
                f"{path}: refused to load: its pickle needs {unsafe[1]}, which loading "
                f"weights only does not allow (a pickled module or object, or code "
                f"that would run on load). Save model.state_dict() instead. Received: "
                f"GLOBAL {unsafe[1]}"
            ) from None
        raise CorruptFileError(
            f"{path}: not a readable PyTorch file (truncated or corrupt, or a pickle "
            f"weights-only loading cannot read). Received: {_unpickling_reason(error)}"
        ) from None
    except Exception as error:  # torch raises RuntimeError, EOFError, KeyError, ...
        raise CorruptFileError(
            f"{path}: not a readable PyTorch file (truncated or corrupt). Received: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None
    return dict(_check_tensor_dict(obj, path))


def write_torch_pickle(checkpoint, path):
    torch.save({k: as_tensor(v) for k, v in checkpoint.state_dict.items()}, path)


# --------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------

# safetensors stores tensors sorted by name; parity records the module order here.
ORDER_METADATA_KEY = "parity.key_order"


def read_safetensors(path):
    """`({name: tensor}, ordered)`: in the recorded module order when parity wrote the file."""
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as error:  # SafetensorError, OSError
        raise CorruptFileError(
            f"{path}: not a readable safetensors file (truncated or corrupt). "
            f"Received: {type(error).__name__}: {_first_line(error)}"
        ) from None
    try:
        order = json.loads(metadata.get(ORDER_METADATA_KEY, "null"))
    except json.JSONDecodeError:
        order = None
    if isinstance(order, list) and sorted(order) == sorted(tensors):
        return {key: tensors[key] for key in order}, True
    return tensors, False


def write_safetensors(checkpoint, path):
    # `clone()`: safetensors refuses tensors sharing memory (tied weights).
    tensors = {k: as_tensor(v).clone() for k, v in checkpoint.state_dict.items()}
    metadata = {"format": "pt", ORDER_METADATA_KEY: json.dumps(list(tensors))}
    safetensors.torch.save_file(tensors, path, metadata=metadata)


# --------------------------------------------------------------------------
# Layer order when the file does not record it
# --------------------------------------------------------------------------


def _sizes(spec):
    """`(input size or None for indices, output size)` of a layer."""
    if isinstance(spec, recurrent.RecurrentSpec):
        return spec.input_size, spec.hidden_size * spec.num_directions
    if spec.kind == "embedding":
        return None, spec.output_size
    return spec.input_size, spec.output_size


def order_by_sizes(layers):
    """Orders `[(prefix, spec)]` into a chain where each layer takes the last one's output.

    For files that do not record the order of their layers (a Keras
    `.weights.h5` sorts them by type name, safetensors by key). Starts from
    an Embedding, else from the first layer nothing else feeds; then takes,
    each time, the first remaining layer whose input size is the current
    output size; when none fits, the first remaining one.

    Returns:
        `(ordered layers, chained)`, `chained` False when some step had no fit.
    """
    remaining = list(layers)
    if len(remaining) < 2:
        return remaining, True
    outputs = [_sizes(spec)[1] for _, spec in remaining]
    embeddings = [item for item in remaining if _sizes(item[1])[0] is None]
    unfed = [item for i, item in enumerate(remaining)
             if _sizes(item[1])[0] not in outputs[:i] + outputs[i + 1:]]
    start = (embeddings or unfed or remaining)[0]
    ordered, chained = [start], True
    remaining.remove(start)
    while remaining:
        current = _sizes(ordered[-1][1])[1]
        fits = [item for item in remaining if _sizes(item[1])[0] == current]
        chained = chained and bool(fits)
        ordered.append((fits or remaining)[0])
        remaining.remove(ordered[-1])
    return ordered, chained


# --------------------------------------------------------------------------
# Keras layers read from HDF5 (both layouts), converted to PyTorch names
# --------------------------------------------------------------------------


@dataclasses.dataclass
class KerasWeights:
    """One Keras layer (or stack) read from a file: its spec and Keras-keyed arrays.

    `arrays` uses `parity`'s Keras keys: `kernel_l0_reverse`, `bias_l1`, ...
    for recurrent layers (as `recurrent.keras_to_torch_arrays` takes them),
    `kernel`/`bias`/`embeddings` for Dense and Embedding.
    """

    name: str
    spec: object
    arrays: dict


@dataclasses.dataclass
class _RecurrentRead:
    """A recurrent layer or `Bidirectional` before it is merged into a stack."""

    name: str
    # [(reverse, fields from keras_recurrent_slot, {kernel, recurrent_kernel, bias})]
    directions: list
    where: str
    # The SimpleRNN activation when the file records it (a Keras 2 model config).
    activation: str = None
    # A bare Keras cell (`SimpleRNNCell`, `LSTMCell`, `GRUCell`), not a layer.
    cell: bool = False


@dataclasses.dataclass
class _NestedModel:
    """A model inside a model (the `TorchRNN` parity writes): converts only as one stack."""

    name: str
    units: list
    where: str


def _recurrent_stack(name, units, activation, where):
    """Merges `_RecurrentRead` units (in order) into one `KerasWeights` stack."""
    slots, arrays, dtypes = [], {}, []
    cell = len(units) == 1 and units[0].cell
    for layer, unit in enumerate(units):
        layer = None if cell else layer
        for reverse, fields, weights in unit.directions:
            slots.append((layer, reverse, fields))
            for weight, array in weights.items():
                arrays[recurrent.keras_weight_key(weight, layer, reverse)] = array
                dtypes.append(array.dtype)
    spec = infer.keras_recurrent_spec(slots, activation, dtypes, where, cell=cell)
    return KerasWeights(name, spec, arrays)


def _one_stack(units, activation, where):
    """`KerasWeights` when every unit is recurrent and they form one PyTorch module, else None."""
    if not units or not all(isinstance(u, _RecurrentRead) for u in units):
        return None
    if any(u.cell for u in units) and len(units) > 1:
        return None
    try:
        return _recurrent_stack("", units, activation, where)
    except ConversionError:
        return None


def _resolve_units(units, activation, where):
    """`[KerasWeights]` for a model's top-level units, or one stack with name `""`."""
    stack = _one_stack(units, activation, where)
    if stack is not None:
        return [stack]
    resolved = []
    for unit in units:
        if isinstance(unit, _RecurrentRead):
            resolved.append(_recurrent_stack(unit.name, [unit], activation, unit.where))
        elif isinstance(unit, _NestedModel):
            nested = _one_stack(unit.units, activation, unit.where)
            if nested is None:
                raise ConversionError(
                    f"{unit.where}: a nested model that is not one recurrent stack; "
                    f"parity reads nested models only as the TorchRNN it writes. "
                    f"Received: {[u.name for u in unit.units]}"
                )
            resolved.append(dataclasses.replace(nested, name=unit.name))
        else:
            resolved.append(unit)
    return resolved


def keras_weights_to_torch(layers):
    """`([(prefix, spec)], state_dict)` for `KerasWeights` layers, PyTorch names."""
    named_specs, state_dict = [], {}
    for layer in layers:
        if isinstance(layer.spec, recurrent.RecurrentSpec):
            torch_arrays = recurrent.keras_to_torch_arrays(layer.spec, layer.arrays)
        else:
            torch_arrays = PLAIN[layer.spec.kind].keras_to_torch(layer.arrays)
        named_specs.append((layer.name, layer.spec))
        for leaf, array in torch_arrays.items():
            state_dict[infer.join_key(layer.name, leaf)] = np.ascontiguousarray(array)
    return named_specs, state_dict


# -- Keras 3 `.weights.h5` ----------------------------------------------------

# Keras 3 names each layer's group after its class: `dense`, `dense_1`, `simple_rnn`, ...
_KERAS_AUTO_NAME = re.compile(r"(?P<cls>[a-z][a-z0-9_]*?)(?:_\d+)?")
_PLAIN_CLASS_NAMES = {"dense": "dense", "embedding": "embedding"}
_CELL_CLASS_NAMES = {"simple_rnn_cell", "lstm_cell", "gru_cell"}


def _h5_vars(group):
    """The datasets of `group/vars` in Keras's numeric order."""
    if "vars" not in group:
        return []
    variables = group["vars"]
    return [variables[k] for k in sorted(variables.keys(), key=_natural_key)
            if isinstance(variables[k], h5py.Dataset)]


def _h5_layer_name(group, key):
    """The layer's own name (Keras 3.x writes it on `vars`), else its group name."""
    name = group["vars"].attrs.get("name") if "vars" in group else None
    if isinstance(name, bytes):
        name = name.decode("utf8")
    return str(name) if name else key


def _is_cell_variables(variables):
    """Kernel and recurrent kernel, both 2-D with the same gate columns (plus a bias)."""
    return (len(variables) in (2, 3) and len(variables[0].shape) == 2
            and len(variables[1].shape) == 2 and variables[0].shape[1] == variables[1].shape[1])


def _keras3_cell(group, where):
    variables = _h5_vars(group)
    if len(variables) not in (2, 3):
        raise ConversionError(
            f"{where}: a recurrent cell holds kernel, recurrent_kernel and optionally "
            f"bias. Received: {len(variables)} variable(s) {[_shape(v) for v in variables]}"
        )
    weights = {"kernel": variables[0][()], "recurrent_kernel": variables[1][()]}
    if len(variables) == 3:
        weights["bias"] = variables[2][()]
    fields = infer.keras_recurrent_slot(
        weights["kernel"].shape, weights["recurrent_kernel"].shape,
        weights["bias"].shape if "bias" in weights else None, where,
    )
    return fields, weights


def _keras3_unit(group, key, path, options):
    """One entry of a Keras 3 weights file -> `_RecurrentRead`, `KerasWeights`,
    `_NestedModel`, or `None` for a weightless layer."""
    name = _h5_layer_name(group, key)
    where = f"{path}: layer {name!r} ({group.name})"
    children = set(group.keys())
    if "layers" in children:
        if _h5_vars(group):
            raise ConversionError(
                f"{where}: a model with variables of its own (a subclassed model?); "
                f"parity reads models made of layers. Received: "
                f"{[_shape(v) for v in _h5_vars(group)]}"
            )
        return _NestedModel(name, _keras3_units(group["layers"], path, options), where)
    if {"forward_layer", "backward_layer"} <= children:
        directions = [
            (reverse, *_keras3_cell(group[side]["cell"], f"{where} {side}"))
            for reverse, side in ((False, "forward_layer"), (True, "backward_layer"))
        ]
        return _RecurrentRead(name, directions, where)
    if "cell" in children:
        return _RecurrentRead(name, [(False, *_keras3_cell(group["cell"], where))], where)
    unexpected = children - {"vars"}
    variables = _h5_vars(group)
    auto = _KERAS_AUTO_NAME.fullmatch(key or name)
    class_name = auto["cls"] if auto else None
    # A bare cell (saved on its own) holds its three variables directly in `vars`.
    if (not unexpected and _is_cell_variables(variables)
            and (key == "" or class_name in _CELL_CLASS_NAMES)):
        return _RecurrentRead(name, [(False, *_keras3_cell(group, where))], where, cell=True)
    if unexpected:
        raise ConversionError(
            f"{where}: holds sub-objects parity does not read ({sorted(unexpected)}); "
            f"supported: SimpleRNN, LSTM, GRU, Bidirectional, Dense, Embedding and "
            f"weightless layers. Received: {sorted(children)}"
        )
    if not variables:
        return None
    shapes = [_shape(v) for v in variables]
    dtypes = [v.dtype for v in variables]
    kind = _PLAIN_CLASS_NAMES.get(class_name)
    if key == "":  # a bare layer has no class-named group: the options, then its name
        if "" in options["embedding"] or "" in options["linear"]:
            kind = "embedding" if "" in options["embedding"] else "dense"
        elif kind is None and len(shapes) == 2:
            kind = "dense"
        elif kind is None:
            by_name = name if infer.EMBEDDING_NAME.fullmatch(name) else ""
            kind = infer.weight_only_kind(by_name, shapes[0], 0, None)
    if kind is None:
        raise ConversionError(
            f"{where}: a {class_name or 'layer'} layer with variables {shapes}; parity "
            f"converts SimpleRNN, LSTM, GRU, Bidirectional, Dense and Embedding. "
            f"Received: group {key!r}"
        )
    spec = infer.keras_plain_spec(kind, shapes, dtypes, where)
    keys = ("embeddings",) if kind == "embedding" else ("kernel", "bias")
    return KerasWeights(name, spec, {k: v[()] for k, v in zip(keys, variables)})


def _keras3_units(layers_group, path, options):
    units = []
    for key in sorted(layers_group.keys(), key=_natural_key):
        unit = _keras3_unit(layers_group[key], key, path, options)
        if unit is not None:
            units.append(unit)
    return units


def _unit_spec_for_order(unit, options):
    """A spec good enough for `order_by_sizes` (sizes only)."""
    if isinstance(unit, KerasWeights):
        return unit.spec
    if isinstance(unit, _RecurrentRead):
        kind, input_size, units_, _ = unit.directions[0][1]
        return recurrent.RecurrentSpec(kind, input_size, units_,
                                       bidirectional=len(unit.directions) == 2)
    nested = _one_stack(unit.units, options["nonlinearity"], unit.where)
    return nested.spec if nested is not None else None


def _order_units(units, options, notes, path):
    """Keras 3 files sort layers by class name; put them back into a chain."""
    if len(units) < 2:
        return units
    specs = [_unit_spec_for_order(u, options) for u in units]
    if any(s is None for s in specs):
        return units
    # Embedding first, recurrent layers next, Dense last; Keras's numbering within a type.
    rank = {"embedding": 0, "dense": 2}
    indexed = sorted(range(len(units)), key=lambda i: rank.get(specs[i].kind, 1))
    ordered, chained = order_by_sizes([(i, specs[i]) for i in indexed])
    order = [i for i, _ in ordered]
    if order != list(range(len(units))) or not chained:
        notes.append(
            f"{path}: a .weights.h5 file does not record the order of layers of "
            f"different types; ordered by sizes"
            + ("" if chained else " (they do not form one chain)")
            + ": " + ", ".join(units[i].name for i in order)
        )
    return [units[i] for i in order]


def read_keras3_h5(f, path, options, notes):
    """`[KerasWeights]` from an open Keras 3 weights file (also a `.keras`'s inner one)."""
    root_children = set(f.keys())
    if "optimizer" in root_children:
        count = sum(1 for _ in _h5_vars(f["optimizer"]))
        notes.append(f"{path}: optimizer state ({count} variables) is not converted")
    if "layers" in root_children:
        units = _keras3_units(f["layers"], path, options)
        units = _order_units(units, options, notes, path)
    else:
        unit = _keras3_unit(f, "", path, options)
        # A bare layer's weights convert as a bare PyTorch layer's, without a prefix.
        units = [] if unit is None else [dataclasses.replace(unit, name="")]
    if not units:
        raise ConversionError(
            f"{path}: holds no layer weights parity converts. Received: top-level "
            f"groups {sorted(root_children)}"
        )
    return _resolve_units(units, options["nonlinearity"], path)


# -- Keras 2 / tf.keras 2 HDF5 --------------------------------------------------


def _h5_attr_list(group, name):
    """A Keras 2 list attribute, which Keras 2 splits into `name0`, `name1`, ... when long."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def is_keras2_h5(f):
    root = f["model_weights"] if "model_weights" in f else f
    return "layer_names" in root.attrs or "layer_names0" in root.attrs


def _keras2_layer_configs(f):
    """`{layer name: (class_name, config)}` from a full-model file's `model_config` (JSON)."""
    raw = f.attrs.get("model_config")
    if raw is None:
        return {}
    try:
        config = json.loads(raw.decode("utf8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    layers = config.get("config", {})
    layers = layers.get("layers", []) if isinstance(layers, dict) else layers
    return {
        layer.get("config", {}).get("name"): (layer.get("class_name"), layer.get("config", {}))
        for layer in layers if isinstance(layer, dict)
    }


def _keras2_activation(class_config, where):
    """The SimpleRNN activation a full-model file records; refuses what PyTorch lacks."""
    if class_config is None:
        return None
    class_name, config = class_config
    if class_name == "Bidirectional":
        inner = config.get("layer", {})
        class_name, config = inner.get("class_name"), inner.get("config", {})
    checks = {
        "SimpleRNN": {"activation": ("tanh", "relu")},
        "LSTM": {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)},
        "GRU": {"activation": ("tanh",), "recurrent_activation": ("sigmoid",)},
        "Dense": {"activation": ("linear",)},
    }
    for option, supported in checks.get(class_name, {}).items():
        value = config.get(option, supported[0])
        if value not in supported:
            raise ConversionError(
                f"{where}: {class_name} with {option}={value!r} has no PyTorch "
                f"equivalent (supported: {', '.join(map(repr, supported))}). "
                f"Received: {option}={value!r}"
            )
    return config.get("activation") if class_name == "SimpleRNN" else None


def _keras2_unit(group, layer_name, class_config, path, options):
    weight_names = _h5_attr_list(group, "weight_names")
    if not weight_names:
        return None
    where = f"{path}: layer {layer_name!r}"
    for weight_name in weight_names:
        if weight_name not in group:
            raise CorruptFileError(
                f"{where}: lists weight {weight_name!r} but does not hold it "
                f"(truncated file?). Received: weight_names {weight_names}"
            )
    # `lstm/lstm_cell/kernel:0` -> `kernel`
    variables = [(n.split("/")[-1].split(":")[0], group[n]) for n in weight_names]
    basenames = [b for b, _ in variables]
    activation = _keras2_activation(class_config, where)
    if basenames == ["embeddings"] or basenames in (["kernel"], ["kernel", "bias"]):
        kind = "embedding" if basenames == ["embeddings"] else "dense"
        spec = infer.keras_plain_spec(
            kind, [_shape(v) for _, v in variables], [v.dtype for _, v in variables], where
        )
        return KerasWeights(layer_name, spec, {b: v[()] for b, v in variables})
    cells, current = [], None
    for basename, dataset in variables:
        if basename == "kernel":
            current = {}
            cells.append(current)
        if current is None or basename in current:
            current = None
            break
        current[basename] = dataset[()]
    shapes_ok = (current is not None and len(cells) in (1, 2) and all(
        set(c) in ({"kernel", "recurrent_kernel"}, {"kernel", "recurrent_kernel", "bias"})
        for c in cells))
    if not shapes_ok:
        raise ConversionError(
            f"{where}: its weights ({', '.join(weight_names)}) form no layer parity "
            f"converts (SimpleRNN, LSTM, GRU, Bidirectional, Dense, Embedding). "
            f"Received: {[(n, _shape(group[n])) for n in weight_names]}"
        )
    if len(cells) == 2:
        # Bidirectional lists the forward layer's weights, then the backward one's.
        directions = [n.split("/")[1] for n in weight_names if n.count("/") >= 2]
        if directions and not (directions[0].startswith("forward_")
                               and directions[-1].startswith("backward_")):
            raise ConversionError(
                f"{where}: two recurrent cells that are not a Bidirectional's "
                f"forward_/backward_ layers. Received: {weight_names}"
            )
    read = []
    for reverse, weights in zip((False, True), cells):
        fields = infer.keras_recurrent_slot(
            weights["kernel"].shape, weights["recurrent_kernel"].shape,
            weights["bias"].shape if "bias" in weights else None,
            f"{where}{' backward' if reverse else ''}",
        )
        read.append((reverse, fields, weights))
    return _RecurrentRead(layer_name, read, where, activation)


def read_keras2_h5(f, path, options, notes):
    """`[KerasWeights]` from an open Keras 2 HDF5 file (weights-only or full model)."""
    root = f["model_weights"] if "model_weights" in f else f
    configs = _keras2_layer_configs(f)
    units = []
    for layer_name in _h5_attr_list(root, "layer_names"):
        if layer_name not in root:
            raise CorruptFileError(
                f"{path}: lists layer {layer_name!r} but holds no group for it "
                f"(truncated file?). Received: groups {sorted(root.keys())}"
            )
        unit = _keras2_unit(root[layer_name], layer_name, configs.get(layer_name), path, options)
        if unit is not None:
            units.append(unit)
    if not units:
        raise ConversionError(
            f"{path}: a Keras 2 file with no layer weights. Received: layer_names "
            f"{_h5_attr_list(root, 'layer_names')}"
        )
    recorded = {u.activation for u in units if isinstance(u, _RecurrentRead)}
    recorded.discard(None)
    activation = options["nonlinearity"]
    if recorded:
        if options["nonlinearity_given"] and recorded != {options["nonlinearity"]}:
            raise ConversionError(
                f"{path}: records the SimpleRNN activation {sorted(recorded)}; "
                f"--nonlinearity {options['nonlinearity']} contradicts it. Received: "
                f"nonlinearity={options['nonlinearity']!r}"
            )
        if len(recorded) > 1:
            raise ConversionError(
                f"{path}: SimpleRNN layers with different activations are not "
                f"supported. Received: {sorted(recorded)}"
            )
        activation = recorded.pop()
    return _resolve_units(units, activation, path)


# -- HDF5: which layout ------------------------------------------------------------


def _open_h5(source, path):
    try:
        return h5py.File(source, "r")
    except Exception as error:  # OSError for a truncated file or a non-HDF5 one
        raise CorruptFileError(
            f"{path}: not a readable HDF5 file (truncated or corrupt). Received: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None


def _h5_entries(f, skip=("optimizer",)):
    entries = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/")[0] not in skip:
            entries.append(Entry(name, _shape(obj), dtype_name(obj.dtype)))

    f.visititems(visit)
    return entries


def _read_h5(source, path, options):
    """`(format name, entries, [KerasWeights], notes)` for an HDF5 file of either layout."""
    notes = []
    with _open_h5(source, path) as f:
        entries = _h5_entries(f)
        try:
            if is_keras2_h5(f):
                return "keras2-h5", entries, read_keras2_h5(f, path, options, notes), notes
            return "weights.h5", entries, read_keras3_h5(f, path, options, notes), notes
        except (OSError, KeyError) as error:  # h5py on a damaged dataset
            raise CorruptFileError(
                f"{path}: a damaged HDF5 file. Received: {type(error).__name__}: "
                f"{_first_line(error)}"
            ) from None


def write_keras_weights(checkpoint, path):
    keras.saving.save_weights(keras_object(checkpoint), path)


# --------------------------------------------------------------------------
# .keras archives
# --------------------------------------------------------------------------


def _find_class_names(config, wanted):
    """Every `class_name` in `wanted` anywhere in a Keras config tree."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") in wanted:
            found.append(config.get("config", {}).get("name", config["class_name"]))
        for value in config.values():
            found.extend(_find_class_names(value, wanted))
    elif isinstance(config, list):
        for value in config:
            found.extend(_find_class_names(value, wanted))
    return found


def _open_keras_archive(path):
    """`(config, weights bytes)` from a `.keras` zip, checked before Keras loads it."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except KeyError as error:
        raise CorruptFileError(
            f"{path}: a zip without the parts of a .keras archive. Received: "
            f"missing {error}"
        ) from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise CorruptFileError(
            f"{path}: not a readable .keras archive (truncated or corrupt). Received: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None
    lambdas = _find_class_names(config, ("Lambda",))
    if lambdas:
        raise CorruptFileError(
            f"{path}: refused to load: a Lambda layer ({', '.join(map(repr, lambdas))}) "
            f"holds Python code that would run on load, and parity loads .keras files "
            f"with safe_mode=True only. Received: class_name='Lambda'"
        )
    return config, weights


def _load_keras_model(path):
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise CorruptFileError(
            f"{path}: not a readable .keras archive (truncated or corrupt). Received: "
            f"{type(error).__name__}: {_first_line(error)}"
        ) from None
    except Exception as error:  # Keras raises ValueError / TypeError for what it cannot build
        if "safe_mode" in str(error):
            raise CorruptFileError(
                f"{path}: refused to load: it needs safe_mode=False (Python code "
                f"in the file). Received: {_first_line(error)}"
            ) from None
        raise ConversionError(
            f"{path}: Keras cannot rebuild the model it holds (a custom layer?). "
            f"Received: {type(error).__name__}: {_first_line(error)}"
        ) from None


def torch_layers(module):
    """`[(prefix, spec)]` of a torch module: a layer, or an `nn.Sequential` of them."""
    from parity.convert import torch_side
    from parity.registry import lookup_type

    if lookup_type(module) is not None:
        return [("", torch_side(module).spec)]
    return [(name, torch_side(child).spec) for name, child in module.named_children()
            if lookup_type(child) is not None]


def _read_keras_archive(path, options):
    import parity

    _, weights = _open_keras_archive(path)
    with _open_h5(_bytes_io.BytesIO(weights), f"{path} (model.weights.h5)") as f:
        entries = _h5_entries(f)
    model = _load_keras_model(path)
    module = parity.to_torch(model)
    layers = torch_layers(module)
    state_dict = {k: v.detach().clone() for k, v in module.state_dict().items()}
    if options["nonlinearity_given"]:
        recorded = {spec.activation for _, spec in layers if getattr(spec, "kind", "") == "rnn"}
        if recorded and recorded != {options["nonlinearity"]}:
            raise ConversionError(
                f"{path}: records the SimpleRNN activation {sorted(recorded)}; "
                f"--nonlinearity {options['nonlinearity']} contradicts it. Received: "
                f"nonlinearity={options['nonlinearity']!r}"
            )
    return entries, layers, state_dict, model


def write_keras_archive(checkpoint, path):
    keras.saving.save_model(keras_object(checkpoint), path)


# --------------------------------------------------------------------------
# The format table
# --------------------------------------------------------------------------


def _read_torch_format(path, options, fmt):
    if fmt.name == "safetensors":
        state_dict, ordered = read_safetensors(path)
    else:
        state_dict, ordered = read_torch_pickle(path), True
    entries = _entries(state_dict)
    notes = []
    state_dict = _select_prefix(state_dict, options["prefix"], path)
    layers = infer.infer_layers(
        state_dict, nonlinearity=options["nonlinearity"], embedding=options["embedding"],
        linear=options["linear"], source=path,
    )
    if not ordered and len(layers) > 1:
        layers, chained = order_by_sizes(layers)
        notes.append(
            f"{path}: safetensors sorts tensors by name and this file does not record "
            f"the module order; ordered by sizes"
            + ("" if chained else " (they do not form one chain)")
            + ": " + ", ".join(infer.describe_prefix(p) for p, _ in layers)
        )
        groups = dict(infer.group_by_prefix(state_dict))
        state_dict = {infer.join_key(prefix, leaf): value
                      for prefix, _ in layers for leaf, value in groups[prefix].items()}
    return Checkpoint(path, fmt, entries, layers, state_dict, notes=notes)


def _read_keras_format(path, options, fmt):
    if fmt.name == "keras":
        entries, layers, state_dict, model = _read_keras_archive(path, options)
        checkpoint = Checkpoint(path, fmt, entries, layers, state_dict, keras_object=model)
    else:
        name, entries, keras_layers, notes = _read_h5(path, path, options)
        layers, state_dict = keras_weights_to_torch(keras_layers)
        checkpoint = Checkpoint(path, FORMATS[name], entries, layers, state_dict, notes=notes)
    if options["prefix"] is not None:
        checkpoint = _select_checkpoint_prefix(checkpoint, options["prefix"])
    _check_recorded_kinds(checkpoint, options)
    return checkpoint


def _check_recorded_kinds(checkpoint, options):
    """`embedding=`/`linear=` must agree with the layer types a Keras file records."""
    kinds = dict(checkpoint.layers)
    for flag, kind in (("embedding", "embedding"), ("linear", "dense")):
        for prefix in options[flag]:
            found = kinds.get(prefix)
            if getattr(found, "kind", None) != kind:
                raise ConversionError(
                    f"{checkpoint.path}: --{flag} {prefix!r} names "
                    + (f"a layer the file records as {found}" if found is not None
                       else "no layer of the file")
                    + f" (its layers: {', '.join(infer.describe_prefix(p) for p in kinds)}). "
                    f"Received: {flag}={list(options[flag])}"
                )


FORMATS = {
    fmt.name: fmt
    for fmt in (
        Format("pt", (".pt", ".pth"), "torch", "PyTorch state_dict (pickle, weights only)",
               _read_torch_format, write_torch_pickle),
        Format("safetensors", (".safetensors",), "torch", "safetensors (PyTorch names)",
               _read_torch_format, write_safetensors),
        Format("keras", (".keras",), "keras", "Keras 3 model archive",
               _read_keras_format, write_keras_archive),
        Format("weights.h5", (".weights.h5",), "keras", "Keras 3 weights (HDF5)",
               _read_keras_format, write_keras_weights),
        Format("keras2-h5", (".h5", ".hdf5"), "keras", "Keras 2 / tf.keras 2 HDF5 weights",
               _read_keras_format, None),
    )
}


def supported_suffixes(writable=False):
    return [s for fmt in FORMATS.values() if fmt.writer or not writable for s in fmt.suffixes]


def format_of(path, writing=False):
    """The `Format` for `path`'s suffix (`.weights.h5` before `.h5`)."""
    name = os.path.basename(str(path)).lower()
    matches = [fmt for fmt in FORMATS.values() for s in fmt.suffixes if name.endswith(s)]
    # The longest suffix wins: `x.weights.h5` is Keras 3 weights, not a Keras 2 `.h5`.
    matches.sort(key=lambda fmt: -max(len(s) for s in fmt.suffixes if name.endswith(s)))
    if not matches:
        raise FileError(
            f"{path}: unknown checkpoint format (supported suffixes: "
            f"{', '.join(supported_suffixes())}). Received: {os.path.basename(str(path))!r}"
        )
    fmt = matches[0]
    if writing and fmt.writer is None:
        raise FileError(
            f"{path}: {fmt.description} files are read, not written; write Keras "
            f"weights to a name ending in .weights.h5, or a .keras archive. Received: "
            f"{os.path.basename(str(path))!r}"
        )
    return fmt


# --------------------------------------------------------------------------
# --prefix: one part of a file
# --------------------------------------------------------------------------


def _normalise_prefix(prefix):
    return prefix[:-1] if prefix.endswith(".") else prefix


def _select_prefix(state_dict, prefix, path):
    """The keys under `prefix.` with `prefix.` removed (`None`: all of them)."""
    if prefix is None:
        return state_dict
    base = _normalise_prefix(prefix)
    selected = {k[len(base) + 1:]: v for k, v in state_dict.items() if k.startswith(base + ".")}
    if not selected:
        prefixes = sorted({infer.split_key(k)[0] for k in state_dict})
        raise ConversionError(
            f"{path}: no weight is under {base + '.'!r} (its layer prefixes: "
            f"{', '.join(infer.describe_prefix(p) for p in prefixes)}). Received: "
            f"prefix={prefix!r}"
        )
    return selected


def _select_checkpoint_prefix(checkpoint, prefix):
    base = _normalise_prefix(prefix)
    state_dict = _select_prefix(checkpoint.state_dict, prefix, checkpoint.path)
    layers = [
        (p[len(base) + 1:] if p != base else "", spec)
        for p, spec in checkpoint.layers
        if p == base or p.startswith(base + ".")
    ]
    # Keys of the selected layers only; a `.keras` model no longer matches the selection.
    return dataclasses.replace(checkpoint, layers=layers, state_dict=state_dict,
                               keras_object=None)


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def read(path, nonlinearity=None, embedding=(), linear=(), prefix=None):
    """Reads a checkpoint file of any supported format.

    Args:
        path: the file; its suffix gives the format.
        nonlinearity: `"tanh"` (default) or `"relu"`, the RNN activation for
            files that do not record it (PyTorch files, `.weights.h5`, Keras 2
            weights without a model config); an error when it contradicts a
            file that records it.
        embedding, linear: prefixes whose lone 2-D `weight` is an Embedding /
            a bias-free Linear (`parity.infer.weight_only_kind`); `""` names a
            bare layer.
        prefix: read only the layers under this module prefix (`"rnn."`),
            with the prefix removed.

    Returns:
        A `Checkpoint`.

    Raises:
        FileError: missing file, unknown suffix.
        CorruptFileError: truncated, corrupt or unsafe file; a pickle that is
            not a plain tensor dictionary.
        ConversionError: the weights form no supported layer.
    """
    path = str(path)
    fmt = format_of(path)
    if not os.path.isfile(path):
        raise FileError(f"{path}: no such file. Received: {path!r}")
    options = {
        "nonlinearity": infer.check_nonlinearity(nonlinearity or "tanh"),
        "nonlinearity_given": nonlinearity is not None,
        "embedding": tuple(embedding),
        "linear": tuple(linear),
        "prefix": prefix,
    }
    return fmt.reader(path, options, fmt)


def list_entries(path):
    """Every weight in `path` as the file stores it, without inferring any layer.

    Raises the same `FileError` / `CorruptFileError` as `read`.
    """
    path = str(path)
    fmt = format_of(path)
    if not os.path.isfile(path):
        raise FileError(f"{path}: no such file. Received: {path!r}")
    if fmt.name == "pt":
        return _entries(read_torch_pickle(path))
    if fmt.name == "safetensors":
        return _entries(read_safetensors(path)[0])
    if fmt.name == "keras":
        _, weights = _open_keras_archive(path)
        source, label = _bytes_io.BytesIO(weights), f"{path} (model.weights.h5)"
    else:
        source, label = path, path
    with _open_h5(source, label) as f:
        return _h5_entries(f)


def torch_object(checkpoint, structure=None):
    """A torch module holding the checkpoint's weights.

    Args:
        checkpoint: a `Checkpoint`.
        structure: a fresh torch module to load the weights into (e.g.
            `parity.to_torch` of a `.keras` file's model, which knows what a
            state_dict does not: `return_sequences`, activations between
            layers). `None` builds one from `checkpoint.layers`: a single
            layer with prefix `""` -> that layer (`batch_first=True`);
            anything else -> `parity.models.torch_model_from_specs`, an
            `nn.Sequential` whose keys are the prefixes.

    Raises:
        ConversionError: the weights do not fit the module, key for key.
    """
    module = structure if structure is not None else _build_torch(checkpoint)
    tensors = {k: as_tensor(v) for k, v in checkpoint.state_dict.items()}
    expected = module.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [f"{k}: expected {tuple(expected[k].shape)} {dtype_name(expected[k].dtype)}, "
                 f"received {tuple(t.shape)} {dtype_name(t.dtype)}"
                 for k, t in tensors.items() if k in expected
                 and (tuple(t.shape) != tuple(expected[k].shape) or t.dtype != expected[k].dtype)]
    if problems:
        raise ConversionError(
            f"{checkpoint.path}: its weights do not fit {type(module).__name__}:\n  "
            + "\n  ".join(problems)
            + f"\nReceived: {len(problems)} problem(s), first: {problems[0]}"
        )
    module.load_state_dict(tensors, strict=True)
    return module.eval()


def _build_torch(checkpoint):
    from parity import models

    layers = checkpoint.layers
    nested = [prefix for prefix, _ in layers if "." in prefix]
    if nested:
        raise ConversionError(
            f"{checkpoint.path}: layers under nested module prefixes cannot be built as "
            f"one nn.Sequential (a child name cannot contain '.'); convert one part at "
            f"a time with --prefix (prefix= in Python), e.g. --prefix {nested[0]}. "
            f"Received: prefixes {[p for p, _ in layers]}"
        )
    if len(layers) == 1 and layers[0][0] == "":
        spec = layers[0][1]
        # Every weight is then loaded (load_state_dict, strict): no initialisation.
        if isinstance(spec, recurrent.RecurrentSpec):
            return recurrent.build_torch(spec, initialize=False)
        return PLAIN[spec.kind].build_torch(spec, initialize=False)
    return models.torch_model_from_specs(layers)


def keras_object(checkpoint):
    """The Keras object for the checkpoint: the `.keras` file's own model, or
    `parity.to_keras` of `torch_object(checkpoint)`."""
    import parity

    if checkpoint.keras_object is not None:
        return checkpoint.keras_object
    return parity.to_keras(torch_object(checkpoint))


def describe_keras(obj):
    """`LSTM 'lstm'`, or `Sequential 'x' [Embedding 'emb', LSTM 'rnn', Dense 'fc']`."""
    label = f"{type(obj).__name__} {obj.name!r}"
    if isinstance(obj, keras.Sequential):
        label += " [" + ", ".join(f"{type(l).__name__} {l.name!r}" for l in obj.layers) + "]"
    return label


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_path(path, suffix):
    """A hidden sibling of `path` ending in `suffix` (Keras checks the suffix)."""
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.{secrets.token_hex(4)}.partial{suffix}")


def write(checkpoint, path):
    """Writes `checkpoint` to `path` in the format its suffix names, atomically.

    The file is written under a temporary name in the same directory and
    renamed over `path` only when complete; on any error the temporary file
    is removed and `path` is left as it was.

    Returns:
        What was written, in words (for the command line).
    """
    path = str(path)
    fmt = format_of(path, writing=True)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileError(f"{path}: the directory {directory} does not exist. Received: {path!r}")
    if os.path.isdir(path):
        raise FileError(f"{path}: is a directory. Received: {path!r}")
    suffix = next(s for s in sorted(fmt.suffixes, key=len, reverse=True)
                  if path.lower().endswith(s))
    built = None
    if fmt.framework == "keras":
        built = keras_object(checkpoint)
        checkpoint = dataclasses.replace(checkpoint, keras_object=built)
    temporary = temporary_path(path, suffix)
    try:
        # Claimed first, with Python's own OSError: torch and safetensors report an
        # unwritable directory as RuntimeError / SafetensorError.
        open(temporary, "xb").close()
        fmt.writer(checkpoint, temporary)
        # Some writers (safetensors) create 0600 files; give the usual permissions.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        raise FileError(
            f"{path}: cannot be written. Received: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    if built is not None:
        return f"{fmt.description}: {describe_keras(built)}"
    return f"{fmt.description}: {len(checkpoint.state_dict)} tensors"
