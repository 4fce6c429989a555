"""Mismatch diagnosis: which known mistake explains a hand copy that fails parity.

When the weights of a Keras object were copied from a PyTorch module by hand
(not by `parity`), `diagnose(torch_obj, keras_obj, x)` undoes each known
mistake on the Keras weights, one at a time, runs `parity.compare` with the
result and names the mistake whose correction makes the two sides agree:

- `gru_gates_swapped`: GRU blocks left in PyTorch's `(r, z, n)` order
  (Keras packs `(z, r, h)`); undone by reordering every kernel and bias.
- `biases_not_summed`: the Keras bias holds only `b_ih` (or only `b_hh`);
  undone by adding the other PyTorch bias.
- `kernels_not_transposed`: `W.reshape(in, gates*H)` (or `W` as it is)
  instead of `W.T`; undone by reshaping back and transposing.
- `wrong_gru_variant`: a Keras GRU with `reset_after=False` given an
  `nn.GRU`'s weights; undone by rebuilding it with `reset_after=True`, the
  recurrent bias as the second row of its bias.
- `directions_swapped`: a Bidirectional's forward weights in its backward
  layer and back; undone by exchanging them.

The user's objects are never written: corrections go into a fresh Keras
object of the same architecture (or clones, for the GRU variant).
"""

import dataclasses
import enum

import keras
import numpy as np

from parity import recurrent
from parity.compare import compare
from parity.errors import ConversionError
from parity.naming import KERAS_RECURRENT_WEIGHTS, keras_weight_key, torch_param_name
from parity.plan import check_plan, write_plan
from parity.registry import PLAIN, lookup_type
from parity.tolerance import default_tolerance
from parity.transforms import (
    KERAS_GATES,
    TORCH_GATES,
    gate_permutation,
    reorder_gates,
    stack_biases,
)


class Mistake(str, enum.Enum):
    """What `diagnose` found; the values are stable strings (`Mistake.X == "x"`)."""

    NONE = "none"
    GRU_GATES_SWAPPED = "gru_gates_swapped"
    BIASES_NOT_SUMMED = "biases_not_summed"
    KERNELS_NOT_TRANSPOSED = "kernels_not_transposed"
    WRONG_GRU_VARIANT = "wrong_gru_variant"
    DIRECTIONS_SWAPPED = "directions_swapped"
    UNKNOWN = "unknown"

    def __str__(self):
        return self.value


SENTENCES = {
    Mistake.NONE: "The outputs already match: there is no mistake to explain.",
    Mistake.GRU_GATES_SWAPPED: (
        "The GRU gate blocks of {variant} are in PyTorch's (r, z, n) order; Keras "
        "packs them as (z, r, h), so the reset and update blocks must swap places."
    ),
    Mistake.BIASES_NOT_SUMMED: (
        "The Keras bias holds {variant}; it must hold bias_ih + bias_hh (for a GRU, "
        "bias_ih as row 0 and bias_hh as row 1)."
    ),
    Mistake.KERNELS_NOT_TRANSPOSED: (
        "The {variant} was reshaped (or copied as it is) instead of transposed: "
        "PyTorch stores (out, in), Keras (in, out), so use W.T, not "
        "W.reshape(in, out)."
    ),
    Mistake.WRONG_GRU_VARIANT: (
        "The Keras GRU has reset_after=False, which nn.GRU does not compute; build it "
        "with reset_after=True and give it bias (2, 3*units): bias_ih as row 0, "
        "bias_hh as row 1 ({variant})."
    ),
    Mistake.DIRECTIONS_SWAPPED: (
        "The forward and backward weights are exchanged ({variant}): PyTorch's "
        "`_reverse` weights belong in the Bidirectional's backward layer."
    ),
    Mistake.UNKNOWN: (
        "No known mistake explains the difference; the closest correction, "
        "{variant}, still leaves a max abs error of {error:.3g}."
    ),
}


@dataclasses.dataclass
class Diagnosis:
    """What `diagnose` found.

    Attributes:
        mistake: a `Mistake` (a `str`): `"none"` when parity already holds,
            `"unknown"` when no known mistake explains the difference.
        message: one human sentence saying what is wrong and how to fix it.
        variant: which form of the mistake, e.g. `"only bias_ih"` (`""` for none).
        report: the `ParityReport` of the objects as given (`None` where
            `compare` refuses them, e.g. a `reset_after=False` GRU when that
            variant is not converted).
        corrected: the `ParityReport` after undoing `mistake` (`None` when
            nothing was corrected).
        tried: `{"mistake (variant)": max abs error after that correction}`,
            in the order tried.
    """

    mistake: Mistake
    message: str
    variant: str = ""
    report: object = None
    corrected: object = None
    tried: dict = dataclasses.field(default_factory=dict)

    @property
    def explained(self):
        """True when parity holds, or holds once `mistake` is undone."""
        if self.mistake is Mistake.NONE:
            return True
        return self.corrected is not None and self.corrected.ok

    def __str__(self):
        lines = [f"diagnosis: {self.mistake.value}", self.message]
        if self.tried:
            lines.append("corrections tried (max abs error after each):")
            width = max(len(label) for label in self.tried)
            lines += [f"  {label.ljust(width)}  {error:.3g}" for label, error in self.tried.items()]
        return "\n".join(lines)


@dataclasses.dataclass
class _Correction:
    """One known mistake, undone: `fix(keras arrays) -> corrected keras arrays`."""

    mistake: Mistake
    variant: str
    fix: object

    @property
    def label(self):
        return f"{self.mistake.value} ({self.variant})"


# --------------------------------------------------------------------------
# The corrections, on `{keras key: array}` in the keys `parity` builds
# --------------------------------------------------------------------------


def _slot_keys(spec, weight):
    """The Keras keys of `weight` in every slot (`kernel_l0`, ...; `kernel` for a plain layer)."""
    if not isinstance(spec, recurrent.RecurrentSpec):
        return [weight]
    return [keras_weight_key(weight, layer, reverse) for layer, reverse in spec.slots()]


def _gate_order_corrections(spec):
    torch_order, keras_order = TORCH_GATES[spec.kind], KERAS_GATES[spec.kind]
    if gate_permutation(torch_order, keras_order) == list(range(len(torch_order))):
        return []  # LSTM's i, f, g, o are Keras's i, f, c, o: nothing to get wrong

    def fix(arrays):
        # Every Keras recurrent weight packs its gates along the last axis.
        return {key: reorder_gates(a, torch_order, keras_order, axis=-1)
                for key, a in arrays.items()}

    return [_Correction(Mistake.GRU_GATES_SWAPPED, "every kernel and bias", fix)]


def _bias_corrections(spec, torch_arrays, to_keras):
    if not spec.bias:
        return []
    corrections = []
    for kept in ("bias_ih", "bias_hh"):
        # The other PyTorch bias alone, in Keras's layout (gate order, GRU row).
        only_missing = to_keras({
            **torch_arrays,
            **{torch_param_name(kept, layer, reverse): np.zeros_like(
                torch_arrays[torch_param_name(kept, layer, reverse)])
               for layer, reverse in spec.slots()},
        })

        def fix(arrays, only_missing=only_missing):
            fixed = dict(arrays)
            for key in _slot_keys(spec, "bias"):
                fixed[key] = arrays[key] + only_missing[key]
            return fixed

        corrections.append(_Correction(Mistake.BIASES_NOT_SUMMED, f"only {kept}", fix))
    return corrections


def _transpose_reshaped(array):
    """Undoes `W.reshape(in, out)` of a PyTorch `(out, in)` weight, then transposes."""
    return np.ascontiguousarray(array.reshape(array.shape[::-1]).T)


def _kernel_corrections(spec, kernel_names):
    corrections = []
    # Both kernels, then each alone: a user may transpose one and reshape the other.
    groups = [kernel_names] + ([[name] for name in kernel_names] if len(kernel_names) > 1 else [])
    for group in groups:
        keys = [key for name in group for key in _slot_keys(spec, name)]

        def fix(arrays, keys=keys):
            return {key: _transpose_reshaped(a) if key in keys else a
                    for key, a in arrays.items()}

        variant = " and ".join(group) if group is kernel_names else f"{group[0]} only"
        corrections.append(_Correction(Mistake.KERNELS_NOT_TRANSPOSED, variant, fix))
    return corrections


def _direction_corrections(spec):
    if not spec.bidirectional:
        return []
    layer_sets = [list(range(spec.num_layers))]
    if spec.num_layers > 1:
        layer_sets += [[layer] for layer in range(spec.num_layers)]
    corrections = []
    for layers in layer_sets:
        def fix(arrays, layers=layers):
            fixed = dict(arrays)
            for layer in layers:
                for weight in KERAS_RECURRENT_WEIGHTS:
                    forward = keras_weight_key(weight, layer, False)
                    backward = keras_weight_key(weight, layer, True)
                    if forward in arrays:
                        fixed[forward], fixed[backward] = arrays[backward], arrays[forward]
            return fixed

        variant = ("every layer" if len(layers) == spec.num_layers
                   else f"layer {layers[0]} only")
        corrections.append(_Correction(Mistake.DIRECTIONS_SWAPPED, variant, fix))
    return corrections


def _corrections(tside):
    spec = tside.spec
    if not isinstance(spec, recurrent.RecurrentSpec):
        return _kernel_corrections(spec, ["kernel"]) if spec.kind == "dense" else []
    torch_arrays = tside.arrays()
    return [
        *_gate_order_corrections(spec),
        *_bias_corrections(spec, torch_arrays, tside.to_other),
        *_kernel_corrections(spec, ["kernel", "recurrent_kernel"]),
        *_direction_corrections(spec),
    ]


def _fresh_keras(spec):
    if isinstance(spec, recurrent.RecurrentSpec):
        return recurrent.build_keras(spec)
    return PLAIN[spec.kind].build_keras(spec)


# --------------------------------------------------------------------------
# The GRU variant: reset_after=False needs a rebuilt layer, not other weights
# --------------------------------------------------------------------------


def _is_cell(obj):
    found = lookup_type(obj)
    return found is not None and found[1] == "cell"


def _resets_before_matmul(cell):
    """A Keras `GRUCell(reset_after=False)`, the variant `nn.GRU` does not compute."""
    return _is_cell(cell) and getattr(cell, "reset_after", True) is False


def _units(obj):
    return [obj] if _is_cell(obj) else recurrent.stack_units(obj)


def _cells_of(unit):
    if isinstance(unit, keras.layers.Bidirectional):
        return [unit.forward_layer.cell, unit.backward_layer.cell]
    if isinstance(unit, keras.layers.RNN):
        return [unit.cell]
    return [unit] if _is_cell(unit) else []


def _reset_after_false_cells(obj):
    try:
        units = _units(obj)
    except (ConversionError, TypeError, AttributeError):
        return []
    return [cell for unit in units for cell in _cells_of(unit) if _resets_before_matmul(cell)]


def _with_reset_after(unit):
    """A built clone of a GRU cell / layer / Bidirectional with `reset_after=True`."""

    def clone(layer):
        config = layer.get_config()
        config["reset_after"] = True
        copy = type(layer).from_config(config)
        if _is_cell(layer):
            copy.build((None, layer.kernel.shape[0]))
        else:
            copy.build((None, None, layer.cell.kernel.shape[0]))
        return copy

    if isinstance(unit, keras.layers.Bidirectional):
        copy = keras.layers.Bidirectional(
            clone(unit.forward_layer), backward_layer=clone(unit.backward_layer),
            merge_mode=unit.merge_mode, dtype=unit.dtype_policy,
        )
        copy.build((None, None, unit.forward_layer.cell.kernel.shape[0]))
        return copy
    if _cells_of(unit):
        return clone(unit)
    return unit  # Dropout


def _diagnose_gru_variant(torch_obj, keras_obj, x, initial_state, atol, rtol):
    from parity.convert import torch_side

    units = _units(keras_obj)
    clones = [_with_reset_after(unit) for unit in units]
    rebuilt = clones[0] if len(clones) == 1 else clones
    structure = recurrent.keras_structure(rebuilt)
    spec = structure.spec
    targets = recurrent.keras_targets(structure)
    old_cells = [cell for unit in units for cell in _cells_of(unit)]
    tside = torch_side(torch_obj)
    correct = tside.to_other(tside.arrays())

    numpy = keras.ops.convert_to_numpy

    def rebuilt_arrays(bias_rows):
        arrays = {}
        for (layer, reverse), old in zip(spec.slots(), old_cells):
            arrays[keras_weight_key("kernel", layer, reverse)] = numpy(old.kernel)
            arrays[keras_weight_key("recurrent_kernel", layer, reverse)] = numpy(
                old.recurrent_kernel)
            if spec.bias:
                key = keras_weight_key("bias", layer, reverse)
                old_bias = numpy(old.bias)
                if _resets_before_matmul(old):
                    # Row 1 of the correct bias is PyTorch's bias_hh in Keras's gate order.
                    old_bias = bias_rows(old_bias, correct[key][1])
                arrays[key] = old_bias
        return arrays

    if spec.bias:
        variants = [
            ("its bias held bias_ih", lambda old, hh: stack_biases(old, hh)),
            ("its bias held bias_ih + bias_hh", lambda old, hh: stack_biases(old - hh, hh)),
        ]
    else:
        variants = [("no bias", None)]
    tried, best = {}, None
    for variant, bias_rows in variants:
        label = f"{Mistake.WRONG_GRU_VARIANT.value} ({variant})"
        arrays = rebuilt_arrays(bias_rows)
        try:
            check_plan(arrays, targets, "the rebuilt GRU")
        except ConversionError:
            tried[label] = float("inf")
            continue
        write_plan(arrays, targets)
        report = compare(torch_obj, rebuilt, x, initial_state=initial_state, atol=atol, rtol=rtol)
        tried[label] = report.max_abs_error
        if best is None or report.max_abs_error < best[1].max_abs_error:
            best = (variant, report)
        if report.ok:
            break
    try:
        report = compare(torch_obj, keras_obj, x, initial_state=initial_state, atol=atol, rtol=rtol)
    except ConversionError:
        report = None  # converters that refuse reset_after=False cannot run it as it is
    variant, corrected = best if best else ("", None)
    message = SENTENCES[Mistake.WRONG_GRU_VARIANT].format(variant=variant)
    if corrected is None or not corrected.ok:
        message += " Rebuilt that way the outputs still differ, so there is another mistake too."
    return Diagnosis(Mistake.WRONG_GRU_VARIANT, message, variant, report, corrected, tried)


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def diagnose(torch_obj, keras_obj, x, initial_state=None, atol=None, rtol=None):
    """Names the known mistake that explains why a hand copy fails `assert_parity`.

    Each known mistake is undone on a copy of the Keras weights (in a fresh
    Keras object of the same architecture; the user's objects are not
    written) and `parity.compare` is run on the result; the first mistake
    whose correction gives parity is named. The PyTorch module is taken as
    the truth.

    Args:
        torch_obj: the PyTorch module the weights came from (a recurrent cell
            or layer, or `nn.Linear`).
        keras_obj: the Keras object they were copied into by hand.
        x, initial_state: as for `parity.compare`.
        atol, rtol: the tolerance; `parity.default_tolerance` of the weights'
            dtype when not given.

    Returns:
        A `Diagnosis`: `mistake` is a `Mistake` (`"none"` when parity already
        holds, `"unknown"` when no known mistake explains the difference),
        `message` a sentence saying what to fix.

    Example:

    >>> gru = torch.nn.GRU(3, 4)
    >>> layer = keras.layers.GRU(4, return_sequences=True)
    >>> layer.build((None, None, 3))
    >>> w = {n: p.detach().numpy() for n, p in gru.named_parameters()}
    >>> layer.set_weights([w["weight_ih_l0"].T, w["weight_hh_l0"].T,   # gates not reordered
    ...                    np.stack([w["bias_ih_l0"], w["bias_hh_l0"]])])
    >>> diagnose(gru, layer, np.ones((5, 2, 3), "float32")).mistake
    <Mistake.GRU_GATES_SWAPPED: 'gru_gates_swapped'>
    """
    from parity import models
    from parity.convert import keras_side, torch_side

    if models.is_whole_model(torch_obj) or models.is_whole_model(keras_obj):
        raise ConversionError(
            f"diagnose takes one layer (or one stack) per side; for whole models, "
            f"diagnose each pair of layers. Received: {type(torch_obj).__name__} and "
            f"{type(keras_obj).__name__}"
        )
    tside = torch_side(torch_obj)
    tolerance = default_tolerance(tside.spec.dtype)
    atol = tolerance["atol"] if atol is None else atol
    rtol = tolerance["rtol"] if rtol is None else rtol
    # A PyTorch GRU computes reset_after=True (`KerasGRU` on the torch side computes False).
    torch_resets_after = getattr(tside.spec, "reset_after", True)
    if (isinstance(tside.spec, recurrent.RecurrentSpec) and torch_resets_after
            and _reset_after_false_cells(keras_obj)):
        return _diagnose_gru_variant(torch_obj, keras_obj, x, initial_state, atol, rtol)

    report = compare(torch_obj, keras_obj, x, initial_state=initial_state, atol=atol, rtol=rtol)
    if report.ok:
        return Diagnosis(Mistake.NONE, SENTENCES[Mistake.NONE], "", report)
    kside = keras_side(keras_obj)
    arrays = kside.arrays()
    scratch = _fresh_keras(kside.spec)
    targets = keras_side(scratch).targets
    tried, closest = {}, None
    for correction in _corrections(tside):
        corrected_arrays = correction.fix(arrays)
        try:
            check_plan(corrected_arrays, targets, "the corrected copy")
        except ConversionError:
            continue  # this mistake is impossible with these shapes
        write_plan(corrected_arrays, targets)
        corrected = compare(torch_obj, scratch, x, initial_state=initial_state,
                            atol=atol, rtol=rtol)
        tried[correction.label] = corrected.max_abs_error
        if corrected.ok:
            message = SENTENCES[correction.mistake].format(variant=correction.variant)
            return Diagnosis(correction.mistake, message, correction.variant, report,
                             corrected, tried)
        if closest is None or corrected.max_abs_error < closest[1]:
            closest = (correction.label, corrected.max_abs_error)
    if closest is None:
        message = f"No known mistake applies to {tside.spec}, so none explains the difference."
    else:
        message = SENTENCES[Mistake.UNKNOWN].format(variant=closest[0], error=closest[1])
    return Diagnosis(Mistake.UNKNOWN, message, "", report, None, tried)
