"""Shared machinery for the recurrent families (SimpleRNN, LSTM, GRU).

The family modules (`simple_rnn.py`, `lstm.py`, `gru.py`) hold what differs:
gate order, bias layout and the options each side supports. This module
holds what is the same for all three:

- `RecurrentSpec`, the architecture in PyTorch's terms, read off either side;
- the key mapping: which PyTorch name and which Keras variable each weight
  of each (layer, direction) slot has;
- building a fresh object on either side from a spec;
- running either side on the same input, with PyTorch's state layout.
"""

import contextlib
import dataclasses
import warnings

import keras
import numpy as np
import torch

from parity.activations import activation_name
from parity.dtypes import dtype_name, single_dtype
from parity.errors import ConversionError
from parity.naming import (
    KERAS_RECURRENT_WEIGHTS,
    TORCH_RECURRENT_WEIGHTS,
    keras_weight_key,
    slot_label,
    torch_param_name,
)
from parity.registry import RECURRENT, lookup_type
from parity.torch_modules import build_uninitialized



@dataclasses.dataclass(frozen=True)
class RecurrentSpec:
    """A recurrent cell or layer stack, in PyTorch's terms.

    `activation` is the SimpleRNN nonlinearity / the LSTM and GRU cell
    activation, `recurrent_activation` the LSTM and GRU gate activation,
    `reset_after` the GRU variant. PyTorch's own layers compute tanh (or
    relu) / sigmoid / `reset_after=True`; other values need
    `parity.torch_modules.KerasFormulaRNN` on the PyTorch side.
    """

    # Fields that must agree for `copy_weights`; `dropout` has no weights and
    # is only a training-time difference, so it is not compared.
    ARCHITECTURE_FIELDS = ("kind", "cell", "input_size", "hidden_size", "num_layers",
                           "bidirectional", "bias", "activation", "recurrent_activation",
                           "reset_after", "proj_size", "dtype")

    kind: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    bias: bool = True
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    reset_after: bool = True
    proj_size: int = 0
    dropout: float = 0.0
    dtype: str = "float32"
    cell: bool = False

    @property
    def family(self):
        return RECURRENT[self.kind]

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def slots(self):
        """`(layer, reverse)` pairs in PyTorch's order: layer-major, forward first.

        A cell has the single slot `(None, False)`.
        """
        if self.cell:
            return [(None, False)]
        return [
            (layer, reverse)
            for layer in range(self.num_layers)
            for reverse in ((False, True) if self.bidirectional else (False,))
        ]

    def __str__(self):
        name = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[self.kind]
        name += "Cell" if self.cell else ""
        parts = [f"input_size={self.input_size}", f"hidden_size={self.hidden_size}"]
        if not self.cell:
            parts.append(f"num_layers={self.num_layers}")
            parts.append(f"bidirectional={self.bidirectional}")
        parts.append(f"bias={self.bias}")
        if self.kind == "rnn":
            parts.append(f"nonlinearity={self.activation!r}")
        else:
            if self.activation != "tanh":
                parts.append(f"activation={self.activation!r}")
            if self.recurrent_activation != "sigmoid":
                parts.append(f"recurrent_activation={self.recurrent_activation!r}")
            if self.kind == "gru" and not self.reset_after:
                parts.append("reset_after=False")
            if self.proj_size:
                parts.append(f"proj_size={self.proj_size}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        parts.append(self.dtype)
        return f"{name}({', '.join(parts)})"


# --------------------------------------------------------------------------
# PyTorch side
# --------------------------------------------------------------------------


def torch_spec(module):
    """Reads a `RecurrentSpec` off `nn.RNN/LSTM/GRU` or their cells."""
    family, role = lookup_type(module)
    name = type(module).__name__
    dtype = single_dtype([p.dtype for p in module.parameters()], name, ConversionError)
    cell = role == "cell"
    return RecurrentSpec(
        kind=family.KIND,
        input_size=module.input_size,
        hidden_size=module.hidden_size,
        num_layers=1 if cell else module.num_layers,
        bidirectional=False if cell else module.bidirectional,
        bias=module.bias,
        dropout=0.0 if cell else float(module.dropout),
        dtype=dtype,
        cell=cell,
        **family.torch_options(module),
    )


def torch_weight_arrays(module):
    """`{torch name: numpy array}` of a torch module's parameters (a copy)."""
    return {
        name: param.detach().cpu().numpy().copy()
        for name, param in module.named_parameters()
    }


def torch_targets(module):
    """`{torch name: parameter}`, what a copy into `module` writes."""
    return dict(module.named_parameters())


def expected_torch_names(spec):
    names = []
    for layer, reverse in spec.slots():
        for weight in TORCH_RECURRENT_WEIGHTS:
            if weight.startswith("bias") and not spec.bias:
                continue
            if weight == "weight_hr" and not spec.proj_size:
                continue
            names.append(torch_param_name(weight, layer, reverse))
    return names


def build_torch(spec, batch_first=True, initialize=True):
    """A fresh torch module for `spec`; layers are `batch_first=True` like Keras.

    `initialize=False` is for callers that overwrite every weight (`to_torch`):
    the module is built on the meta device and given uninitialised CPU memory,
    so PyTorch's `reset_parameters` is not paid for.
    """
    if not initialize:
        return build_uninitialized(build_torch, spec, batch_first=batch_first)
    family = spec.family
    native = family.torch_native(spec)
    if spec.cell and (not native or spec.proj_size):
        raise ConversionError(
            f"{spec}: no PyTorch cell computes these options; convert the layer "
            f"(parity.torch_modules.KerasFormulaRNN) instead. Received: {spec}"
        )
    if spec.cell:
        module = family.TORCH_CELL(
            spec.input_size, spec.hidden_size, bias=spec.bias, **family.torch_kwargs(spec)
        )
    elif not native:
        if spec.proj_size:
            raise ConversionError(
                f"{spec}: a projected LSTM with Keras-only activations has no PyTorch "
                f"module. Received: proj_size={spec.proj_size}"
            )
        module = family.TORCH_KERAS_FORMULA(
            spec.input_size, spec.hidden_size, num_layers=spec.num_layers, bias=spec.bias,
            batch_first=batch_first, dropout=spec.dropout, bidirectional=spec.bidirectional,
            **family.keras_kwargs(spec),
        )
    else:
        with warnings.catch_warnings():
            # PyTorch warns that dropout does nothing with num_layers=1;
            # the spec came from a source where it did nothing either.
            warnings.simplefilter("ignore", UserWarning)
            module = family.TORCH_LAYER(
                spec.input_size,
                spec.hidden_size,
                num_layers=spec.num_layers,
                bias=spec.bias,
                batch_first=batch_first,
                dropout=spec.dropout,
                bidirectional=spec.bidirectional,
                **family.torch_kwargs(spec),
            )
    return module.to(getattr(torch, spec.dtype))


# --------------------------------------------------------------------------
# Keras side
# --------------------------------------------------------------------------


def _layer_name(obj):
    return f"{type(obj).__name__} {getattr(obj, 'name', '')!r}".strip()


def _keras_role(obj):
    """`"cell"` or `"layer"` for a registered Keras recurrent object, else `None`."""
    found = lookup_type(obj)
    if found is None or not isinstance(obj, keras.layers.Layer) or found[1] == "plain":
        return None
    return found[1]


def _option_checker(where):
    def check(option, value, supported):
        if callable(value) and not isinstance(value, bool):
            value = activation_name(value)
        if value not in supported:
            raise ConversionError(
                f"{where}: {option}={value!r} has no PyTorch equivalent "
                f"(supported: {', '.join(repr(s) for s in supported)}). "
                f"Received: {option}={value!r}"
            )
        return value

    return check


def _check_keras_layer_options(layer, expect_backwards=False):
    where = _layer_name(layer)
    go_backwards = getattr(layer, "go_backwards", False)
    if go_backwards and not expect_backwards:
        raise ConversionError(
            f"{where}: go_backwards=True outside a Bidirectional wrapper has no "
            f"PyTorch equivalent (a reverse-only nn.RNN does not exist). "
            f"Received: go_backwards=True"
        )
    for option in ("dropout", "recurrent_dropout"):
        if getattr(layer.cell, option, 0.0):
            warnings.warn(
                f"{where}: {option}={getattr(layer.cell, option)} is a training-time "
                f"option with no PyTorch equivalent; inference outputs match, "
                f"training does not.",
                stacklevel=3,
            )


def _keras_cell_spec_fields(cell, where):
    """The spec fields a built Keras cell determines, with its family."""
    if _keras_role(cell) != "cell":
        raise ConversionError(
            f"{where}: {type(cell).__name__} is not a SimpleRNNCell, LSTMCell or "
            f"GRUCell. Received: {type(cell).__module__}.{type(cell).__name__}"
        )
    family, _ = lookup_type(cell)
    if not cell.built or getattr(cell, "kernel", None) is None:
        raise ConversionError(
            f"{where}: the layer is not built, so it has no weights to convert; "
            f"call it on an input or `build()` it first. Received: built=False"
        )
    options = family.keras_options(cell, _option_checker(where))
    dtype = single_dtype([v.dtype for v in cell.weights], where, ConversionError)
    if dtype_name(cell.compute_dtype) != dtype:
        raise ConversionError(
            f"{where}: computes in {cell.compute_dtype} with {dtype} weights (a "
            f"mixed-precision policy); PyTorch computes in the weights' dtype. "
            f"Received: dtype_policy={cell.dtype_policy.name!r}"
        )
    fields = {
        "kind": family.KIND,
        "input_size": int(cell.kernel.shape[0]),
        "hidden_size": int(cell.units),
        "bias": bool(cell.use_bias),
        "dtype": dtype,
        **options,
    }
    return family, fields


@dataclasses.dataclass
class KerasRecurrent:
    """A Keras recurrent object as a stack: `units` in order, and its spec.

    `units` holds recurrent layers, `Bidirectional` wrappers and `Dropout`
    layers in call order; `slots` holds `(layer, reverse, cell)` in PyTorch's
    slot order.
    """

    spec: RecurrentSpec
    units: list
    slots: list
    stateful: bool = False
    batch_size: int = None


def stack_units(obj):
    """The ordered layers of a stack-like Keras object."""
    from parity.stacked import TorchRNN

    if isinstance(obj, TorchRNN):
        return obj.stack_layers()
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, keras.Sequential):
        return list(obj.layers)
    return [obj]


def keras_structure(obj):
    """Reads the `RecurrentSpec` and slots of a Keras recurrent object.

    Accepts a cell, a `SimpleRNN`/`LSTM`/`GRU` layer, a `Bidirectional`
    (merge_mode="concat") of one, a `keras.Sequential` or list of such layers
    of one type (with optional `Dropout` between them), or the `TorchRNN`
    model `to_keras` builds.
    """
    from parity.stacked import TorchRNN

    if _keras_role(obj) == "cell":
        _, fields = _keras_cell_spec_fields(obj, _layer_name(obj))
        spec = RecurrentSpec(cell=True, **fields)
        return KerasRecurrent(spec=spec, units=[obj], slots=[(None, False, obj)])

    units = stack_units(obj)
    where = _layer_name(obj) if not isinstance(obj, (list, tuple)) else "layer list"
    recurrent, dropouts, slots, fields, fields_layers = [], [], [], [], []
    for position, unit in enumerate(units):
        if isinstance(unit, keras.layers.Dropout):
            if not recurrent or position == len(units) - 1:
                raise ConversionError(
                    f"{where}: a Dropout layer before the first or after the last "
                    f"recurrent layer has no place in one PyTorch module (PyTorch "
                    f"applies dropout only between stacked layers). Received: "
                    f"{_layer_name(unit)} at position {position}"
                )
            dropouts.append(float(unit.rate))
            continue
        layer_index = len(recurrent)
        if isinstance(unit, keras.layers.Bidirectional):
            if unit.merge_mode != "concat":
                raise ConversionError(
                    f"{_layer_name(unit)}: merge_mode={unit.merge_mode!r}; PyTorch "
                    f"concatenates the two directions. Received: "
                    f"merge_mode={unit.merge_mode!r}"
                )
            directions = [(False, unit.forward_layer), (True, unit.backward_layer)]
            for reverse, layer in directions:
                if _keras_role(layer) != "layer":
                    raise ConversionError(
                        f"{_layer_name(unit)}: wraps {type(layer).__name__}, which "
                        f"is not a SimpleRNN, LSTM or GRU layer. Received: "
                        f"{_layer_name(layer)}"
                    )
                if bool(layer.go_backwards) != reverse:
                    raise ConversionError(
                        f"{_layer_name(unit)}: its {'backward' if reverse else 'forward'} "
                        f"layer has go_backwards={layer.go_backwards}. Received: "
                        f"{_layer_name(layer)}"
                    )
                _check_keras_layer_options(layer, expect_backwards=reverse)
        elif _keras_role(unit) == "layer":
            _check_keras_layer_options(unit)
            directions = [(False, unit)]
        else:
            raise ConversionError(
                f"{where}: {_layer_name(unit)} is not a SimpleRNN, LSTM, GRU, "
                f"Bidirectional or Dropout layer, so the stack is not one PyTorch "
                f"recurrent module. Received: {type(unit).__name__}"
            )
        recurrent.append(unit)
        for reverse, layer in directions:
            fields_layers.append((layer_index, reverse, layer))
            _, f = _keras_cell_spec_fields(layer.cell, _layer_name(layer))
            fields.append((layer_index, reverse, _layer_name(layer), f))
            slots.append((layer_index, reverse, layer.cell))

    if not recurrent:
        raise ConversionError(
            f"{where}: contains no recurrent layer. Received: "
            f"{[type(u).__name__ for u in units]}"
        )
    bidirectional = [isinstance(u, keras.layers.Bidirectional) for u in recurrent]
    if len(set(bidirectional)) != 1:
        raise ConversionError(
            f"{where}: mixes Bidirectional and one-direction layers; one PyTorch "
            f"module is bidirectional in every layer or in none. Received: "
            f"{[_layer_name(u) for u in recurrent]}"
        )
    first = fields[0][3]
    labels = {"kind": "layer type", "hidden_size": "units", "bias": "use_bias"}
    for layer_index, reverse, name, f in fields[1:]:
        for field in first:
            if field == "input_size":
                continue
            label = labels.get(field, field)
            theirs, ours = f[field], first[field]
            if theirs != ours:
                raise ConversionError(
                    f"{where}: {name} ({slot_label(layer_index, reverse)}) has "
                    f"{label} {theirs!r} but the first layer has {ours!r}; one "
                    f"PyTorch module needs the same in every layer. Received: "
                    f"{label}={theirs!r}"
                )
    if len(set(dropouts)) > 1 or (dropouts and len(dropouts) != len(recurrent) - 1):
        raise ConversionError(
            f"{where}: PyTorch applies one dropout rate between every pair of "
            f"stacked layers. Received: Dropout rates {dropouts} between "
            f"{len(recurrent)} recurrent layers"
        )
    dropout = dropouts[0] if dropouts else 0.0
    if isinstance(obj, TorchRNN):
        dropout = float(obj.dropout)
    spec = RecurrentSpec(
        num_layers=len(recurrent), bidirectional=bidirectional[0], dropout=dropout, **first
    )
    stateful_layers = [layer for _, _, layer in fields_layers]
    flags = {bool(getattr(layer, "stateful", False)) for layer in stateful_layers}
    if len(flags) > 1:
        raise ConversionError(
            f"{where}: mixes stateful and stateless layers; one PyTorch module (and its "
            f"StatefulRNN wrapper) carries the state of every layer or of none. Received: "
            f"stateful={[bool(l.stateful) for l in stateful_layers]}"
        )
    stateful = flags == {True}
    batch_size = None
    if stateful:
        batch_size = _stateful_batch_size(stateful_layers[0])
    return KerasRecurrent(spec=spec, units=units, slots=slots, stateful=stateful,
                          batch_size=batch_size)


def _stateful_batch_size(layer):
    """The fixed batch size of a built stateful Keras layer (its state variables')."""
    states = getattr(layer, "states", None) or []
    first = states[0] if states else None
    return int(first.shape[0]) if first is not None else None


def _keras_cell_variables(cell):
    variables = {"kernel": cell.kernel, "recurrent_kernel": cell.recurrent_kernel}
    if cell.use_bias:
        variables["bias"] = cell.bias
    if getattr(cell, "projection_kernel", None) is not None:
        variables["projection_kernel"] = cell.projection_kernel
    return variables


def keras_layer_class(spec):
    """The Keras layer class for `spec` (a family may pick one by option)."""
    pick = getattr(spec.family, "keras_layer_class", None)
    return pick(spec) if pick else spec.family.KERAS_LAYER


def keras_cell_class(spec):
    pick = getattr(spec.family, "keras_cell_class", None)
    return pick(spec) if pick else spec.family.KERAS_CELL


def keras_targets(structure):
    """`{keras key: variable}` in slot order, e.g. `kernel_l1_reverse`."""
    targets = {}
    for layer, reverse, cell in structure.slots:
        for weight, variable in _keras_cell_variables(cell).items():
            targets[keras_weight_key(weight, layer, reverse)] = variable
    return targets


def keras_weight_arrays(structure):
    return {
        key: keras.ops.convert_to_numpy(variable).copy()
        for key, variable in keras_targets(structure).items()
    }


# The initialiser attributes of Keras's recurrent cells.
KERAS_CELL_INITIALIZERS = ("kernel_initializer", "recurrent_initializer", "bias_initializer")


class Unfilled(keras.initializers.Initializer):
    """Memory for a weight that is about to be overwritten, not filled with anything.

    TensorFlow: an uninitialised tensor (`tf.raw_ops.Empty(init=False)`); the
    other backends: `keras.ops.empty` (zeros on JAX). Only for converters,
    which check that every weight has a value before building (`check_plan`)
    and then write all of them.
    """

    def __call__(self, shape, dtype=None):
        dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            return tf.raw_ops.Empty(shape=list(shape), dtype=tf.as_dtype(dtype), init=False)
        return keras.ops.empty(shape, dtype=dtype)


@contextlib.contextmanager
def unfilled(layers, attributes=KERAS_CELL_INITIALIZERS):
    """Builds `layers` with unfilled weights (`Unfilled`), then restores their own initialisers.

    A converter overwrites every weight it builds, so Keras's initialisers
    (the recurrent kernel's `orthogonal` is a QR of every `(units, 4*units)`
    matrix), or even a zero fill (a pass over all the memory), would be paid
    for nothing. The layers' initialiser objects are put back after the
    build: `get_config()`, saving and any later re-initialisation are
    exactly those of a layer built normally.

    Args:
        layers: unbuilt Keras cells (or plain layers), built inside the block.
        attributes: the initialiser attributes to swap where a layer has them.
    """
    saved = [
        (layer, name, getattr(layer, name))
        for layer in layers
        for name in attributes
        if getattr(layer, name, None) is not None
    ]
    for layer, name, _ in saved:
        setattr(layer, name, Unfilled())
    try:
        yield
    finally:
        for layer, name, initializer in saved:
            setattr(layer, name, initializer)


def _unbuilt_cells(obj):
    """The cells of a Keras cell, layer or `TorchRNN`, before it is built."""
    from parity.stacked import TorchRNN

    if isinstance(obj, TorchRNN):
        units = obj.rnn_layers
    else:
        units = [obj]
    cells = []
    for unit in units:
        if isinstance(unit, keras.layers.Bidirectional):
            cells += [unit.forward_layer.cell, unit.backward_layer.cell]
        else:
            cells.append(getattr(unit, "cell", unit))
    return cells


def build_keras(spec, initialize=True):
    """A fresh, built Keras object for `spec`.

    A cell -> the Keras cell; one layer, one direction -> the Keras layer with
    `return_sequences=True, return_state=True`; anything else -> `TorchRNN`.
    `initialize=False` is for callers that overwrite every weight (`to_keras`):
    the weights are left unfilled instead of initialised (see `unfilled`).
    """
    from parity.stacked import TorchRNN

    family = spec.family
    kwargs = dict(use_bias=spec.bias, dtype=spec.dtype, **family.keras_kwargs(spec))
    if spec.cell:
        obj = keras_cell_class(spec)(spec.hidden_size, **kwargs)
        shape = (None, spec.input_size)
    elif spec.num_layers == 1 and not spec.bidirectional:
        obj = keras_layer_class(spec)(
            spec.hidden_size, return_sequences=True, return_state=True, **kwargs
        )
        shape = (None, None, spec.input_size)
    else:
        obj = TorchRNN.from_spec(spec)
        shape = (None, None, spec.input_size)
    with unfilled([] if initialize else _unbuilt_cells(obj)):
        obj.build(shape)
    return obj


# --------------------------------------------------------------------------
# Array conversion (key mapping here, tensor transforms in the families)
# --------------------------------------------------------------------------


def _map_slots(spec, arrays, src_names, src_key, dst_key, transform):
    """Applies a family transform to every slot; keys in, keys out, per slot."""
    mapped = {}
    for layer, reverse in spec.slots():
        slot = {
            name: arrays[src_key(name, layer, reverse)]
            for name in src_names
            if src_key(name, layer, reverse) in arrays
        }
        for name, array in transform(slot).items():
            mapped[dst_key(name, layer, reverse)] = array
    return mapped


def torch_to_keras_arrays(spec, torch_arrays):
    """`{torch name: array}` -> `{keras key: array}` for every slot of `spec`."""
    return _map_slots(spec, torch_arrays, TORCH_RECURRENT_WEIGHTS, torch_param_name,
                      keras_weight_key, lambda w: spec.family.torch_to_keras(w, spec))


def keras_to_torch_arrays(spec, keras_arrays):
    """`{keras key: array}` -> `{torch name: array}` for every slot of `spec`."""
    return _map_slots(spec, keras_arrays, KERAS_RECURRENT_WEIGHTS, keras_weight_key,
                      torch_param_name, lambda w: spec.family.keras_to_torch(w, spec))


# --------------------------------------------------------------------------
# Running both sides in PyTorch's layout
# --------------------------------------------------------------------------


def split_torch_state(spec, initial_state):
    """PyTorch's `h0` or `(h0, c0)` -> a tuple of arrays, one per state."""
    if initial_state is None:
        return None
    states = initial_state if isinstance(initial_state, (tuple, list)) else (initial_state,)
    expected = len(spec.family.STATES)
    if len(states) != expected:
        raise ConversionError(
            f"{spec}: expects {expected} initial state(s) "
            f"({', '.join(spec.family.STATES)}). Received: {len(states)}"
        )
    return tuple(np.asarray(s) for s in states)


def run_stack_layers(units, inputs, states, training=None, mask=None):
    """Runs Keras stack `units` with PyTorch-layout states; returns torch-layout results.

    Args:
        units: recurrent layers / `Bidirectional` wrappers / `Dropout` layers,
            each recurrent one returning sequences and states.
        inputs: batch-major `(batch, time, features)`.
        states: `None` or a tuple of `(num_layers * num_directions, batch, hidden)`
            tensors, one per state (`h`, or `h`, `c`).
        mask: `None` or a boolean `(batch, time)` mask, passed to every layer:
            masked steps are skipped, as PyTorch skips the padding of a
            `PackedSequence`.

    Returns:
        `[outputs, h_n]` or `[outputs, h_n, c_n]`, states stacked like PyTorch's.
    """
    ops = keras.ops
    finals = None
    x = inputs
    slot = 0
    for unit in units:
        if isinstance(unit, keras.layers.Dropout):
            x = unit(x, training=training)
            continue
        directions = 2 if isinstance(unit, keras.layers.Bidirectional) else 1
        initial = None
        if states is not None:
            initial = [s[slot + d] for d in range(directions) for s in states]
        result = unit(x, initial_state=initial, training=training, mask=mask)
        x, unit_states = result[0], result[1:]
        per_direction = len(unit_states) // directions
        if finals is None:
            finals = [[] for _ in range(per_direction)]
        for d in range(directions):
            for i in range(per_direction):
                finals[i].append(unit_states[d * per_direction + i])
        slot += directions
    return [x] + [ops.stack(f, axis=0) for f in finals]
