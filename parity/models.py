"""Whole models: layer-by-layer weight copies, and `Sequential` <-> `nn.Sequential`.

A whole model is matched as an ordered list of weight-bearing units:

- PyTorch: the supported modules in registration order (`named_modules()`),
  e.g. `emb`, `rnn`, `fc` for the notes' model;
- Keras: the weight-bearing layers in layer order (nested models flattened,
  `TorchRNN` and `Bidirectional` kept whole).

A PyTorch recurrent module with `num_layers=N` pairs with one `TorchRNN` or
with N consecutive Keras recurrent layers. Every pair is checked (type,
architecture, every weight's shape and dtype) before anything is written;
any mismatch raises one `ConversionError` that prints both sides as a table.
"""

import collections

import keras
import torch

from parity import recurrent, weightless
from parity.errors import ConversionError
from parity.plan import is_keras, is_torch, write_plan
from parity.registry import PLAIN, lookup_type
from parity.stacked import TorchRNN
from parity.tolerance import render_table
from parity.torch_modules import OUTPUT_MODULES, Masking, MaskedSequential, StatefulRNN

# -- what is a whole model ----------------------------------------------------


def _is_keras_recurrent_unit(layer):
    found = lookup_type(layer)
    return (
        isinstance(layer, (keras.layers.Bidirectional, TorchRNN))
        or (found is not None and found[1] in ("layer", "cell") and isinstance(layer, keras.layers.Layer))
    )


def _is_recurrent_stack(model):
    """A `keras.Sequential` of recurrent layers (and `Dropout`): one PyTorch module."""
    layers = list(model.layers)
    return (
        isinstance(model, keras.Sequential)
        and any(_is_keras_recurrent_unit(l) for l in layers)
        and all(_is_keras_recurrent_unit(l) or isinstance(l, keras.layers.Dropout) for l in layers)
    )


def is_whole_model(obj):
    """True for a container of layers rather than one convertible layer (or stack)."""
    if is_torch(obj):
        if isinstance(obj, StatefulRNN):
            return False
        return lookup_type(obj) is None and any(True for _ in obj.children())
    if isinstance(obj, TorchRNN) or not isinstance(obj, keras.Model):
        return False
    return not _is_recurrent_stack(obj)


# -- units ---------------------------------------------------------------------


def _describe(obj):
    from parity.convert import side_of

    try:
        return str(side_of(obj).spec)
    except ConversionError:
        return "(not convertible, see status)"


def torch_units(model):
    """`[(name, module)]`: supported weight-bearing modules in registration order."""
    units = []
    covered = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in covered):
            continue
        if lookup_type(module) is not None:
            units.append((name, module))
            covered.append(name)
        elif any(True for _ in module.parameters(recurse=False)):
            raise ConversionError(
                f"{type(model).__name__}: module {name!r} ({type(module).__name__}) has "
                f"weights but is not a layer parity converts. Received: "
                f"{type(module).__module__}.{type(module).__name__}"
            )
    return units


def _keras_layers_flat(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model) and not isinstance(layer, TorchRNN):
            yield from _keras_layers_flat(layer)
        else:
            yield layer


def keras_units(model):
    """`[(name, layer)]`: weight-bearing layers in layer order."""
    units = []
    for layer in _keras_layers_flat(model):
        if not layer.weights and layer.built:
            continue
        found = lookup_type(layer)
        if not (_is_keras_recurrent_unit(layer) or (found is not None and found[1] == "plain")):
            if not layer.weights:
                continue
            raise ConversionError(
                f"{type(model).__name__} {model.name!r}: layer {layer.name!r} "
                f"({type(layer).__name__}) has weights but is not a layer parity "
                f"converts. Received: {type(layer).__module__}.{type(layer).__name__}"
            )
        units.append((layer.name, layer))
    return units


def _keras_slots_needed(module):
    """How many consecutive plain Keras recurrent layers one torch unit takes."""
    if isinstance(module, torch.nn.RNNBase):
        return module.num_layers
    return 1


def pair_units(t_units, k_units, mapping=None):
    """`[(torch_name, module, keras_names, keras_obj)]`, plus the unpaired leftovers.

    Returns:
        `(pairs, unpaired_torch, unpaired_keras)`.
    """
    mapping = dict(mapping or {})
    by_name = dict(k_units)
    unknown = [n for names in mapping.values()
               for n in ([names] if isinstance(names, str) else names) if n not in by_name]
    unknown += [f"torch:{n}" for n in mapping if n not in dict(t_units)]
    if unknown:
        raise ConversionError(
            f"mapping names layers that do not exist (torch units: "
            f"{[n for n, _ in t_units]}; keras units: {list(by_name)}). "
            f"Received: {unknown}"
        )
    mapped = {n for names in mapping.values() for n in ([names] if isinstance(names, str) else names)}
    pool = [(n, l) for n, l in k_units if n not in mapped]
    pairs, unpaired_torch = [], []
    for t_name, module in t_units:
        if t_name in mapping:
            names = mapping[t_name]
            names = [names] if isinstance(names, str) else list(names)
            layers = [by_name[n] for n in names]
            pairs.append((t_name, module, names, layers[0] if len(layers) == 1 else layers))
            continue
        if not pool:
            unpaired_torch.append((t_name, module))
            continue
        k_name, layer = pool[0]
        needed = _keras_slots_needed(module)
        plain_recurrent = (
            _is_keras_recurrent_unit(layer) and not isinstance(layer, TorchRNN)
            and lookup_type(layer) is not None and lookup_type(layer)[1] != "cell"
        ) or isinstance(layer, keras.layers.Bidirectional)
        if needed > 1 and plain_recurrent:
            group = pool[:needed]
            pool = pool[needed:]
            pairs.append((t_name, module, [n for n, _ in group], [l for _, l in group]))
        else:
            pool = pool[1:]
            pairs.append((t_name, module, [k_name], layer))
    return pairs, unpaired_torch, pool


def _table(rows):
    return "\n".join(render_table([("#", "torch", "keras", "status"), *rows]))


def copy_model_weights(src, dst, mapping=None):
    """Copies a whole model's weights layer by layer, all checked before any write.

    Args:
        src, dst: a torch model and a Keras model, either order.
        mapping: `{torch module name: Keras layer name or [names]}` for pairs
            that the order does not give; the rest pair in order.

    Returns:
        `dst`.

    Raises:
        ConversionError: with a table of both sides and each pair's status.
    """
    from parity.convert import prepare_copy

    if is_torch(src) and is_keras(dst):
        torch_model, keras_model, to_keras_side = src, dst, True
    elif is_keras(src) and is_torch(dst):
        torch_model, keras_model, to_keras_side = dst, src, False
    else:
        raise ConversionError(
            f"copy_weights copies between a PyTorch and a Keras model. "
            f"Received: {type(src).__name__} and {type(dst).__name__}"
        )
    t_units = torch_units(torch_model) if is_whole_model(torch_model) else [("", torch_model)]
    k_units = (keras_units(keras_model) if isinstance(keras_model, keras.Model)
               and not isinstance(keras_model, TorchRNN) else [(keras_model.name, keras_model)])
    pairs, lone_torch, lone_keras = pair_units(t_units, k_units, mapping)
    rows, plans, problems = [], [], []
    for i, (t_name, module, k_names, layer) in enumerate(pairs):
        try:
            if to_keras_side:
                plans.append(prepare_copy(module, layer))
            else:
                plans.append(prepare_copy(layer, module))
            status = "ok"
        except ConversionError as error:
            lines = str(error).splitlines()
            status = "; ".join(l.strip() for l in lines[1:] if not l.startswith("Received:")
                               and not l.strip().startswith(("source:", "destination:")))
            status = status or lines[0]
            problems.append(f"{t_name} -> {', '.join(k_names)}")
        keras_desc = ", ".join(k_names) + ": " + _describe(layer)
        rows.append((i, f"{t_name or type(module).__name__}: {_describe(module)}", keras_desc, status))
    for t_name, module in lone_torch:
        rows.append(("-", f"{t_name}: {_describe(module)}", "(nothing left)", "unpaired"))
        problems.append(f"torch {t_name} unpaired")
    for k_name, layer in lone_keras:
        rows.append(("-", "(nothing left)", f"{k_name}: {_describe(layer)}", "unpaired"))
        problems.append(f"keras {k_name} unpaired")
    if problems:
        raise ConversionError(
            f"Cannot copy {type(src).__name__} into {type(dst).__name__}; nothing was "
            f"written:\n{_table(rows)}\nReceived: {len(problems)} mismatched pair(s): "
            f"{'; '.join(problems)}"
        )
    for arrays, targets, _ in plans:
        write_plan(arrays, targets)
    return dst


# -- Sequential <-> nn.Sequential -------------------------------------------------


def _keras_name(name):
    # Keras names may not contain "/"; PyTorch child names never do.
    return name if name and not name[0].isdigit() else f"layer_{name}"


def _keras_recurrent_for_sequential(module, name):
    """A Keras layer for a torch recurrent module inside a Sequential: outputs only."""
    from parity.convert import copy_weights

    spec = recurrent.torch_spec(module)
    return_sequences = getattr(module, "return_sequences", True)
    if spec.num_layers == 1:
        layer = recurrent.keras_layer_class(spec)(
            spec.hidden_size, return_sequences=return_sequences, use_bias=spec.bias,
            dtype=spec.dtype, name=name, **spec.family.keras_kwargs(spec),
        )
        if spec.bidirectional:
            layer = keras.layers.Bidirectional(layer, name=name, dtype=spec.dtype)
        layer.build((None, None, spec.input_size))
    else:
        if not return_sequences:
            raise ConversionError(
                f"{name}: a multi-layer module with return_sequences=False has no "
                f"single Keras layer; split it into one module per layer. "
                f"Received: {module}"
            )
        layer = TorchRNN.from_spec(spec, return_state=False, name=name)
        layer.build((None, None, spec.input_size))
    copy_weights(module, layer)
    return layer


def sequential_to_keras(sequential):
    """`nn.Sequential` -> a built `keras.Sequential` with the same weights.

    Supported children: the converted layers, `nn.Dropout`, `nn.ReLU`,
    `nn.Tanh`, `nn.Sigmoid`, `nn.Softmax(dim=-1)`, `nn.Identity`. Recurrent
    children become Keras layers that return their output sequence (an
    `nn.RNN/LSTM/GRU` inside `nn.Sequential` only runs when it is the
    `parity.torch_modules` kind that returns one tensor). Keras layer names
    are the PyTorch child names (`"0"` becomes `"layer_0"`).
    """
    from parity.convert import copy_weights

    layers, first = [], None
    for name, child in sequential.named_children():
        keras_name = _keras_name(name)
        found = lookup_type(child)
        if found is None:
            layers.append(weightless.torch_to_keras(child, keras_name))
            continue
        family, role = found
        if (role == "plain" and family is PLAIN.get("embedding") and first is None
                and getattr(sequential, "mask_kind", None) == "zero_index"):
            layer = family.build_keras(family.torch_spec(child), name=keras_name,
                                       initialize=False)  # copy_weights fills it
            layer.mask_zero = layer.supports_masking = True  # as Embedding(mask_zero=True) sets them
            copy_weights(child, layer)
            first = (role, family, child)
            layers.append(layer)
            continue
        if role == "cell":
            raise ConversionError(
                f"nn.Sequential: child {name!r} is a cell, which takes a state per "
                f"step and cannot be chained. Received: {type(child).__name__}"
            )
        if role == "layer":
            layer = _keras_recurrent_for_sequential(child, keras_name)
        else:
            layer = family.build_keras(family.torch_spec(child), name=keras_name,
                                       initialize=False)  # copy_weights fills it
            copy_weights(child, layer)
        if first is None:
            first = (role, family, child)
        layers.append(layer)
    if first is None:
        raise ConversionError(
            f"nn.Sequential has no layer with weights, so its input shape is "
            f"unknown. Received: {sequential}"
        )
    role, family, child = first
    dtype = str(next(child.parameters()).dtype).replace("torch.", "")
    if family is PLAIN.get("embedding"):
        inputs = keras.Input((None,), dtype="int32")
    elif role == "layer":
        inputs = keras.Input((None, child.input_size), dtype=dtype)
    else:
        inputs = keras.Input((child.in_features,), dtype=dtype)
    model = keras.Sequential([inputs, *layers])
    return model


def _torch_recurrent_for_sequential(layer):
    """A torch module that returns what a Keras recurrent layer in a Sequential returns."""
    if isinstance(layer, TorchRNN):
        if layer.return_state:
            raise ConversionError(
                f"TorchRNN {layer.name!r}: returns states, so it cannot sit in a "
                f"Sequential. Received: return_state=True"
            )
        return_sequences = True
    else:
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if inner.return_state:
            raise ConversionError(
                f"{type(layer).__name__} {layer.name!r}: return_state=True returns a "
                f"list, which a Sequential cannot pass on. Received: return_state=True"
            )
        return_sequences = inner.return_sequences
    return _output_module(recurrent.keras_structure(layer).spec, return_sequences)


def _output_module(spec, return_sequences=True):
    """A fresh `parity.torch_modules` module (`batch_first=True`) for `spec`."""
    native = spec.family.torch_native(spec)
    module = OUTPUT_MODULES[spec.kind, native](
        spec.input_size, spec.hidden_size, num_layers=spec.num_layers, bias=spec.bias,
        batch_first=True, dropout=spec.dropout, bidirectional=spec.bidirectional,
        return_sequences=return_sequences,
        **(spec.family.torch_kwargs(spec) if native else spec.family.keras_kwargs(spec)),
    )
    return module.to(getattr(torch, spec.dtype))


def sequential_to_torch(model):
    """`keras.Sequential` -> `nn.Sequential(OrderedDict(layer name -> module))`.

    Recurrent layers become `parity.torch_modules` modules (`batch_first=True`,
    returning what the Keras layer returns); weightless layers their
    `nn` twins. A model whose first layer makes a mask (`Masking`,
    `Embedding(mask_zero=True)`) becomes a `parity.torch_modules.MaskedSequential`,
    which packs every recurrent layer's input by the same mask. Only `keras.Sequential` converts this way: for functional
    or subclassed models, build the torch model and use `copy_weights`.
    """
    from parity.convert import copy_weights

    if not isinstance(model, keras.Sequential):
        raise ConversionError(
            f"{type(model).__name__} {model.name!r}: to_torch converts keras.Sequential "
            f"models; for functional or subclassed models build the torch model and "
            f"call parity.copy_weights. Received: {type(model).__name__}"
        )
    children = collections.OrderedDict()
    layers = [l for l in _keras_layers_flat(model) if not isinstance(l, keras.layers.InputLayer)]
    mask_kind, mask_value = None, 0.0
    for position, layer in enumerate(layers):
        makes_mask = (isinstance(layer, keras.layers.Masking)
                      or (isinstance(layer, keras.layers.Embedding) and layer.mask_zero))
        if makes_mask and position != 0:
            raise ConversionError(
                f"{type(layer).__name__} {layer.name!r}: a mask made after the first layer "
                f"is not converted (the PyTorch side derives lengths from the model's "
                f"input). Received: a mask-making layer at position {position}"
            )
        if makes_mask:
            mask_kind = "mask_value" if isinstance(layer, keras.layers.Masking) else "zero_index"
            mask_value = float(getattr(layer, "mask_value", 0.0))
    for layer in layers:
        if isinstance(layer, keras.layers.Masking):
            children[layer.name] = Masking(layer.mask_value)
            continue
        if _is_keras_recurrent_unit(layer) and not (lookup_type(layer) or (0, ""))[1] == "cell":
            module = _torch_recurrent_for_sequential(layer)
            copy_weights(layer, module)
        elif (lookup_type(layer) or (0, ""))[1] == "plain":
            from parity.convert import to_torch

            module = to_torch(layer)
        else:
            module = weightless.keras_to_torch(layer)
            if module is None:
                continue
        children[layer.name] = module
    if mask_kind is not None:
        return MaskedSequential(children, mask_kind=mask_kind, mask_value=mask_value)
    return torch.nn.Sequential(children)


def torch_model_from_specs(named_specs):
    """Fresh `nn.Sequential(OrderedDict(prefix -> module))` for inferred layer specs.

    `state_dict()` keys are `f"{prefix}.{weight}"`; recurrent modules are
    `batch_first=True` and return their output sequence only, so the model runs.

    Args:
        named_specs: `[(prefix, RecurrentSpec | PlainSpec)]` in order.
    """
    children = collections.OrderedDict()
    for prefix, spec in named_specs:
        if isinstance(spec, recurrent.RecurrentSpec):
            if spec.cell:
                raise ConversionError(
                    f"{prefix}: a cell cannot be chained in a Sequential. Received: {spec}"
                )
            module = _output_module(spec)
        else:
            module = PLAIN[spec.kind].build_torch(spec)
        children[prefix] = module
    return torch.nn.Sequential(children)
