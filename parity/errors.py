"""The two errors `parity` raises.

`ConversionError` is a `ValueError`: the source cannot be converted, or the
destination does not match it. It is raised before anything is written.
`ParityError` is an `AssertionError`: both sides were run and their outputs
differ by more than the tolerance.
"""


class ConversionError(ValueError):
    """A layer, option or weight that cannot be converted (nothing was written)."""


class ParityError(AssertionError):
    """Two converted objects computed different numbers.

    Attributes:
        report: the `ParityReport` that failed.
    """

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report
