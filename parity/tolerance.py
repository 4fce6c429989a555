"""The one tolerance helper: every comparison in `parity` and its tests goes here.

An element passes when `|actual - expected| <= atol + rtol * |expected|`
(numpy's `allclose` rule, `expected` being the PyTorch side). NaN passes
only where both sides are NaN, and an infinity only where both sides hold
the same infinity: a NaN on one side is a mismatch, never a pass.
"""

import dataclasses

import numpy as np

from parity.dtypes import dtype_name

# Exactness standards of the project (DEVELOPERS.md). float32 LSTM/GRU
# outputs measured ~1e-7 apart at seq_len 1000, so 1e-5 has a wide margin.
TOLERANCES = {"float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10)}


def default_tolerance(dtype):
    """`{"atol": ..., "rtol": ...}` for `dtype` (`"float32"` or `"float64"`)."""
    atol, rtol = TOLERANCES[dtype_name(dtype)]
    return {"atol": atol, "rtol": rtol}


class DiffSummary:
    """The largest errors over a report's `OutputDiff`s (the ones `_diffs()` gives)."""

    def _diffs(self):
        raise NotImplementedError

    @property
    def max_abs_error(self):
        return max((d.max_abs_error for d in self._diffs()), default=0.0)

    @property
    def max_rel_error(self):
        return max((d.max_rel_error for d in self._diffs()), default=0.0)


@dataclasses.dataclass
class OutputDiff:
    """How far one output is from its reference.

    Attributes:
        name: the output path, e.g. `"h_n"`.
        shape: the shape compared (or both shapes when they differ).
        max_abs_error: `max |actual - expected|` (inf on a NaN/inf mismatch).
        max_rel_error: `max |actual - expected| / max(|expected|, atol)`.
        worst_index: the index of the element furthest outside the tolerance
            (or of the largest error when all pass).
        nan_mismatches: elements that are NaN on exactly one side.
        ok: whether every element is within tolerance.
    """

    name: str
    shape: tuple
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple
    nan_mismatches: int
    ok: bool
    actual_at_worst: float = float("nan")
    expected_at_worst: float = float("nan")
    note: str = ""


def diff_arrays(name, actual, expected, atol, rtol):
    """Compares `actual` with `expected` element by element; returns an `OutputDiff`."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return OutputDiff(
            name, (actual.shape, expected.shape), float("inf"), float("inf"), (), 0,
            False, note=f"shape {actual.shape} vs expected {expected.shape}",
        )
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    nan_mismatch = a_nan != e_nan
    same_special = (a_nan & e_nan) | (np.isinf(a) & (a == e))
    with np.errstate(invalid="ignore"):
        err = np.where(same_special, 0.0, np.abs(a - e))
    err = np.where(np.isnan(err), np.inf, err)
    scale = np.where(np.isfinite(e), np.abs(e), 0.0)
    allowed = atol + rtol * scale
    excess = err - allowed
    if err.size == 0:
        return OutputDiff(name, actual.shape, 0.0, 0.0, (), 0, True, note="empty")
    worst = np.unravel_index(int(np.argmax(excess)), err.shape)
    rel = err / np.maximum(scale, atol if atol > 0 else np.finfo(np.float64).tiny)
    return OutputDiff(
        name=name,
        shape=actual.shape,
        max_abs_error=float(err.max()),
        max_rel_error=float(rel.max()),
        worst_index=tuple(int(i) for i in worst),
        nan_mismatches=int(nan_mismatch.sum()),
        ok=bool(np.all(excess <= 0)),
        actual_at_worst=float(a[worst]),
        expected_at_worst=float(e[worst]),
    )


def assert_allclose_named(name, actual, expected, atol, rtol):
    """`diff_arrays`, raising `AssertionError` with the output path when it fails."""
    d = diff_arrays(name, actual, expected, atol, rtol)
    if not d.ok:
        raise AssertionError(
            f"{name}{list(d.worst_index)}: max abs diff {d.max_abs_error:.3g} > "
            f"atol {atol:g} + rtol {rtol:g} * |expected| ({d.note or ''}"
            f"actual {d.actual_at_worst!r}, expected {d.expected_at_worst!r})"
        )
    return d


def render_table(rows):
    """Left-aligned columns, a dashed line under the first (header) row."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def diff_table(diffs, first_column="output"):
    """The lines of a table of `OutputDiff`s, as reports print them."""
    rows = [(first_column, "shape", "max abs err", "max rel err", "worst at", "ok")]
    for d in diffs:
        rows.append((
            d.name,
            str(d.shape),
            f"{d.max_abs_error:.3g}",
            f"{d.max_rel_error:.3g}",
            str(list(d.worst_index)) + (f" {d.note}" if d.note else "")
            + (f" NaN mismatches: {d.nan_mismatches}" if d.nan_mismatches else ""),
            "yes" if d.ok else "NO",
        ))
    return render_table(rows)
