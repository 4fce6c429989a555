"""The notes' hello experiments, independent of any framework.

What the Keras models (`keras_rnn.models`, `keras_rnn.train`) and their
PyTorch twins (`keras_rnn.torch_twins`) share: the cell types, the three
models' names, their input forms, the notes' training settings, the
per-epoch line and the record of a run. Importing this module imports neither Keras nor PyTorch.

Example:

>>> NOTES_SETTINGS["cell"]
HelloSettings(learning_rate=0.1, step_reduction='sum')
>>> epoch_line("ohlol", 4, 15, 0.997)
'Predicted string: ohlol, Epoch [4/15] loss: 0.9970'
"""

import argparse
import dataclasses

from keras_rnn import data

CELL_TYPES = ("rnn", "lstm", "gru")
"""Every model comes with a plain RNN, an LSTM or a GRU cell."""

HELLO_MODELS = ("cell", "layer", "embedding")
"""The notes' 3.1 (a cell stepped by hand), 3.2 (one recurrent layer) and
3.3 (embedding, two recurrent layers, linear)."""

SECTIONS = {"cell": "3.1", "layer": "3.2", "embedding": "3.3"}

HELLO_INPUT_FORMS = {"cell": "one_hot", "layer": "one_hot", "embedding": "indices"}
"""Which `keras_rnn.data.hello_arrays` input form each hello model takes."""

DEFAULT_EPOCHS = 15


@dataclasses.dataclass(frozen=True)
class HelloSettings:
    """The notes' training settings for one hello model.

    Attributes:
        learning_rate: Adam's learning rate.
        step_reduction: how the per-step losses combine, `"sum"` (3.1's
            `loss += criterion(...)`) or `"mean"` (3.2/3.3's one criterion
            call over all steps).
    """

    learning_rate: float
    step_reduction: str


NOTES_SETTINGS = {
    "cell": HelloSettings(learning_rate=0.1, step_reduction="sum"),
    "layer": HelloSettings(learning_rate=0.05, step_reduction="mean"),
    "embedding": HelloSettings(learning_rate=0.05, step_reduction="mean"),
}


def check_cell_type(cell):
    """Returns `cell` if it names one of `CELL_TYPES`, else raises.

    Example:

    >>> check_cell_type("lstm")
    'lstm'
    """
    if cell not in CELL_TYPES:
        raise ValueError(
            f"Unknown cell type. Expected one of {CELL_TYPES}. "
            f"Received: cell={cell!r}"
        )
    return cell


def check_hello_model(model):
    """Returns `model` if it names one of `HELLO_MODELS`, else raises.

    Example:

    >>> check_hello_model("layer")
    'layer'
    """
    if model not in HELLO_MODELS:
        raise ValueError(
            f"Unknown hello model. Expected one of {HELLO_MODELS}. "
            f"Received: model={model!r}"
        )
    return model


def check_epochs(epochs):
    """Returns `epochs` if it is a positive int, else raises."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    return epochs


@dataclasses.dataclass
class History:
    """What one training run did, epoch by epoch.

    Attributes:
        losses: each epoch's loss, at the weights before that epoch's update.
        predictions: the string predicted by each epoch's forward pass.

    Example:

    >>> History(losses=[1.4, 1.2], predictions=["hhhhh", "ohlol"]).first_epoch_reaching()
    2
    """

    losses: list = dataclasses.field(default_factory=list)
    predictions: list = dataclasses.field(default_factory=list)

    def record(self, loss, prediction):
        self.losses.append(float(loss))
        self.predictions.append(prediction)

    def first_epoch_reaching(self, target=data.TARGET_TEXT):
        """The first (1-based) epoch that predicted `target`, or `None`."""
        for epoch, prediction in enumerate(self.predictions, start=1):
            if prediction == target:
                return epoch
        return None


def epoch_line(prediction, epoch, epochs, loss):
    """The notes' per-epoch line (one space after the colon, for every model).

    Example:

    >>> epoch_line("hhhhh", 1, 15, 1.43251)
    'Predicted string: hhhhh, Epoch [1/15] loss: 1.4325'
    """
    return f"Predicted string: {prediction}, Epoch [{epoch}/{epochs}] loss: {loss:.4f}"


def add_variant_arguments(parser):
    """Adds `--model`, `--cell`, `--epochs` and `--seed` to a script's parser.

    Shared by `examples/hello_keras.py` and `examples/hello_torch.py`, so
    that both select and seed variants the same way.

    Example:

    >>> parser = add_variant_arguments(argparse.ArgumentParser())
    >>> args = parser.parse_args(["--cell", "gru", "--epochs", "30"])
    >>> variants(args)
    [('cell', 'gru'), ('layer', 'gru'), ('embedding', 'gru')]
    """
    parser.add_argument("--model", choices=HELLO_MODELS, help="one model (default: all three)")
    parser.add_argument("--cell", choices=CELL_TYPES, help="one cell type (default: all three)")
    parser.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS)
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds every variant afresh (default: 0)"
    )
    return parser


def _positive_int(text):
    try:
        return check_epochs(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer. Received: {text!r}")


def variants(args):
    """The `(model, cell)` pairs parsed arguments select, in the notes' order."""
    model_kinds = [args.model] if args.model else HELLO_MODELS
    cells = [args.cell] if args.cell else CELL_TYPES
    return [(model_kind, cell) for model_kind in model_kinds for cell in cells]


def variant_name(model_kind, cell):
    """How the scripts name a variant.

    Example:

    >>> variant_name("embedding", "lstm")
    '3.3 embedding/lstm'
    """
    return f"{SECTIONS[model_kind]} {model_kind}/{cell}"
