"""Gradient parity: the same loss, differentiated on both sides, compared weight by weight.

`compare_gradients(torch_obj, keras_obj, x, y, loss)` runs both objects on
`x` (in the torch object's layout, as `parity.compare` takes it), computes
the same scalar loss on each side, differentiates it with respect to every
weight, maps the Keras gradients into PyTorch's names and layouts and
returns a `GradientReport` with the max error per PyTorch weight.

Mapping gradients is not mapping weights. The weight map PyTorch -> Keras is
linear: every Keras element is one PyTorch element (a transpose, a gate
reorder, a GRU bias row) or a sum of two (`bias = b_ih + b_hh`). By the chain
rule each PyTorch element's gradient is then the sum of the gradients of the
Keras elements it feeds — the adjoint of the weight map, not its inverse:
for transposes and reorders the two agree, but the summed bias's gradient
goes to *both* `bias_ih` and `bias_hh`, where the inverse weight map would
put the bias in `bias_ih` and zeros in `bias_hh`. `to_torch_gradients`
derives the adjoint from the family's own `torch_to_keras` transform, so no
gate order or bias rule is written twice.

Keras 3 has no backend-agnostic gradient API: the Keras side is
differentiated with `tf.GradientTape` on the tensorflow backend and with
autograd on the torch backend; the jax backend is not supported yet.
"""

import dataclasses

import keras
import numpy as np
import torch

from parity import models, recurrent
from parity.compare import as_input, with_sequences_and_state
from parity.torch_modules import StatefulRNN
from parity.dtypes import dtype_name
from parity.errors import ConversionError, ParityError
from parity.stacked import TorchRNN
from parity.tolerance import DiffSummary, default_tolerance, diff_arrays, diff_table

LOSSES = ("mse", "sum", "cross_entropy")


# --------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------


@dataclasses.dataclass
class GradientReport(DiffSummary):
    """The gradient of one loss on both sides, compared per PyTorch weight.

    Attributes:
        gradients: `{torch weight name: OutputDiff}` in `named_parameters()`
            order (`weight_ih_l0`, ..., `bias_hh_l1_reverse`; `rnn.weight_ih_l0`
            in a whole model). `actual` is the Keras gradient mapped into
            PyTorch's layout, `expected` the PyTorch gradient.
        loss: the `OutputDiff` of the two loss values.
        atol, rtol: the tolerance the `ok` flags were computed with.
        torch_label, keras_label, loss_label: what was compared.
        torch_gradients: `{torch weight name: array}`, PyTorch's gradients.
        keras_gradients: `{torch weight name: array}`, Keras's gradients
            mapped into PyTorch's layout.
    """

    gradients: dict
    loss: object
    atol: float
    rtol: float
    torch_label: str = ""
    keras_label: str = ""
    loss_label: str = ""
    torch_gradients: dict = dataclasses.field(default_factory=dict, repr=False)
    keras_gradients: dict = dataclasses.field(default_factory=dict, repr=False)

    def __getitem__(self, name):
        return self.gradients[name]

    def _diffs(self):
        return self.gradients.values()

    @property
    def ok(self):
        return self.loss.ok and all(d.ok for d in self.gradients.values())

    @property
    def worst(self):
        """The `OutputDiff` (loss or gradient) that fails worst, else the largest error."""
        pool = [self.loss, *self.gradients.values()]
        failing = [d for d in pool if not d.ok]
        return max(failing or list(self.gradients.values()) or pool,
                   key=lambda d: d.max_abs_error)

    def __str__(self):
        header = (
            f"gradient parity: {self.torch_label} vs {self.keras_label}, "
            f"loss {self.loss_label} (atol={self.atol:g}, rtol={self.rtol:g})"
        )
        lines = [header, *diff_table([self.loss, *self.gradients.values()], "weight")]
        verdict = "PASS" if self.ok else f"FAIL at {self.worst.name}"
        lines.append(
            f"max abs error {self.max_abs_error:.3g}, max rel error "
            f"{self.max_rel_error:.3g}: {verdict}"
        )
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Loss:
    label: str
    torch_fn: object
    keras_fn: object
    needs_target: object  # True, False, or None (a user pair: either)
    integer_target: bool = False


def _mse_torch(result, target):
    return torch.mean(torch.square(result - target))


def _mse_keras(result, target):
    return keras.ops.mean(keras.ops.square(result - target))


def _sum_torch(result, target):
    return torch.sum(result)


def _sum_keras(result, target):
    return keras.ops.sum(result)


def _cross_entropy_torch(result, target):
    classes = result.shape[-1]
    return torch.nn.functional.cross_entropy(result.reshape(-1, classes), target.reshape(-1))


def _cross_entropy_keras(result, target):
    return keras.ops.mean(
        keras.ops.sparse_categorical_crossentropy(target, result, from_logits=True)
    )


_BUILTIN_LOSSES = {
    "mse": _Loss("mse", _mse_torch, _mse_keras, needs_target=True),
    "sum": _Loss("sum", _sum_torch, _sum_keras, needs_target=False),
    "cross_entropy": _Loss("cross_entropy", _cross_entropy_torch, _cross_entropy_keras,
                           needs_target=True, integer_target=True),
}


def _resolve_loss(loss):
    if isinstance(loss, str) and loss in _BUILTIN_LOSSES:
        return _BUILTIN_LOSSES[loss]
    if (isinstance(loss, (tuple, list)) and len(loss) == 2
            and all(callable(f) for f in loss)):
        torch_fn, keras_fn = loss
        label = (f"({getattr(torch_fn, '__name__', 'torch_loss')}, "
                 f"{getattr(keras_fn, '__name__', 'keras_loss')})")
        return _Loss(label, torch_fn, keras_fn, needs_target=None)
    raise ConversionError(
        f"loss must be one of {', '.join(repr(n) for n in LOSSES)} or a pair "
        f"(torch_loss, keras_loss) of callables `fn(result, target) -> scalar`. "
        f"Received: loss={loss!r}"
    )


def _check_target(loss, name, result_shape, target):
    """Raises `ConversionError` when `target` does not fit a built-in loss."""
    if loss.needs_target is None:
        return
    if loss.needs_target and target is None:
        raise ConversionError(
            f"loss={loss.label!r} needs a target for {name!r}. Received: y=None"
        )
    if not loss.needs_target:
        if target is not None:
            raise ConversionError(
                f"loss={loss.label!r} takes no target; pass y=None (or a dict of "
                f"result names to None). Received: a target of shape "
                f"{np.shape(target)} for {name!r}"
            )
        return
    expected = tuple(result_shape[:-1]) if loss.integer_target else tuple(result_shape)
    if tuple(target.shape) != expected:
        raise ConversionError(
            f"loss={loss.label!r}: the target for {name!r} must have shape {expected} "
            f"(the result in the torch object's layout is {tuple(result_shape)}). "
            f"Received: shape={tuple(target.shape)}"
        )
    if loss.integer_target and not np.issubdtype(target.dtype, np.integer):
        raise ConversionError(
            f"loss={loss.label!r} takes integer class targets. "
            f"Received: dtype={target.dtype}"
        )


def _resolve_targets(y, result_names, dtype):
    """`{result name: numpy target or None}`: which results feed the loss."""
    main = result_names[0]
    if isinstance(y, dict):
        unknown = [name for name in y if name not in result_names]
        if unknown or not y:
            raise ConversionError(
                f"y as a dict maps result names ({', '.join(result_names)}) to "
                f"targets. Received: keys {list(y)}"
            )
        targets = dict(y)
    else:
        targets = {main: y}
    resolved = {}
    for name, target in targets.items():
        if target is None:
            resolved[name] = None
            continue
        array = as_input(target, f"y[{name!r}]")
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(dtype)
        elif np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.int64)
        resolved[name] = array
    return resolved


# --------------------------------------------------------------------------
# Keras gradients, per backend
# --------------------------------------------------------------------------


def keras_gradients(loss_fn, variables):
    """Runs `loss_fn()` and differentiates it with respect to `variables`.

    Args:
        loss_fn: a function of no arguments returning a scalar computed with
            `keras.ops` from `variables`.
        variables: the Keras variables to differentiate with respect to.

    Returns:
        `(loss, [gradient])` as numpy; a variable the loss does not reach
        gets a zero gradient.

    Raises:
        NotImplementedError: on a backend other than tensorflow or torch.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            # Watched explicitly so that non-trainable variables count too.
            for variable in variables:
                tape.watch(variable.value)
            loss = loss_fn()
        grads = tape.gradient(
            loss, [v.value for v in variables],
            unconnected_gradients=tf.UnconnectedGradients.ZERO,
        )
        # An Embedding's gradient is IndexedSlices: densify it.
        return float(loss.numpy()), [tf.convert_to_tensor(g).numpy() for g in grads]
    if backend == "torch":
        with torch.enable_grad():
            loss = loss_fn()
            values = [v.value for v in variables]
            grads = torch.autograd.grad(loss, values, allow_unused=True)
        return float(loss.detach().cpu()), [
            np.zeros(tuple(v.shape), dtype_name(v.dtype)) if g is None
            else g.detach().cpu().numpy()
            for v, g in zip(values, grads)
        ]
    raise NotImplementedError(
        f"compare_gradients differentiates the Keras side with tf.GradientTape "
        f"(tensorflow backend) or autograd (torch backend); the {backend!r} backend "
        f"is not supported yet. Received: keras.backend.backend()={backend!r}"
    )


def _torch_gradients(module, loss_fn):
    """`(loss, {name: gradient})` of `loss_fn(params)` on detached copies of the weights.

    The module's own parameters and their `.grad` are left alone.
    """
    params = {
        name: p.detach().clone().requires_grad_(True)
        for name, p in module.named_parameters()
    }
    with torch.enable_grad():
        loss = loss_fn(params)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    return float(loss.detach()), {
        name: np.zeros_like(p.detach().numpy()) if g is None else
        (g.to_dense() if g.is_sparse else g).detach().cpu().numpy()
        for (name, p), g in zip(params.items(), grads)
    }


# --------------------------------------------------------------------------
# Gradients into PyTorch's layout
# --------------------------------------------------------------------------


def to_torch_gradients(torch_to_keras, torch_shapes, keras_grads):
    """Keras gradients -> PyTorch gradients: the adjoint of the weight map.

    Each PyTorch weight is traced through `torch_to_keras` with its elements
    numbered `1..n` and every other weight zero; the numbers show where each
    element lands in the Keras arrays (once for a transpose or gate reorder,
    inside the summed bias for `b_ih` and again for `b_hh`). Its gradient is
    the sum of the Keras gradients at those places.

    Args:
        torch_to_keras: `{torch name: array} -> {keras key: array}`, the
            weight map (a `Side.to_other` of the torch side).
        torch_shapes: `{torch name: shape}`.
        keras_grads: `{keras key: gradient array}`.

    Returns:
        `{torch name: gradient array}`.

    Example:

    >>> side = parity.convert.torch_side(torch.nn.RNN(2, 3))
    >>> shapes = {n: tuple(p.shape) for n, p in side.targets.items()}
    >>> keras_grads = {"kernel_l0": np.ones((2, 3)), "recurrent_kernel_l0": np.ones((3, 3)),
    ...                "bias_l0": np.arange(3.0)}
    >>> to_torch_gradients(side.to_other, shapes, keras_grads)["bias_hh_l0"]
    array([0., 1., 2.])
    """
    zeros = {name: np.zeros(shape) for name, shape in torch_shapes.items()}
    dtype = np.result_type(*[np.asarray(g).dtype for g in keras_grads.values()])
    torch_grads = {}
    for name, shape in torch_shapes.items():
        size = int(np.prod(shape, dtype=np.int64))
        numbered = np.arange(1, size + 1, dtype=np.float64).reshape(shape)
        placed = torch_to_keras({**zeros, name: numbered})
        total = np.zeros(size + 1)
        reached = np.zeros(size + 1, dtype=bool)
        for key, ids in placed.items():
            ids = np.asarray(ids, dtype=np.float64).ravel()
            index = ids.astype(np.int64)
            if np.any(index != ids) or np.any(index < 0) or np.any(index > size):
                raise ConversionError(
                    f"The weight map of {name!r} into {key!r} is not a placement of "
                    f"elements (a scaled or mixed element), so its gradient cannot be "
                    f"traced. Received: values outside 0..{size}"
                )
            grad = np.asarray(keras_grads[key], dtype=np.float64).ravel()
            total += np.bincount(index, weights=grad, minlength=size + 1)
            reached[index] = True
        if not reached[1:].all():
            raise ConversionError(
                f"The weight map drops elements of {name!r}, so their gradients "
                f"cannot be traced. Received: {int((~reached[1:]).sum())} element(s) "
                f"that reach no Keras weight"
            )
        torch_grads[name] = total[1:].reshape(shape).astype(dtype)
    return torch_grads


# --------------------------------------------------------------------------
# Running each kind of object
# --------------------------------------------------------------------------


@dataclasses.dataclass
class _Pair:
    """How to run and differentiate one torch/Keras pair.

    `torch_results(params)` and `keras_results()` return `{result name:
    tensor}` in the torch object's layout; `keras_units` lists `(prefix,
    torch Side, {keras key: variable})`, one per converted layer.
    """

    result_names: list
    dtype: str
    torch_results: object
    keras_results: object
    keras_units: list
    torch_label: str
    keras_label: str


def _tensor(array):
    return torch.from_numpy(np.ascontiguousarray(array))


def _recurrent_layer_pair(module, keras_obj, x, initial_state, tside, kside):
    spec = tside.spec
    dtype = spec.dtype
    x = x.astype(dtype)
    states = recurrent.split_torch_state(spec, initial_state)
    states = None if states is None else tuple(s.astype(dtype) for s in states)
    names = ["outputs"] + [f"{s}_n" for s in spec.family.STATES]

    def torch_results(params):
        args = (_tensor(x),)
        if states is not None:
            torch_states = tuple(_tensor(s) for s in states)
            args += (torch_states if len(torch_states) > 1 else torch_states[0],)
        out, final = torch.func.functional_call(module, params, args)
        finals = final if isinstance(final, tuple) else (final,)
        return dict(zip(names, (out, *finals)))

    # Layers that return only sequences run as clones that also return their
    # states; the clones' variables are the ones differentiated.
    units = [with_sequences_and_state(u) for u in recurrent.keras_structure(keras_obj).units]
    run_structure = recurrent.keras_structure(units)
    x_batch_major = x if module.batch_first else np.swapaxes(x, 0, 1)

    def keras_results():
        results = recurrent.run_stack_layers(units, x_batch_major, states, training=False)
        if not module.batch_first:
            results[0] = keras.ops.swapaxes(results[0], 0, 1)
        return dict(zip(names, results))

    return _Pair(names, dtype, torch_results, keras_results,
                 [("", tside, recurrent.keras_targets(run_structure))],
                 f"{tside.label} {spec}", kside.label)


def _recurrent_cell_pair(cell, keras_cell, x, initial_state, tside, kside):
    spec = tside.spec
    dtype = spec.dtype
    x = x.astype(dtype)
    if x.ndim not in (2, 3):
        raise ConversionError(
            f"nn.{type(cell).__name__}: x must be (batch, input_size) for one step "
            f"or (time, batch, input_size) for a loop over steps. Received: shape={x.shape}"
        )
    steps = x if x.ndim == 3 else x[None]
    states = recurrent.split_torch_state(spec, initial_state)
    if states is None:
        states = tuple(
            np.zeros((steps.shape[1], spec.hidden_size), dtype) for _ in spec.family.STATES
        )
    states = tuple(s.astype(dtype) for s in states)
    names = (["outputs"] if x.ndim == 3 else []) + list(spec.family.STATES)

    def loop(step_fn, state, stack):
        outputs = []
        for step in steps:
            state = step_fn(step, state)
            outputs.append(state[0])
        results = ([stack(outputs)] if x.ndim == 3 else []) + list(state)
        return dict(zip(names, results))

    def torch_results(params):
        def step_fn(step, state):
            result = torch.func.functional_call(
                cell, params, (_tensor(step), state if len(state) > 1 else state[0])
            )
            return result if isinstance(result, tuple) else (result,)

        return loop(step_fn, tuple(_tensor(s) for s in states), torch.stack)

    def keras_results():
        def step_fn(step, state):
            _, new_state = keras_cell(keras.ops.convert_to_tensor(step), list(state),
                                      training=False)
            return tuple(new_state) if isinstance(new_state, (list, tuple)) else (new_state,)

        return loop(step_fn, tuple(keras.ops.convert_to_tensor(s) for s in states),
                    lambda outputs: keras.ops.stack(outputs, axis=0))

    return _Pair(names, dtype, torch_results, keras_results,
                 [("", tside, dict(kside.targets))], f"{tside.label} {spec}", kside.label)


def _plain_pair(module, layer, x, initial_state, tside, kside):
    if initial_state is not None:
        raise ConversionError(
            f"nn.{type(module).__name__} has no state. Received: an initial_state"
        )
    if isinstance(module, torch.nn.Embedding):
        if not np.issubdtype(x.dtype, np.integer):
            raise ConversionError(
                f"nn.Embedding takes integer indices. Received: dtype={x.dtype}"
            )
        x = x.astype(np.int64)
    else:
        x = x.astype(tside.spec.dtype)
    return _Pair(
        ["outputs"], tside.spec.dtype,
        lambda params: {"outputs": torch.func.functional_call(module, params, (_tensor(x),))},
        lambda: {"outputs": layer(x)},
        [("", tside, dict(kside.targets))], f"{tside.label} {tside.spec}", kside.label,
    )


def _whole_model_pair(model, keras_model, x, initial_state, mapping):
    """Whole models: units paired as `copy_weights` pairs them, every pair checked."""
    from parity.convert import prepare_copy, keras_side, torch_side

    if initial_state is not None:
        raise ConversionError(
            "initial_state is for single recurrent layers; a whole model takes only x. "
            "Received: an initial_state"
        )
    t_units = models.torch_units(model)
    k_units = (models.keras_units(keras_model)
               if isinstance(keras_model, keras.Model) and not isinstance(keras_model, TorchRNN)
               else [(keras_model.name, keras_model)])
    pairs, lone_torch, lone_keras = models.pair_units(t_units, k_units, mapping)
    if lone_torch or lone_keras:
        raise ConversionError(
            f"{type(model).__name__} and {type(keras_model).__name__} {keras_model.name!r} "
            f"do not pair up layer by layer (see `parity.copy_weights` for the table). "
            f"Received: unpaired torch {[n for n, _ in lone_torch]}, unpaired keras "
            f"{[n for n, _ in lone_keras]}"
        )
    keras_units = []
    for t_name, module, _, layer in pairs:
        prepare_copy(module, layer)  # raises on any architecture or shape mismatch
        keras_units.append((f"{t_name}.", torch_side(module), dict(keras_side(layer).targets)))
    dtype = dtype_name(next(model.parameters()).dtype)
    if not np.issubdtype(x.dtype, np.integer):
        x = x.astype(dtype)
    elif x.dtype != np.int64:
        x = x.astype(np.int64)
    shape = {}

    def torch_results(params):
        out = torch.func.functional_call(model, params, (_tensor(x),))
        out = out[0] if isinstance(out, tuple) else out
        shape["outputs"] = tuple(out.shape)
        return {"outputs": out}

    def keras_results():
        out = keras_model(x, training=False)
        # The notes' models end in `view(-1, num_class)`; compare reshapes the same way.
        if tuple(out.shape) != shape["outputs"]:
            out = keras.ops.reshape(out, shape["outputs"])
        return {"outputs": out}

    return _Pair(["outputs"], dtype, torch_results, keras_results, keras_units,
                 type(model).__name__, f"{type(keras_model).__name__} {keras_model.name!r}")


def _pair(torch_obj, keras_obj, x, initial_state, mapping):
    from parity.convert import keras_side, prepare_copy, torch_side

    if models.is_whole_model(torch_obj) or models.is_whole_model(keras_obj):
        return _whole_model_pair(torch_obj, keras_obj, x, initial_state, mapping)
    if mapping is not None:
        raise ConversionError(
            f"mapping= is for whole models; {type(torch_obj).__name__} -> "
            f"{type(keras_obj).__name__} is one layer. Received: mapping={mapping!r}"
        )
    tside, kside = torch_side(torch_obj), keras_side(keras_obj)
    # The same checks as a copy (architecture, every key, shape and dtype); nothing is written.
    prepare_copy(torch_obj, keras_obj)
    if not isinstance(tside.spec, recurrent.RecurrentSpec):
        return _plain_pair(torch_obj, keras_obj, x, initial_state, tside, kside)
    if tside.spec.cell:
        return _recurrent_cell_pair(torch_obj, keras_obj, x, initial_state, tside, kside)
    return _recurrent_layer_pair(torch_obj, keras_obj, x, initial_state, tside, kside)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def compare_gradients(torch_obj, keras_obj, x, y=None, loss="mse", *, initial_state=None,
                      mapping=None, atol=None, rtol=None):
    """Differentiates the same loss on both sides and compares every weight's gradient.

    Both sides run in inference mode (torch `eval()`, Keras `training=False`),
    so dropout is off. Nothing is written: the torch gradients are taken on
    detached copies of the parameters (their `.grad` stays as it was) and the
    Keras variables are only read.

    Args:
        torch_obj: a module `parity` converts (a cell, `nn.RNN/LSTM/GRU`,
            `nn.Linear`, `nn.Embedding`) or a whole model.
        keras_obj: its Keras counterpart, with the same weights.
        x: the input in the torch object's layout, as `parity.compare` takes it.
        y: the loss target(s), in the torch object's layout:
            - an array: the target of the main result (`outputs`; `h` for a
              one-step cell);
            - a dict `{result name: target}`: the loss is computed on each
              named result (`outputs`, `h_n`, `c_n`; `h`, `c` for cells) and
              summed; for `loss="sum"` the values are `None`;
            - `None`: for `loss="sum"`, the sum of the main result.
            Floating targets are cast to the weights' dtype.
        loss: `"mse"` (mean squared error against `y`), `"sum"` (the sum of
            the result, no target), `"cross_entropy"` (softmax cross-entropy of
            the result's last axis as logits against integer classes `y` of
            the result's shape without that axis, averaged), or a pair
            `(torch_loss, keras_loss)` of callables `fn(result, target) ->
            scalar`, on torch tensors and on Keras tensors (`keras.ops`)
            respectively, both in the torch object's layout.
        initial_state: `h0`, or `(h0, c0)` for LSTM, in PyTorch's layout.
        mapping: whole models only, as in `parity.copy_weights`.
        atol, rtol: the tolerance; `parity.default_tolerance` of the weights'
            dtype when not given (1e-5 for float32).

    Returns:
        A `GradientReport`: the loss values and, per PyTorch weight name, the
        max error between the mapped Keras gradient and the PyTorch gradient.

    Raises:
        ConversionError: for a bad loss, target or pair of objects.
        NotImplementedError: on the jax backend.

    Example:

    >>> gru = torch.nn.GRU(3, 5, num_layers=2, bidirectional=True)
    >>> x = np.random.default_rng(0).normal(size=(7, 2, 3)).astype("float32")
    >>> y = np.zeros((7, 2, 10), "float32")
    >>> report = compare_gradients(gru, parity.to_keras(gru), x, y, loss="mse")
    >>> report.ok, report["bias_hh_l1_reverse"].max_abs_error < 1e-5
    (True, True)
    """
    if isinstance(torch_obj, StatefulRNN):
        raise ConversionError(
            "compare_gradients: a StatefulRNN carries its state between calls, so its "
            "gradient depends on the calls before; compare `wrapper.module` with a "
            "stateless Keras copy instead. Received: StatefulRNN"
        )
    loss_spec = _resolve_loss(loss)
    x = as_input(x, "x")
    was_training = torch_obj.training
    torch_obj.eval()
    try:
        pair = _pair(torch_obj, keras_obj, x, initial_state, mapping)
        tolerance = default_tolerance(pair.dtype)
        atol = tolerance["atol"] if atol is None else atol
        rtol = tolerance["rtol"] if rtol is None else rtol
        targets = _resolve_targets(y, pair.result_names, pair.dtype)

        def torch_loss(params):
            results = pair.torch_results(params)
            total = 0
            for name, target in targets.items():
                _check_target(loss_spec, name, results[name].shape, target)
                total = total + loss_spec.torch_fn(
                    results[name], None if target is None else _tensor(target)
                )
            return total

        torch_loss_value, torch_grads = _torch_gradients(torch_obj, torch_loss)
    finally:
        torch_obj.train(was_training)

    def keras_loss():
        results = pair.keras_results()
        total = 0
        for name, target in targets.items():
            total = total + loss_spec.keras_fn(
                results[name], None if target is None else keras.ops.convert_to_tensor(target)
            )
        return total

    variables = [v for _, _, targets_ in pair.keras_units for v in targets_.values()]
    keras_loss_value, flat = keras_gradients(keras_loss, variables)
    flat = iter(flat)
    mapped = {}
    for prefix, tside, keras_targets in pair.keras_units:
        keras_grads = {key: next(flat) for key in keras_targets}
        shapes = {name: tuple(p.shape) for name, p in tside.targets.items()}
        for name, grad in to_torch_gradients(tside.to_other, shapes, keras_grads).items():
            mapped[prefix + name] = grad

    gradients = {
        name: diff_arrays(name, mapped[name], expected, atol, rtol)
        for name, expected in torch_grads.items()
    }
    loss_diff = diff_arrays("loss", np.float64(keras_loss_value),
                            np.float64(torch_loss_value), atol, rtol)
    return GradientReport(
        gradients=gradients, loss=loss_diff, atol=atol, rtol=rtol,
        torch_label=pair.torch_label, keras_label=pair.keras_label,
        loss_label=loss_spec.label + f" on {', '.join(targets)}",
        torch_gradients=torch_grads, keras_gradients=mapped,
    )


def assert_gradients(torch_obj, keras_obj, x, y=None, loss="mse", **kwargs):
    """`compare_gradients`, raising `ParityError` naming the worst weight.

    The message reads e.g. `bias_hh_l0: max abs diff 3e-04 > atol 1e-05 +
    rtol 1e-05 * |expected| (at index [4]: keras ..., torch ...)`, followed
    by the whole report.

    Returns:
        The `GradientReport` when the loss and every gradient are within tolerance.
    """
    report = compare_gradients(torch_obj, keras_obj, x, y, loss, **kwargs)
    if not report.ok:
        worst = report.worst
        detail = worst.note or (
            f"at index {list(worst.worst_index)}: keras {worst.actual_at_worst!r}, "
            f"torch {worst.expected_at_worst!r}"
        )
        raise ParityError(
            f"{worst.name}: max abs diff {worst.max_abs_error:.3g} > atol "
            f"{report.atol:g} + rtol {report.rtol:g} * |expected| ({detail})\n{report}",
            report,
        )
    return report
