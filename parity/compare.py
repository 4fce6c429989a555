"""Run a PyTorch object and a Keras object on the same input and compare.

`compare` returns a `ParityReport`; `assert_parity` raises `ParityError`
naming the worst output path. Inputs and initial states are given in the
torch object's own layout (time-major unless `batch_first=True`); the Keras
side gets the same numbers in batch-major layout, and its results are put
back into PyTorch's layout (`h_n` as `(num_layers * num_directions, batch,
hidden)`) before they are compared.

A Keras recurrent layer that does not itself return sequences and states is
run as a clone with `return_sequences=True, return_state=True` and the same
weights, so that every final state can be compared.
"""

import dataclasses

import keras
import numpy as np
import torch

from parity import recurrent
from parity.backends import float64_problems
from parity.dtypes import dtype_name
from parity.errors import ConversionError, ParityError
from parity.naming import slot_label
from parity.plan import is_keras, is_torch
from parity.registry import lookup_type
from parity.stacked import TorchRNN
from parity.torch_modules import MaskedSequential, StatefulRNN
from parity.tolerance import DiffSummary, diff_arrays, diff_table


@dataclasses.dataclass
class ParityReport(DiffSummary):
    """The element-wise comparison of every output of both sides.

    Attributes:
        outputs: `{name: OutputDiff}` in order (`outputs`, `h_n`, `c_n`, or
            `h`, `c` for cells), the per-output breakdown.
        atol, rtol: the tolerance the `ok` flags were computed with.
        torch_label, keras_label: what was compared.
        slot_labels: for the state outputs, the (layer, direction) of each
            leading index, so the worst element can be named.
        notes: what limits exactness here, e.g. a Keras backend that computes
            float64 in float32 (`parity.backends.float64_problems`).
    """

    outputs: dict
    atol: float
    rtol: float
    torch_label: str = ""
    keras_label: str = ""
    slot_labels: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def __getitem__(self, name):
        return self.outputs[name]

    def _diffs(self):
        return self.outputs.values()

    @property
    def ok(self):
        return all(d.ok for d in self.outputs.values())

    @property
    def worst(self):
        """The `OutputDiff` that fails worst (or has the largest error)."""
        failing = [d for d in self.outputs.values() if not d.ok]
        pool = failing or list(self.outputs.values())
        return max(pool, key=lambda d: d.max_abs_error)

    def path(self, diff):
        """`"h_n[1]"` plus the layer and direction for a state output's worst element."""
        if diff.name in ("h_n", "c_n") and diff.worst_index and self.slot_labels:
            k = diff.worst_index[0]
            return f"{diff.name}[{k}] ({self.slot_labels[k]})"
        return diff.name

    def __str__(self):
        header = f"parity: {self.torch_label} vs {self.keras_label} (atol={self.atol:g}, rtol={self.rtol:g})"
        lines = [header, *diff_table(self.outputs.values())]
        verdict = "PASS" if self.ok else f"FAIL at {self.path(self.worst)}"
        lines.append(
            f"max abs error {self.max_abs_error:.3g}, max rel error "
            f"{self.max_rel_error:.3g}: {verdict}"
        )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _torch_dtype(module):
    return next(module.parameters()).dtype


def as_input(x, what):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()  # np.asarray refuses a tensor that requires grad
    array = np.asarray(x)
    if array.dtype == object:
        raise ConversionError(f"{what} must be a numeric array. Received: dtype=object")
    return np.ascontiguousarray(array)


def check_floating(x, label):
    """Refuses what numpy would cast silently (bool, integers), with a warning
    (complex: the imaginary part dropped), or not at all (strings)."""
    if not np.issubdtype(x.dtype, np.floating):
        hint = (" (integer indices go through an Embedding first)"
                if np.issubdtype(x.dtype, np.integer) else "")
        raise ConversionError(
            f"{label} computes in floating point, so x must be a float array{hint}. "
            f"Received: dtype={x.dtype}"
        )


def check_indices(x, num_embeddings, label):
    """Integer indices inside the table (PyTorch raises IndexError, Keras reads garbage)."""
    if not np.issubdtype(x.dtype, np.integer):
        raise ConversionError(f"{label} takes integer indices. Received: dtype={x.dtype}")
    if x.size and (x.min() < 0 or x.max() >= num_embeddings):
        raise ConversionError(
            f"{label}: every index must be in [0, {num_embeddings}). Received: indices "
            f"from {x.min()} to {x.max()}"
        )


def _check_steps(label, batch, time, shape):
    if batch == 0 or time == 0:
        raise ConversionError(
            f"{label}: x holds {time} time step(s) of {batch} sequence(s); there is "
            f"nothing to compare (PyTorch refuses empty sequences and Keras's LSTM an "
            f"empty batch). Received: shape={shape}"
        )


def _check_features(label, spec, shape):
    if shape[-1] != spec.input_size:
        raise ConversionError(
            f"{label}: x has {shape[-1]} features per step, the layer takes "
            f"input_size={spec.input_size}. Received: shape={shape}"
        )


def _check_states(label, spec, states, leading, layout):
    """Each initial state has shape `(*leading, size)`; `layout` names the axes."""
    for name, state in zip(spec.family.STATES, states):
        size = spec.proj_size if name == "h" and spec.proj_size else spec.hidden_size
        expected = (*leading, size)
        if not (np.issubdtype(state.dtype, np.floating) or np.issubdtype(state.dtype, np.integer)):
            raise ConversionError(
                f"{label}: initial state {name}0 must be a float array. Received: "
                f"dtype={state.dtype}"
            )
        if tuple(state.shape) != expected:
            raise ConversionError(
                f"{label}: initial state {name}0 must have shape {expected} {layout}. "
                f"Received: shape={tuple(state.shape)}"
            )


def _numpy(t):
    return keras.ops.convert_to_numpy(t) if not isinstance(t, torch.Tensor) else t.detach().cpu().numpy()


def with_sequences_and_state(unit):
    """`unit` itself if it returns sequences and states, else a clone that does."""
    if isinstance(unit, keras.layers.Dropout):
        return unit
    inner = unit.forward_layer if isinstance(unit, keras.layers.Bidirectional) else unit
    if inner.return_sequences and inner.return_state:
        return unit

    def clone(layer):
        config = layer.get_config()
        config.update(return_sequences=True, return_state=True)
        return type(layer).from_config(config)

    if isinstance(unit, keras.layers.Bidirectional):
        copy = keras.layers.Bidirectional(
            clone(unit.forward_layer), backward_layer=clone(unit.backward_layer),
            merge_mode=unit.merge_mode, dtype=unit.dtype_policy,
        )
        features = unit.forward_layer.cell.kernel.shape[0]
    else:
        copy = clone(unit)
        features = unit.cell.kernel.shape[0]
    copy.build((None, None, features))
    copy.set_weights(unit.get_weights())
    return copy


def run_keras_recurrent(keras_obj, x_batch_major, states, mask=None):
    """Runs a Keras recurrent layer/stack; returns `[outputs, h_n(, c_n)]` as numpy."""
    if mask is not None:
        mask = keras.ops.convert_to_tensor(mask)
    if isinstance(keras_obj, TorchRNN) and keras_obj.return_state:
        result = keras_obj(x_batch_major, initial_state=states, training=False, mask=mask)
    else:
        structure = recurrent.keras_structure(keras_obj)
        if structure.stateful:
            return _run_stateful(structure.units, x_batch_major, states, mask)
        units = [with_sequences_and_state(u) for u in structure.units]
        result = recurrent.run_stack_layers(
            units, x_batch_major, None if states is None else tuple(states), training=False,
            mask=mask,
        )
    return [_numpy(r) for r in result]


def valid_lengths(lengths, mask, batch, time):
    """Checks `lengths` (or a right-padded boolean `mask`) against the input.

    Returns:
        `(lengths, mask)` as an int64 `(batch,)` array and a boolean
        `(batch, time)` array, or `(None, None)`.
    """
    if lengths is None and mask is None:
        return None, None
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != (batch, time) or mask.dtype != bool:
            raise ConversionError(
                f"mask must be boolean (batch, time) = ({batch}, {time}), batch-major like "
                f"Keras masks. Received: dtype={mask.dtype}, shape={mask.shape}"
            )
        from_mask = mask.sum(axis=1)
        if not np.array_equal(mask, np.arange(time)[None, :] < from_mask[:, None]):
            raise ConversionError(
                "mask must be right-padded (True then False in every row): a PyTorch "
                "PackedSequence only describes right padding. Left-padded Keras input "
                "gives the same final states when shifted to the right (docs/beyond.md). "
                f"Received: rows {np.flatnonzero(~np.all(mask == (np.arange(time) < from_mask[:, None]), axis=1)).tolist()} are not prefixes"
            )
        if lengths is not None and not np.array_equal(np.asarray(lengths), from_mask):
            raise ConversionError(
                f"lengths and mask disagree. Received: lengths={np.asarray(lengths).tolist()}, "
                f"mask sums={from_mask.tolist()}"
            )
        lengths = from_mask
    lengths = np.asarray(lengths)
    if lengths.shape != (batch,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ConversionError(
            f"lengths must be integers, one per sequence ({batch}). "
            f"Received: dtype={lengths.dtype}, shape={lengths.shape}"
        )
    if lengths.min(initial=1) < 1 or lengths.max(initial=1) > time:
        raise ConversionError(
            f"every length must be between 1 and the sequence length {time}. "
            f"Received: lengths={lengths.tolist()}"
        )
    return lengths.astype(np.int64), np.arange(time)[None, :] < lengths[:, None]


def _run_stateful(units, x, states, mask):
    """Runs stateful Keras layers as they are: each call starts from, and updates,
    the layers' own state variables, which give the final states."""
    if states is not None:
        raise ConversionError(
            "a stateful Keras layer starts from its own state; reset it with "
            "reset_state() instead of passing initial_state. Received: an initial_state"
        )
    finals = None
    for unit in units:
        if isinstance(unit, keras.layers.Dropout):
            x = unit(x, training=False)
            continue
        layers = ([unit.forward_layer, unit.backward_layer]
                  if isinstance(unit, keras.layers.Bidirectional) else [unit])
        if not layers[0].return_sequences:
            raise ConversionError(
                f"{unit.name}: compare needs every output step; build the stateful layer "
                f"with return_sequences=True. Received: return_sequences=False"
            )
        result = unit(x, training=False, mask=mask)
        x = result[0] if isinstance(result, (list, tuple)) else result
        for layer in layers:
            if finals is None:
                finals = [[] for _ in layer.states]
            for i, variable in enumerate(layer.states):
                finals[i].append(keras.ops.convert_to_numpy(variable))
    return [_numpy(x)] + [np.stack(f) for f in finals]


def _compare_recurrent_layer(module, keras_obj, x, initial_state, lengths=None, mask=None):
    wrapper = module if isinstance(module, StatefulRNN) else None
    module = wrapper.module if wrapper is not None else module
    spec = recurrent.torch_spec(module)
    states = recurrent.split_torch_state(spec, initial_state)
    dtype = _torch_dtype(module)
    x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype_name(dtype)))
    if x_t.ndim != 3:
        raise ConversionError(
            f"nn.{type(module).__name__}: x must be 3-D, "
            f"{'(batch, time, features)' if module.batch_first else '(time, batch, features)'}. "
            f"Received: shape={tuple(x_t.shape)}"
        )
    batch, time = (x_t.shape[0], x_t.shape[1]) if module.batch_first else (x_t.shape[1], x_t.shape[0])
    label = f"nn.{type(module).__name__}"
    _check_steps(label, batch, time, tuple(x_t.shape))
    _check_features(label, spec, tuple(x_t.shape))
    if states is not None:
        _check_states(label, spec, states, (len(spec.slots()), batch),
                      "(num_layers * num_directions, batch, hidden)")
    torch_states = None
    if states is not None:
        torch_states = tuple(torch.from_numpy(np.ascontiguousarray(s, dtype=dtype_name(dtype))) for s in states)
    lengths, mask = valid_lengths(lengths, mask, batch, time)
    inputs = x_t
    if lengths is not None:
        inputs = torch.nn.utils.rnn.pack_padded_sequence(
            x_t, torch.from_numpy(lengths), batch_first=module.batch_first, enforce_sorted=False
        )
    with torch.no_grad():
        if wrapper is not None:
            if torch_states is not None:
                raise ConversionError(
                    "a StatefulRNN starts from the state it carries; reset it with "
                    "reset_state() instead of passing initial_state. Received: an initial_state"
                )
            out, final = wrapper(inputs)
        else:
            # output-only modules (parity.torch_modules) still give their states here
            run = getattr(module, "forward_with_state", module)
            if torch_states is None:
                out, final = run(inputs)
            else:
                out, final = run(inputs, torch_states if len(torch_states) > 1 else torch_states[0])
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=module.batch_first, total_length=time
        )
    finals = final if isinstance(final, tuple) else (final,)
    torch_results = [out.numpy()] + [f.numpy() for f in finals]

    x_np = x_t.numpy()
    x_bm = x_np if module.batch_first else np.swapaxes(x_np, 0, 1)
    keras_states = None if torch_states is None else [s.numpy() for s in torch_states]
    keras_results = run_keras_recurrent(keras_obj, x_bm, keras_states, mask=mask)
    note = ""
    if mask is not None:
        # Padded steps hold zeros in PyTorch and the carried output in Keras:
        # only valid steps are compared (docs/beyond.md).
        keras_results[0] = np.where(mask[:, :, None], keras_results[0], 0.0).astype(
            keras_results[0].dtype
        )
        note = "valid steps only"
    if not module.batch_first:
        keras_results[0] = np.swapaxes(keras_results[0], 0, 1)
    names = ["outputs"] + [f"{s}_n" for s in spec.family.STATES]
    labels = [slot_label(layer, reverse) for layer, reverse in spec.slots()]
    return names, torch_results, keras_results, labels, note


def _compare_recurrent_cell(cell, keras_cell, x, initial_state):
    spec = recurrent.torch_spec(cell)
    dtype = _torch_dtype(cell)
    x = np.ascontiguousarray(x, dtype=dtype_name(dtype))
    if x.ndim not in (2, 3):
        raise ConversionError(
            f"nn.{type(cell).__name__}: x must be (batch, input_size) for one step "
            f"or (time, batch, input_size) for a loop over steps. Received: shape={x.shape}"
        )
    steps = x if x.ndim == 3 else x[None]
    batch = steps.shape[1]
    label = f"nn.{type(cell).__name__}"
    _check_steps(label, batch, steps.shape[0], x.shape)
    _check_features(label, spec, x.shape)
    n_states = len(spec.family.STATES)
    states = recurrent.split_torch_state(spec, initial_state)
    if states is not None:
        _check_states(label, spec, states, (batch,), "(batch, hidden)")
    if states is None:
        states = tuple(np.zeros((batch, spec.hidden_size), dtype=x.dtype) for _ in range(n_states))
    states = tuple(np.ascontiguousarray(s, dtype=x.dtype) for s in states)
    torch_state = tuple(torch.from_numpy(s) for s in states)
    keras_state = [keras.ops.convert_to_tensor(s) for s in states]
    torch_steps, keras_steps = [], []
    with torch.no_grad():
        for step in steps:
            result = cell(torch.from_numpy(step), torch_state if n_states > 1 else torch_state[0])
            torch_state = result if isinstance(result, tuple) else (result,)
            torch_steps.append(torch_state[0].numpy())
            _, keras_state = keras_cell(keras.ops.convert_to_tensor(step), keras_state, training=False)
            keras_state = list(keras_state) if isinstance(keras_state, (list, tuple)) else [keras_state]
            keras_steps.append(_numpy(keras_state[0]))
    names = list(spec.family.STATES)
    torch_results = [s.numpy() for s in torch_state]
    keras_results = [_numpy(s) for s in keras_state]
    if x.ndim == 3:
        names = ["outputs"] + names
        torch_results = [np.stack(torch_steps)] + torch_results
        keras_results = [np.stack(keras_steps)] + keras_results
    return names, torch_results, keras_results, []


def _compare_plain(module, layer, x, initial_state):
    if initial_state is not None:
        raise ConversionError(
            f"nn.{type(module).__name__} has no state. Received: an initial_state"
        )
    if isinstance(module, torch.nn.Embedding):
        check_indices(np.asarray(x), module.num_embeddings, "nn.Embedding")
        x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64))
    else:
        if x.ndim == 0 or x.shape[-1] != module.in_features:
            raise ConversionError(
                f"nn.Linear: x must end in in_features={module.in_features}. "
                f"Received: shape={x.shape}"
            )
        x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype_name(_torch_dtype(module))))
    with torch.no_grad():
        expected = module(x_t).numpy()
    actual = _numpy(layer(x_t.numpy()))
    return ["outputs"], [expected], [actual], []


def _compare_model(model, keras_model, x, initial_state):
    """Whole models: the same array into both; the final outputs compared.

    `x` goes to both models as it is (whole models take batch-major input on
    both sides, e.g. `(batch, time)` indices). When the PyTorch model reshapes
    its output (the notes' `view(-1, num_class)`), the Keras output is
    reshaped to the same shape if it holds the same number of elements, and
    the report says so.
    """
    if initial_state is not None:
        raise ConversionError(
            "initial_state is for single recurrent layers; a whole model takes only x. "
            "Received: an initial_state"
        )
    label = type(model).__name__
    # A whole model's forward may do anything with x: only what cannot be an
    # input is refused, and indices are checked when an Embedding comes first.
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ConversionError(
            f"{label}: x must hold integer indices or floats. Received: dtype={x.dtype}"
        )
    with_weights = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    if with_weights and isinstance(with_weights[0], torch.nn.Embedding):
        check_indices(x, with_weights[0].num_embeddings,
                      f"{label} (its first layer is nn.Embedding)")
    if x.size == 0 and any(lookup_type(m) and lookup_type(m)[1] != "plain" for m in with_weights):
        raise ConversionError(
            f"{label}: x is empty and the model holds recurrent layers (PyTorch refuses "
            f"empty sequences and Keras's LSTM an empty batch). Received: shape={x.shape}"
        )
    if np.issubdtype(x.dtype, np.integer):
        x_t = torch.from_numpy(x.astype(np.int64))
    else:
        x_t = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype_name(_torch_dtype(model))))
    with torch.no_grad():
        expected = model(x_t)
    if isinstance(expected, tuple):
        expected = expected[0]
    expected = expected.numpy()
    actual = _numpy(keras_model(x_t.numpy(), training=False))
    note = ""
    if isinstance(model, MaskedSequential) and expected.ndim == 3 and actual.shape == expected.shape:
        # padded steps: zeros in PyTorch, carried values in Keras (docs/beyond.md)
        valid = model.mask(x_t).numpy()[:, :, None]
        actual = np.where(valid, actual, 0.0).astype(actual.dtype)
        expected = np.where(valid, expected, 0.0).astype(expected.dtype)
        note = "valid steps only"
    if actual.shape != expected.shape and actual.size == expected.size:
        note = f"keras output {actual.shape} reshaped to {expected.shape}"
        actual = actual.reshape(expected.shape)
    return ["outputs"], [expected], [actual], [], note


def compare(torch_obj, keras_obj, x, initial_state=None, atol=1e-5, rtol=1e-5,
            lengths=None, mask=None):
    """Runs both objects on `x` and compares every output and final state.

    Args:
        torch_obj: a supported torch module (run in eval mode, no grad).
        keras_obj: the Keras counterpart (run with `training=False`).
        x: numpy input in the torch object's layout: `(time, batch, features)`,
            or `(batch, time, features)` when `batch_first=True`; for cells
            `(batch, features)` for one step or `(time, batch, features)` for a
            loop; integer indices for `Embedding`.
        initial_state: `h0`, or `(h0, c0)` for LSTM, in PyTorch's layout.
        atol, rtol: the tolerance the report's `ok` flags use.
        lengths: recurrent layers only: the valid length of each sequence
            (right padding). PyTorch runs a `PackedSequence`, Keras gets the
            matching mask; outputs are compared at valid steps, final states
            at each sequence's last valid step.
        mask: instead of `lengths`, a boolean `(batch, time)` Keras mask
            (batch-major, right-padded).

    Returns:
        A `ParityReport`.

    Example:

    >>> lstm = torch.nn.LSTM(3, 5, num_layers=2)
    >>> report = parity.compare(lstm, parity.to_keras(lstm), np.ones((7, 2, 3)))
    >>> print(report)      # a table: outputs, h_n, c_n
    """
    from parity import models
    from parity.convert import keras_side, torch_side

    if is_keras(torch_obj) and is_torch(keras_obj):
        raise ConversionError(
            f"compare(torch_obj, keras_obj, x) takes the PyTorch object first; the "
            f"arguments are swapped. Received: {type(torch_obj).__name__} (Keras), "
            f"{type(keras_obj).__name__} (torch)"
        )
    x = as_input(x, "x")
    whole = models.is_whole_model(torch_obj) or models.is_whole_model(keras_obj)
    if whole:
        torch_label = f"{type(torch_obj).__name__}"
        keras_label = f"{type(keras_obj).__name__} {keras_obj.name!r}"
    else:
        tside, kside = torch_side(torch_obj), keras_side(keras_obj)
        torch_label, keras_label = f"{tside.label} {tside.spec}", kside.label
    was_training = torch_obj.training
    torch_obj.eval()
    try:
        if whole:
            run = _compare_model
        elif isinstance(tside.spec, recurrent.RecurrentSpec):
            if tside.spec.cell:
                run = _compare_recurrent_cell
            else:
                run = _compare_recurrent_layer
        else:
            run = _compare_plain
        if run is not _compare_model and tside.spec.kind != "embedding":
            check_floating(x, tside.label)
        if lengths is not None or mask is not None:
            if run is not _compare_recurrent_layer:
                raise ConversionError(
                    f"lengths/mask apply to recurrent layers and stacks; "
                    f"{torch_label} is not one. Received: lengths={lengths!r}"
                )
            names, expected, actual, labels, *note = run(
                torch_obj, keras_obj, x, initial_state, lengths=lengths, mask=mask
            )
        else:
            names, expected, actual, labels, *note = run(torch_obj, keras_obj, x, initial_state)
    finally:
        torch_obj.train(was_training)
    outputs = {
        name: diff_arrays(name, a, e, atol, rtol)
        for name, a, e in zip(names, actual, expected)
    }
    if note and note[0]:
        outputs["outputs"].note = note[0]
    notes = []
    if any(p.dtype == torch.float64 for p in torch_obj.parameters()):
        notes = list(float64_problems(keras.backend.backend()))
    return ParityReport(
        outputs=outputs, atol=atol, rtol=rtol, torch_label=torch_label,
        keras_label=keras_label, slot_labels=labels, notes=notes,
    )


def assert_parity(torch_obj, keras_obj, x, initial_state=None, atol=1e-5, rtol=1e-5,
                  lengths=None, mask=None):
    """`compare`, raising `ParityError` (an `AssertionError`) when anything differs.

    The message names the worst output path, e.g.
    `h_n[1] (layer 0, backward): max abs diff 3e-04 > atol 1e-05 + rtol 1e-05 * |expected|`,
    followed by the whole report.

    Returns:
        The `ParityReport` when every output is within tolerance.
    """
    report = compare(torch_obj, keras_obj, x, initial_state=initial_state, atol=atol, rtol=rtol,
                     lengths=lengths, mask=mask)
    if not report.ok:
        worst = report.worst
        detail = worst.note or (
            f"at index {list(worst.worst_index)}: keras {worst.actual_at_worst!r}, "
            f"torch {worst.expected_at_worst!r}"
        )
        raise ParityError(
            f"{report.path(worst)}: max abs diff {worst.max_abs_error:.3g} > atol "
            f"{atol:g} + rtol {rtol:g} * |expected| ({detail})\n{report}",
            report,
        )
    return report
