"""parity: exact PyTorch <-> Keras 3 converters for recurrent networks.

Public API:
    to_keras(torch_module)              -> a new, built Keras object
    to_torch(keras_obj)                 -> a new torch module
    copy_weights(src, dst)              -> copies between existing objects
    compare(torch_obj, keras_obj, x)    -> ParityReport
    assert_parity(torch_obj, keras_obj, x, atol=1e-5, rtol=1e-5)
    compare(..., lengths=...)           -> variable-length sequences (PackedSequence <-> mask)
    compare_gradients(torch_obj, keras_obj, x, y, loss) -> GradientReport
    diagnose(torch_obj, keras_obj, x)   -> Diagnosis: which hand-copy mistake explains a mismatch
    ConversionError (ValueError), ParityError (AssertionError)
    TorchRNN: the Keras model for stacked / bidirectional PyTorch RNNs.
"""

from parity import dense, embedding, gru, lstm, simple_rnn
from parity.registry import register_plain, register_recurrent

# The registry, filled explicitly: one line per layer family.
register_recurrent(simple_rnn)
register_recurrent(lstm)
register_recurrent(gru)
register_plain(dense)
register_plain(embedding)

from parity.compare import ParityReport, assert_parity, compare  # noqa: E402
from parity.convert import copy_weights, to_keras, to_torch  # noqa: E402
from parity.diagnose import Diagnosis, Mistake, diagnose  # noqa: E402
from parity.errors import ConversionError, ParityError  # noqa: E402
from parity.gradients import GradientReport, assert_gradients, compare_gradients  # noqa: E402
from parity.serving import compile_inference  # noqa: E402
from parity.stacked import TorchRNN  # noqa: E402
from parity.tolerance import default_tolerance  # noqa: E402

__all__ = [
    "ConversionError",
    "Diagnosis",
    "GradientReport",
    "Mistake",
    "ParityError",
    "ParityReport",
    "TorchRNN",
    "assert_gradients",
    "assert_parity",
    "compare",
    "compare_gradients",
    "compile_inference",
    "copy_weights",
    "default_tolerance",
    "diagnose",
    "to_keras",
    "to_torch",
]
