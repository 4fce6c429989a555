"""Architecture inference: which layers a bag of weights describes.

A checkpoint that holds only weights (a PyTorch `state_dict`, a Keras
`.weights.h5`) still pins down almost everything about the layers it came
from. This module reads that architecture back as the specs the rest of
`parity` builds from: `RecurrentSpec` for RNN/LSTM/GRU, `PlainSpec` for
Linear/Embedding.

From a PyTorch `state_dict` (`infer_layers`):

- keys are grouped by module prefix, in order of first appearance:
  `emb.weight`, `rnn.weight_ih_l0`, `fc.weight` -> `emb`, `rnn`, `fc`
  (a bare layer's keys have the prefix `""`);
- a recurrent group is recognised by its names (`weight_ih_l{k}`,
  `weight_hh_l{k}`, `bias_ih_l{k}`, `bias_hh_l{k}`, `_reverse`); its type
  comes from the gate multiple `weight_hh.shape[0] / hidden_size` (1: RNN,
  3: GRU, 4: LSTM), `input_size` from `weight_ih_l0`, `num_layers` from the
  largest `l{k}`, `bidirectional` from `_reverse`, `bias` from the bias keys;
  the RNN `nonlinearity` is not in the weights and is an option (tanh);
- `{weight (out, in), bias (out,)}` is a Linear; a lone 2-D `weight` is a
  bias-free Linear or an Embedding, decided by `weight_only_kind`.

From Keras variables (`keras_recurrent_slot`, `keras_recurrent_spec`): the
same facts read off `kernel (in, G*units)`, `recurrent_kernel (units,
G*units)` and `bias`.

Every group's weights are then checked against the module the spec builds
(on PyTorch's `meta` device, so nothing is allocated): all missing,
unexpected and misshapen weights are reported in one error.

Example:

>>> sd = torch.nn.LSTM(3, 5, num_layers=2).state_dict()
>>> infer_layers(sd)
[('', RecurrentSpec(kind='lstm', input_size=3, hidden_size=5, num_layers=2, ...))]
"""

import re

import torch

from parity import recurrent
from parity.dtypes import single_dtype
from parity.errors import ConversionError
from parity.naming import TORCH_RECURRENT_WEIGHTS, slot_label
from parity.plain import PlainSpec
from parity.registry import PLAIN, RECURRENT
from parity.transforms import TORCH_GATES

# Gates per hidden unit, derived from the gate orders: {1: "rnn", 4: "lstm", 3: "gru"}.
# Keras packs the same number of gates (`KERAS_GATES`), so one table serves both.
KIND_BY_GATE_MULTIPLE = {len(gates): kind for kind, gates in TORCH_GATES.items()}

NONLINEARITIES = ("tanh", "relu")

# `weight_ih_l1_reverse` -> ("weight_ih", "1", "_reverse"); a cell's `weight_ih` -> ("weight_ih", None, None).
_RECURRENT_KEY = re.compile(
    r"(?P<weight>" + "|".join(TORCH_RECURRENT_WEIGHTS) + r")"
    r"(?:_l(?P<layer>\d+)(?P<reverse>_reverse)?)?"
)
# LSTM projection weights (`proj_size > 0`), refused by name so the message says why.
_PROJECTION_KEY = re.compile(r"weight_hr_l\d+(?:_reverse)?")

# The last name component of an Embedding's prefix: `emb`, `embed`, `embedding`, `embeddings`, ...
EMBEDDING_NAME = re.compile(r"emb\w*", re.IGNORECASE)

SUPPORTED_MODULES = (
    "nn.RNN, nn.LSTM, nn.GRU (and their cells), nn.Linear, nn.Embedding"
)


def split_key(key):
    """`"encoder.rnn.weight_ih_l0"` -> `("encoder.rnn", "weight_ih_l0")`; `"weight"` -> `("", "weight")`."""
    prefix, _, leaf = key.rpartition(".")
    return prefix, leaf


def join_key(prefix, leaf):
    """The inverse of `split_key`."""
    return f"{prefix}.{leaf}" if prefix else leaf


def group_by_prefix(state_dict):
    """`[(prefix, {leaf: tensor})]` in order of each prefix's first key.

    Example:

    >>> group_by_prefix({"emb.weight": a, "rnn.weight_ih_l0": b, "rnn.weight_hh_l0": c})
    [('emb', {'weight': a}), ('rnn', {'weight_ih_l0': b, 'weight_hh_l0': c})]
    """
    groups = {}
    for key, value in state_dict.items():
        prefix, leaf = split_key(key)
        groups.setdefault(prefix, {})[leaf] = value
    return list(groups.items())


def describe_prefix(prefix):
    """How messages and tables name a group: `'rnn'`, or `(no prefix)` for a bare layer."""
    return repr(prefix) if prefix else "(no prefix)"


def _shape(value):
    return tuple(int(n) for n in value.shape)


def _listing(tensors):
    return ", ".join(f"{leaf} {_shape(v)}" for leaf, v in tensors.items())


# --------------------------------------------------------------------------
# Recurrent groups
# --------------------------------------------------------------------------


def _is_recurrent_group(tensors):
    return all(
        _RECURRENT_KEY.fullmatch(leaf) or _PROJECTION_KEY.fullmatch(leaf) for leaf in tensors
    ) and any(leaf.startswith("weight_hh") for leaf in tensors)


def _gate_kind(gate_rows, hidden_size, where, received):
    multiple, remainder = divmod(gate_rows, hidden_size) if hidden_size else (0, 1)
    kind = KIND_BY_GATE_MULTIPLE.get(multiple) if remainder == 0 else None
    if kind is None:
        raise ConversionError(
            f"{where}: the recurrent weights hold {gate_rows} gate rows for hidden "
            f"size {hidden_size}; an RNN has 1x, a GRU 3x and an LSTM 4x the hidden "
            f"size. Received: {received}"
        )
    return kind


def check_nonlinearity(nonlinearity):
    """`nonlinearity` when it is an activation `nn.RNN` has (tanh, relu), else an error."""
    if nonlinearity not in NONLINEARITIES:
        raise ConversionError(
            f"nonlinearity must be one of {NONLINEARITIES}. Received: "
            f"nonlinearity={nonlinearity!r}"
        )
    return nonlinearity


def _recurrent_spec(tensors, nonlinearity, where):
    projections = [leaf for leaf in tensors if _PROJECTION_KEY.fullmatch(leaf)]
    if projections:
        raise ConversionError(
            f"{where}: {projections[0]} is the projection of an LSTM with "
            f"proj_size > 0, which has no Keras equivalent yet. Received: "
            f"{_listing(tensors)}"
        )
    slots = {}
    for leaf in tensors:
        match = _RECURRENT_KEY.fullmatch(leaf)
        layer = None if match["layer"] is None else int(match["layer"])
        slots.setdefault((layer, bool(match["reverse"])), set()).add(match["weight"])
    cell = (None, False) in slots
    if cell and len(slots) > 1:
        raise ConversionError(
            f"{where}: mixes a cell's names (weight_ih) with a layer's "
            f"(weight_ih_l0). Received: {_listing(tensors)}"
        )
    first = "" if cell else "_l0"
    if f"weight_hh{first}" not in tensors or f"weight_ih{first}" not in tensors:
        raise ConversionError(
            f"{where}: a recurrent layer needs weight_ih{first} and weight_hh{first} "
            f"to read its sizes. Received: {_listing(tensors)}"
        )
    weight_hh = tensors[f"weight_hh{first}"]
    weight_ih = tensors[f"weight_ih{first}"]
    if len(weight_hh.shape) != 2 or len(weight_ih.shape) != 2:
        raise ConversionError(
            f"{where}: weight_ih{first} and weight_hh{first} must be 2-D. Received: "
            f"{_listing(tensors)}"
        )
    hidden_size = _shape(weight_hh)[1]
    kind = _gate_kind(_shape(weight_hh)[0], hidden_size, where, _listing(tensors))
    layers = [layer for layer, _ in slots] if not cell else [0]
    dtype = single_dtype([v.dtype for v in tensors.values()], where, ConversionError)
    return recurrent.RecurrentSpec(
        kind=kind,
        input_size=_shape(weight_ih)[1],
        hidden_size=hidden_size,
        num_layers=max(layers) + 1,
        bidirectional=any(reverse for _, reverse in slots),
        bias=any(leaf.startswith("bias") for leaf in tensors),
        activation=check_nonlinearity(nonlinearity) if kind == "rnn" else "tanh",
        dtype=dtype,
        cell=cell,
    )


# --------------------------------------------------------------------------
# Plain groups: Linear and Embedding
# --------------------------------------------------------------------------


def _is_plain_group(tensors):
    if set(tensors) not in ({"weight"}, {"weight", "bias"}):
        return False
    weight = tensors["weight"]
    if len(weight.shape) != 2:
        return False
    bias = tensors.get("bias")
    return bias is None or _shape(bias) == (_shape(weight)[0],)


def weight_only_kind(prefix, weight_shape, index, following, embedding=(), linear=()):
    """`"embedding"` or `"dense"` for a group holding only a 2-D `weight`.

    `nn.Embedding(num, dim)` and `nn.Linear(in, out, bias=False)` both save
    just `weight`. The rules, first match wins:

    1. `prefix` is listed in `embedding` or `linear` (the CLI's
       `--embedding PREFIX` / `--linear PREFIX`);
    2. the last component of the prefix starts with `emb` (`emb`, `embed`,
       `embeddings`; not `tok_emb`) -> Embedding;
    3. the next group is a recurrent layer (or a Linear) whose input size is
       `weight.shape[1]` and not `weight.shape[0]` -> Embedding (its output
       is `embedding_dim`); `weight.shape[0]` and not `[1]` -> Linear;
    4. the group is not the first one -> Linear (an Embedding takes indices,
       so only the first layer of a stack can be one);
    5. otherwise it is ambiguous and a `ConversionError` asks for rule 1.

    Args:
        prefix: the group's module prefix (`""` for a bare layer).
        weight_shape: `weight.shape`.
        index: the group's position among all groups.
        following: the next group's spec, or `None`.
        embedding, linear: prefixes forced to one kind.
    """
    if prefix in embedding and prefix in linear:
        raise ConversionError(
            f"Layer {describe_prefix(prefix)} is listed both as an Embedding and as "
            f"a Linear. Received: embedding={list(embedding)}, linear={list(linear)}"
        )
    if prefix in embedding:
        return "embedding"
    if prefix in linear:
        return "dense"
    if prefix and EMBEDDING_NAME.fullmatch(prefix.rpartition(".")[2]):
        return "embedding"
    rows, columns = weight_shape
    if following is not None:
        following_input = following.input_size
        if following_input == columns and following_input != rows:
            return "embedding"
        if following_input == rows and following_input != columns:
            return "dense"
    if index > 0:
        return "dense"
    flag = prefix if prefix else "''"
    raise ConversionError(
        f"Layer {describe_prefix(prefix)}: a lone 2-D weight {tuple(weight_shape)} is "
        f"either nn.Embedding({rows}, {columns}) or nn.Linear({columns}, {rows}, "
        f"bias=False), and neither its name nor its neighbours decide. Say which "
        f"with --embedding {flag} or --linear {flag} (embedding=/linear= in Python). "
        f"Received: weight shape {tuple(weight_shape)}, no bias"
    )


def _plain_spec(kind, tensors, where):
    rows, columns = _shape(tensors["weight"])
    dtype = single_dtype([v.dtype for v in tensors.values()], where, ConversionError)
    if kind == "embedding":
        return PlainSpec("embedding", rows, columns, False, dtype)
    return PlainSpec("dense", columns, rows, "bias" in tensors, dtype)


# --------------------------------------------------------------------------
# Checking a group against the module its spec builds
# --------------------------------------------------------------------------


def expected_shapes(spec):
    """`{torch name: shape}` of the module `spec` builds, allocating nothing."""
    with torch.device("meta"):
        if isinstance(spec, recurrent.RecurrentSpec):
            module = recurrent.build_torch(spec)
        else:
            module = PLAIN[spec.kind].build_torch(spec)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def check_group(spec, tensors, where):
    """Raises one `ConversionError` listing every weight that does not fit `spec`."""
    expected = expected_shapes(spec)
    problems = [f"missing {name} {shape}" for name, shape in expected.items()
                if name not in tensors]
    problems += [f"unexpected {leaf} {_shape(v)}" for leaf, v in tensors.items()
                 if leaf not in expected]
    problems += [
        f"{leaf}: expected shape {expected[leaf]}, received {_shape(v)}"
        for leaf, v in tensors.items()
        if leaf in expected and _shape(v) != expected[leaf]
    ]
    if problems:
        raise ConversionError(
            f"{where}: the weights look like {spec} but do not fit it:\n  "
            + "\n  ".join(problems)
            + f"\nReceived: {_listing(tensors)}"
        )


# --------------------------------------------------------------------------
# A whole state_dict
# --------------------------------------------------------------------------


def infer_layers(state_dict, nonlinearity=None, embedding=(), linear=(), source="state_dict"):
    """The ordered layers a PyTorch `state_dict` describes, as `[(prefix, spec)]`.

    Args:
        state_dict: `{name: tensor or array}`, e.g. `module.state_dict()`.
        nonlinearity: `"tanh"` (default) or `"relu"`, for every RNN layer; the
            weights do not record it.
        embedding, linear: prefixes whose lone 2-D `weight` is an Embedding /
            a bias-free Linear (see `weight_only_kind`).
        source: how messages name the state_dict (e.g. the file path).

    Returns:
        `[(prefix, spec)]`, `prefix` without the trailing dot (`""` for a
        bare layer), spec a `RecurrentSpec` or `PlainSpec`.

    Raises:
        ConversionError: a group of keys that forms no supported layer, or
            whose shapes do not fit the layer they name.

    Example:

    >>> model = torch.nn.ModuleDict({"emb": nn.Embedding(50, 8), "rnn": nn.GRU(8, 16)})
    >>> [(p, str(s)) for p, s in infer_layers(model.state_dict())]
    [('emb', 'Embedding(num_embeddings=50, embedding_dim=8, float32)'),
     ('rnn', 'GRU(input_size=8, hidden_size=16, num_layers=1, ...)')]
    """
    nonlinearity = check_nonlinearity(nonlinearity or "tanh")
    if not state_dict:
        raise ConversionError(f"{source}: holds no weights. Received: an empty state_dict")
    groups = group_by_prefix(state_dict)
    unknown = [f"{flag}" for flag in (*embedding, *linear)
               if flag not in {prefix for prefix, _ in groups}]
    if unknown:
        raise ConversionError(
            f"{source}: --embedding/--linear name layers it does not have "
            f"(its layers: {', '.join(describe_prefix(p) for p, _ in groups)}). "
            f"Received: {unknown}"
        )
    # Recurrent and biased groups first, so that a lone weight can look at its neighbour.
    specs = {}
    for prefix, tensors in groups:
        where = f"{source}: layer {describe_prefix(prefix)}"
        if _is_recurrent_group(tensors):
            specs[prefix] = _recurrent_spec(tensors, nonlinearity, where)
        elif _is_plain_group(tensors) and "bias" in tensors:
            specs[prefix] = _plain_spec("dense", tensors, where)
        elif not _is_plain_group(tensors):
            raise ConversionError(
                f"{where}: its weights ({_listing(tensors)}) form no layer parity "
                f"converts (supported: {SUPPORTED_MODULES}). To convert only part "
                f"of the file, select it with --prefix (prefix= in Python). "
                f"Received: keys {[join_key(prefix, leaf) for leaf in tensors]}"
            )
    layers = []
    for index, (prefix, tensors) in enumerate(groups):
        where = f"{source}: layer {describe_prefix(prefix)}"
        spec = specs.get(prefix)
        if spec is None:
            following = specs.get(groups[index + 1][0]) if index + 1 < len(groups) else None
            kind = weight_only_kind(
                prefix, _shape(tensors["weight"]), index, following, embedding, linear
            )
            spec = _plain_spec(kind, tensors, where)
        elif prefix in embedding or prefix in linear:
            raise ConversionError(
                f"{where}: is a {spec}, not a lone weight; --embedding/--linear only "
                f"decide between nn.Embedding and a bias-free nn.Linear. Received: "
                f"{_listing(tensors)}"
            )
        check_group(spec, tensors, where)
        layers.append((prefix, spec))
    return layers


def has_rnn(layers):
    """Whether any of `[(prefix, spec)]` is a plain RNN (where `nonlinearity` applies)."""
    return any(getattr(spec, "kind", None) == "rnn" for _, spec in layers)


# --------------------------------------------------------------------------
# Keras variables
# --------------------------------------------------------------------------


def keras_recurrent_slot(kernel_shape, recurrent_kernel_shape, bias_shape, where):
    """`(kind, input_size, units, use_bias)` of one Keras recurrent cell's variables.

    Args:
        kernel_shape: `(input_size, G * units)`.
        recurrent_kernel_shape: `(units, G * units)`; `G` gives the type.
        bias_shape: `None` without bias; `(G * units,)`, or `(2, 3 * units)`
            for a GRU with `reset_after=True`.
        where: how messages name the cell.
    """
    received = (
        f"kernel {tuple(kernel_shape)}, recurrent_kernel {tuple(recurrent_kernel_shape)}"
        + ("" if bias_shape is None else f", bias {tuple(bias_shape)}")
    )
    if len(kernel_shape) != 2 or len(recurrent_kernel_shape) != 2:
        raise ConversionError(f"{where}: kernels must be 2-D. Received: {received}")
    units, gate_columns = recurrent_kernel_shape
    kind = _gate_kind(gate_columns, units, where, received)
    if kernel_shape[1] != gate_columns:
        raise ConversionError(
            f"{where}: kernel and recurrent_kernel have different gate columns. "
            f"Received: {received}"
        )
    if bias_shape is not None:
        bias_shape = tuple(bias_shape)
        if kind == "gru" and bias_shape == (gate_columns,):
            raise ConversionError(
                f"{where}: a GRU with one bias row is reset_after=False (the Keras 2 "
                f"default), which no PyTorch layer computes. Received: {received}"
            )
        expected = (2, gate_columns) if kind == "gru" else (gate_columns,)
        if bias_shape != expected:
            raise ConversionError(
                f"{where}: expected bias shape {expected} for a "
                f"{RECURRENT[kind].KERAS_LAYER.__name__} of {units} units (a CuDNN "
                f"layer's bias, for one, is laid out differently). Received: {received}"
            )
    return kind, int(kernel_shape[0]), int(units), bias_shape is not None


def keras_recurrent_spec(slots, activation, dtypes, where, cell=False):
    """The `RecurrentSpec` of Keras recurrent layers that form one PyTorch module.

    Args:
        slots: `[(layer, reverse, (kind, input_size, units, use_bias))]` in
            PyTorch's slot order, from `keras_recurrent_slot`; for a cell the
            one slot `(None, False, fields)`.
        activation: the SimpleRNN activation (`"tanh"` or `"relu"`).
        dtypes: the dtypes of every variable.
        where: how messages name the layers.
        cell: a Keras cell, not a layer.
    """
    directions = {reverse for _, reverse, _ in slots}
    num_layers = 1 if cell else max(layer for layer, _, _ in slots) + 1
    kind, input_size, units, use_bias = slots[0][2]
    spec = recurrent.RecurrentSpec(
        kind=kind,
        input_size=input_size,
        hidden_size=units,
        num_layers=num_layers,
        bidirectional=True in directions,
        bias=use_bias,
        activation=check_nonlinearity(activation) if kind == "rnn" else "tanh",
        dtype=single_dtype(dtypes, where, ConversionError),
        cell=cell,
    )
    expected_slots = spec.slots()
    problems = []
    if [(layer, reverse) for layer, reverse, _ in slots] != expected_slots:
        problems.append(
            f"slots {[(l, r) for l, r, _ in slots]} are not {expected_slots}"
        )
    for layer, reverse, fields in slots:
        want = (kind, input_size if not layer else units * spec.num_directions, units,
                use_bias)
        if fields != want:
            problems.append(
                f"{slot_label(layer, reverse)}: (type, input, units, bias) {fields}, "
                f"expected {want}"
            )
    if problems:
        raise ConversionError(
            f"{where}: the recurrent layers do not form one PyTorch module "
            f"({spec}):\n  " + "\n  ".join(problems)
            + f"\nReceived: {len(problems)} problem(s), first: {problems[0]}"
        )
    return spec


def keras_plain_spec(kind, shapes, dtypes, where):
    """`PlainSpec` of a Keras `Dense` (`kernel (in, out)`, `bias`) or `Embedding`."""
    dtype = single_dtype(dtypes, where, ConversionError)
    if kind == "embedding":
        if len(shapes) != 1 or len(shapes[0]) != 2:
            raise ConversionError(
                f"{where}: an Embedding holds one 2-D table. Received: shapes {shapes}"
            )
        return PlainSpec("embedding", int(shapes[0][0]), int(shapes[0][1]), False, dtype)
    kernel = shapes[0]
    if len(kernel) != 2 or len(shapes) > 2 or (len(shapes) == 2 and tuple(shapes[1]) != (kernel[1],)):
        raise ConversionError(
            f"{where}: a Dense holds kernel (in, out) and optionally bias (out,). "
            f"Received: shapes {shapes}"
        )
    return PlainSpec("dense", int(kernel[0]), int(kernel[1]), len(shapes) == 2, dtype)

