"""Weight names, built in one place.

PyTorch: `weight_ih_l{k}` / `weight_hh_l{k}` / `bias_ih_l{k}` / `bias_hh_l{k}`,
with `_reverse` for the backward direction; cells drop the `_l{k}` suffix.
Keras-side keys reuse the same suffix (`kernel_l0_reverse`), so an error
names the same layer and direction on both sides.
"""

# `weight_hr` / `projection_kernel`: projected LSTM (PyTorch's proj_size) only.
TORCH_RECURRENT_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
KERAS_RECURRENT_WEIGHTS = ("kernel", "recurrent_kernel", "bias", "projection_kernel")


def slot_suffix(layer=None, reverse=False):
    """`""` for a cell, else `_l{layer}` plus `_reverse` for the backward direction."""
    if layer is None:
        return ""
    return f"_l{layer}{'_reverse' if reverse else ''}"


def slot_label(layer=None, reverse=False):
    """Human words for a slot: `layer 1, backward`."""
    if layer is None:
        return "cell"
    return f"layer {layer}, {'backward' if reverse else 'forward'}"


def torch_param_name(weight, layer=None, reverse=False):
    """`torch_param_name("weight_ih", 1, True)` -> `"weight_ih_l1_reverse"`."""
    return f"{weight}{slot_suffix(layer, reverse)}"


def keras_weight_key(weight, layer=None, reverse=False):
    """`keras_weight_key("kernel", 0)` -> `"kernel_l0"`."""
    return f"{weight}{slot_suffix(layer, reverse)}"
