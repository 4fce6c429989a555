"""The dtypes `parity` converts, and reading them off either framework."""

SUPPORTED_DTYPES = ("float32", "float64")


def dtype_name(dtype):
    """`torch.float32`, `"float32"`, `np.float32` -> `"float32"`."""
    name = getattr(dtype, "name", None)
    if isinstance(name, str):
        return name
    return str(dtype).replace("torch.", "")


def single_dtype(dtypes, where, error):
    """The one supported dtype among `dtypes`, or `error` naming what was found."""
    names = sorted({dtype_name(d) for d in dtypes})
    if len(names) != 1 or names[0] not in SUPPORTED_DTYPES:
        raise error(
            f"{where}: all weights must share one dtype out of {SUPPORTED_DTYPES}. "
            f"Received: dtypes={names}"
        )
    return names[0]
