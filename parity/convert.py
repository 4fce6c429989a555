"""`to_keras`, `to_torch` and `copy_weights`: one path for every layer type.

Each object is read as a `Side`: its spec (the architecture, in PyTorch's
terms), its writable weights by key, and the function that maps its arrays
into the other framework's keys and layouts. A copy checks the two specs,
maps the arrays, validates every key, shape and dtype, and only then writes.
"""

import concurrent.futures
import dataclasses
from typing import Callable

import keras
import numpy as np
import torch

from parity import recurrent
from parity.errors import ConversionError
from parity.plan import check_plan, is_keras, is_torch, write_plan
from parity.torch_modules import StatefulRNN
from parity.registry import PLAIN, PLAIN_TYPES, RECURRENT_TYPES, lookup_type


@dataclasses.dataclass
class Side:
    """One side of a conversion.

    Attributes:
        framework: `"torch"` or `"keras"`.
        label: how errors name the object.
        spec: a `RecurrentSpec` or `PlainSpec`.
        targets: `{key: parameter or variable}` in this side's own keys.
        to_other: `{key: array}` of this side -> the other side's keys and layouts.
    """

    framework: str
    label: str
    spec: object
    targets: dict
    to_other: Callable

    def arrays(self, copy=True):
        """`{key: numpy array}` of this side's weights.

        `copy=False` gives read-only views where the framework allows it
        (a copy reads them before it writes, and the transforms build new
        arrays), so that converting a large model does not first duplicate it.
        """
        if copy:
            return {
                key: keras.ops.convert_to_numpy(t).copy() if self.framework == "keras"
                else t.detach().cpu().numpy().copy()
                for key, t in self.targets.items()
            }
        return {key: _read_only_view(t) for key, t in self.targets.items()}

    def mapped_arrays(self):
        """This side's weights in the other side's keys and layouts (`to_other`)."""
        return self.to_other(self.arrays(copy=False))


def _read_only_view(t):
    """A read-only numpy view of a parameter or variable (a copy where none exists)."""
    if isinstance(t, keras.Variable):
        t = t.value  # the backend's own variable or tensor
        if hasattr(t, "read_value"):  # a tf.Variable: the value read shares its buffer
            t = t.read_value()
    if isinstance(t, torch.Tensor):
        array = t.detach().cpu().numpy()
    else:
        array = np.asarray(t)
    view = array.view()
    view.flags.writeable = False
    return view


def _supported_torch_names():
    return ", ".join(sorted(
        f"nn.{cls.__name__}" for cls in [*PLAIN_TYPES, *RECURRENT_TYPES]
        if issubclass(cls, torch.nn.Module)
    ))


def _check_own_shapes(module, spec, label):
    """Refuses a module whose parameters no longer fit its own configuration.

    A parameter replaced after construction (`lstm.bias_ih_l0 = nn.Parameter(...)`)
    keeps `input_size`/`hidden_size` as they were; the weight transforms
    would fail on it with a numpy error, or map it into the wrong place.
    """
    from parity.infer import expected_shapes

    params = dict(module.named_parameters())
    problems = [
        f"{name}: expected shape {shape}, received "
        + (f"{tuple(params[name].shape)}" if name in params else "nothing (missing)")
        for name, shape in expected_shapes(spec).items()
        if name not in params or tuple(params[name].shape) != shape
    ]
    if problems:
        raise ConversionError(
            f"{label} {spec}: its parameters do not fit its own configuration (a "
            f"parameter replaced after construction?); nothing was written:\n  "
            + "\n  ".join(problems)
            + f"\nReceived: {len(problems)} problem(s), first: {problems[0]}"
        )


def torch_side(module):
    if isinstance(module, StatefulRNN):
        module = module.module  # the weights live in the wrapped module
    found = lookup_type(module)
    if found is None or not is_torch(module):
        raise ConversionError(
            f"{type(module).__name__} is not a layer parity converts (supported: "
            f"{_supported_torch_names()}). Received: {type(module).__module__}."
            f"{type(module).__name__}"
        )
    family, role = found
    label = f"nn.{type(module).__name__}"
    if role == "plain":
        spec = family.torch_spec(module)
        _check_own_shapes(module, spec, label)
        return Side("torch", label, spec,
                    dict(module.named_parameters()), family.torch_to_keras)
    spec = recurrent.torch_spec(module)
    _check_own_shapes(module, spec, label)
    return Side(
        "torch", label, spec, recurrent.torch_targets(module),
        lambda arrays: recurrent.torch_to_keras_arrays(spec, arrays),
    )


def keras_side(obj):
    if not is_keras(obj):
        raise ConversionError(
            f"{type(obj).__name__} is not a Keras layer, model or list of layers. "
            f"Received: {type(obj).__module__}.{type(obj).__name__}"
        )
    found = None if isinstance(obj, (list, tuple)) else lookup_type(obj)
    if found is not None and found[1] == "plain":
        module = found[0]
        spec = module.keras_spec(obj)
        return Side("keras", f"{type(obj).__name__} {obj.name!r}", spec,
                    module.keras_targets(obj), module.keras_to_torch)
    structure = recurrent.keras_structure(obj)
    spec = structure.spec
    label = (
        "a list of Keras layers" if isinstance(obj, (list, tuple))
        else f"{type(obj).__name__} {obj.name!r}"
    )
    return Side(
        "keras", label, spec, recurrent.keras_targets(structure),
        lambda arrays: recurrent.keras_to_torch_arrays(spec, arrays),
    )


def side_of(obj):
    """The `Side` of a torch module or a Keras object."""
    if is_torch(obj):
        return torch_side(obj)
    return keras_side(obj)


def _check_architectures(src, dst):
    if type(src.spec) is not type(dst.spec) or src.spec.kind != dst.spec.kind:
        raise ConversionError(
            f"Cannot copy {src.label} into {dst.label}: they are different layer "
            f"types ({src.spec} vs {dst.spec}). Received: source kind "
            f"{src.spec.kind!r}, destination kind {dst.spec.kind!r}"
        )
    differences = [
        f"{field}: source {getattr(src.spec, field)!r}, destination {getattr(dst.spec, field)!r}"
        for field in src.spec.ARCHITECTURE_FIELDS
        if getattr(src.spec, field) != getattr(dst.spec, field)
    ]
    if differences:
        raise ConversionError(
            f"Cannot copy {src.label} into {dst.label}: the architectures differ; "
            f"nothing was written.\n  source:      {src.spec}\n  destination: "
            f"{dst.spec}\n  " + "\n  ".join(differences)
            + f"\nReceived: {'; '.join(differences)}"
        )


def prepare_copy(src, dst):
    """Everything `copy_weights` checks, without writing.

    Returns:
        `(arrays, targets, dst_label)`, validated: `plan.write_plan(arrays,
        targets)` performs the copy.
    """
    return _prepare(side_of(src), side_of(dst))


def _prepare(src_side, dst_side, arrays=None):
    """`prepare_copy` for two `Side`s; `arrays`: the source's, already mapped."""
    if src_side.framework == dst_side.framework:
        raise ConversionError(
            f"copy_weights copies between PyTorch and Keras; both objects are "
            f"{src_side.framework}. Received: {src_side.label} and {dst_side.label}"
        )
    _check_architectures(src_side, dst_side)
    if arrays is None:
        arrays = src_side.mapped_arrays()
    check_plan(arrays, dst_side.targets, dst_side.label)
    return arrays, dst_side.targets, dst_side.label


def copy_weights(src, dst, mapping=None):
    """Copies every weight of `src` into `dst`, between PyTorch and Keras.

    Either direction. The architectures must match (`ConversionError`
    otherwise); every key, shape and dtype is checked before the first
    write, so a failed copy leaves `dst` unchanged.

    Whole models (a torch module that is not itself a supported layer, such
    as the notes' `emb`/`rnn`/`fc` model, and a Keras model) are matched
    layer by layer: weight-bearing layers in order (PyTorch registration
    order, Keras layer order), a PyTorch `num_layers=N` module taking N
    consecutive Keras recurrent layers. `mapping` pairs them explicitly
    where the orders differ; see `parity.models.copy_model_weights`.

    Args:
        src: a torch module or a Keras layer / model / list of layers.
        dst: an object of the other framework, built, with the same architecture.
        mapping: whole models only: `{torch module name: Keras layer name or
            list of names}`.

    Returns:
        `dst`.

    Example:

    >>> lstm = torch.nn.LSTM(3, 5)
    >>> layer = keras.layers.LSTM(5, return_sequences=True, return_state=True)
    >>> layer.build((None, None, 3))
    >>> parity.copy_weights(lstm, layer)
    """
    from parity import models

    if models.is_whole_model(src) or models.is_whole_model(dst):
        return models.copy_model_weights(src, dst, mapping=mapping)
    if mapping is not None:
        raise ConversionError(
            f"mapping= is for whole models; {type(src).__name__} -> "
            f"{type(dst).__name__} is one layer. Received: mapping={mapping!r}"
        )
    arrays, targets, _ = prepare_copy(src, dst)
    write_plan(arrays, targets)
    return dst


def _build(spec, framework):
    # Every weight is overwritten by the copy that follows: no initialisation.
    if isinstance(spec, recurrent.RecurrentSpec):
        module = recurrent
    else:
        module = PLAIN[spec.kind]
    if framework == "keras":
        return module.build_keras(spec, initialize=False)
    return module.build_torch(spec, initialize=False)


def to_keras(torch_module):
    """A new, built Keras object computing what `torch_module` computes.

    - `nn.RNNCell/LSTMCell/GRUCell` -> `SimpleRNNCell/LSTMCell/GRUCell`.
    - one-layer, one-direction `nn.RNN/LSTM/GRU` -> `SimpleRNN/LSTM/GRU` with
      `return_sequences=True, return_state=True` (batch-major input).
    - more layers or `bidirectional=True` -> `TorchRNN`, a Keras model of the
      standard layers returning `[outputs, h_n(, c_n)]` in PyTorch's layout.
    - `nn.Embedding` -> `Embedding`, `nn.Linear` -> `Dense`.

    Example:

    >>> keras_gru = parity.to_keras(torch.nn.GRU(4, 8, batch_first=True))
    >>> outputs, h = keras_gru(np.zeros((2, 5, 4), "float32"))
    """
    from parity import models

    if isinstance(torch_module, torch.nn.Sequential):
        return models.sequential_to_keras(torch_module)
    if isinstance(torch_module, StatefulRNN):
        raise ConversionError(
            "to_keras(StatefulRNN): converting a stateful wrapper back to a Keras "
            "stateful layer is not supported yet; convert `wrapper.module` and build the "
            "Keras layer with stateful=True. Received: StatefulRNN"
        )
    side = torch_side(torch_module)
    # The weight transforms (mostly transposes, in TensorFlow's or PyTorch's
    # kernels, which release the GIL) need nothing from the new layers: they
    # run while Keras builds them, which is Python. A third less time on 2 cores
    # for a large model (docs/performance.md).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(side.mapped_arrays)
        keras_obj = _build(side.spec, "keras")
        arrays = pending.result()
    arrays, targets, _ = _prepare(side, keras_side(keras_obj), arrays)
    write_plan(arrays, targets)
    return keras_obj


def to_torch(keras_obj):
    """A new torch module computing what `keras_obj` computes.

    Keras cells -> torch cells; `SimpleRNN/LSTM/GRU` -> `nn.RNN/LSTM/GRU(batch_first=True)`;
    `Bidirectional(merge_mode="concat")` -> `bidirectional=True`; a stack of
    same-type recurrent layers (`keras.Sequential`, a list, or the `TorchRNN`
    that `to_keras` builds) -> one `num_layers=N` module; `Embedding`,
    `Dense` (linear) -> `nn.Embedding`, `nn.Linear`. The single Keras bias of
    SimpleRNN/LSTM goes into `bias_ih`, zeros into `bias_hh`. A `stateful=True`
    layer or stack gives a `parity.torch_modules.StatefulRNN` wrapper that
    carries the state between calls.

    Example:

    >>> layer = keras.layers.LSTM(8)
    >>> layer.build((None, None, 4))
    >>> torch_lstm = parity.to_torch(layer)   # nn.LSTM(4, 8, batch_first=True)
    """
    from parity import models

    if models.is_whole_model(keras_obj):
        return models.sequential_to_torch(keras_obj)
    side = keras_side(keras_obj)
    module = _build(side.spec, "torch")
    arrays, targets, _ = prepare_copy(keras_obj, module)
    # The module is new: its parameters may take the converted arrays' memory.
    write_plan(arrays, targets, adopt=True)
    if isinstance(side.spec, recurrent.RecurrentSpec) and not side.spec.cell:
        structure = recurrent.keras_structure(keras_obj)
        if structure.stateful:
            return StatefulRNN(module, batch_size=structure.batch_size)
    return module
