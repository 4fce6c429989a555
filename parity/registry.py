"""The explicit registry of layer families.

`parity/__init__.py` imports each family module by name and registers it
here; registering the same class twice raises. Adding a layer type is one
new module plus one `register_*` line.
"""

# kind ("rnn", "lstm", "gru") -> family module
RECURRENT = {}
# torch or Keras class -> (family module, role), role in {"cell", "layer"}
RECURRENT_TYPES = {}
# kind ("dense", "embedding") -> plain-layer module
PLAIN = {}
# torch or Keras class -> plain-layer module
PLAIN_TYPES = {}


def _claim(table, cls, value):
    if cls in table or cls in RECURRENT_TYPES or cls in PLAIN_TYPES:
        raise ValueError(
            f"{cls.__module__}.{cls.__qualname__} is already registered. "
            f"Received: a second registration for {value}"
        )
    table[cls] = value


def register_recurrent(family):
    """Registers a recurrent family module (see `parity/lstm.py` for its API)."""
    if family.KIND in RECURRENT:
        raise ValueError(
            f"Recurrent kind {family.KIND!r} is already registered. "
            f"Received: {family.__name__}"
        )
    RECURRENT[family.KIND] = family
    for cls, role in (
        (family.TORCH_CELL, "cell"),
        (family.TORCH_LAYER, "layer"),
        (family.KERAS_CELL, "cell"),
        (family.KERAS_LAYER, "layer"),
        (family.TORCH_KERAS_FORMULA, "layer"),
        *getattr(family, "EXTRA_TYPES", ()),
    ):
        _claim(RECURRENT_TYPES, cls, (family, role))


def register_plain(module):
    """Registers a plain (non-recurrent) layer module (see `parity/dense.py`)."""
    if module.KIND in PLAIN:
        raise ValueError(
            f"Layer kind {module.KIND!r} is already registered. Received: {module.__name__}"
        )
    PLAIN[module.KIND] = module
    for cls in (module.TORCH_TYPE, module.KERAS_TYPE):
        _claim(PLAIN_TYPES, cls, module)


def lookup_type(obj):
    """`(family, role)` for a recurrent object, or `(module, "plain")`, or `None`.

    Exact type first, then `isinstance`, so that subclasses (a user's own
    `nn.LSTM` subclass, Keras's `LSTM` subclassing `RNN`) resolve to the most
    specific registered class.
    """
    cls = type(obj)
    if cls in RECURRENT_TYPES:
        return RECURRENT_TYPES[cls]
    if cls in PLAIN_TYPES:
        return PLAIN_TYPES[cls], "plain"
    for registered, value in RECURRENT_TYPES.items():
        if isinstance(obj, registered):
            return value
    for registered, module in PLAIN_TYPES.items():
        if isinstance(obj, registered):
            return module, "plain"
    return None
