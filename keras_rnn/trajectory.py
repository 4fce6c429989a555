"""Trajectory parity: a Keras hello model and its PyTorch twin, side by side.

`compare_hello` builds the notes' PyTorch model (`keras_rnn.torch_twins`),
copies its initial weights into the Keras model with `parity.copy_weights`,
trains both for the same epochs on the same batch, and returns both
histories. The Keras side trains with `keras_rnn.optimizers.TorchAdam`
(PyTorch's Adam, with a double step for the summed biases of SimpleRNN and
LSTM) so that the two loss curves agree to float32 rounding, epoch by epoch.

Example:

>>> comparison = compare_hello("layer", "lstm", epochs=15, seed=0)
>>> comparison.max_difference < TOLERANCE
True
"""

import dataclasses

import keras
import torch

import parity
from keras_rnn import hello, models, torch_twins, train

TOLERANCE = 1e-4
"""Largest per-epoch loss difference accepted over 15 float32 epochs.

Measured on CPU: at most 1.5e-6 for all nine variants over seeds 0-6, i.e.
the rounding of a float32 loss of 2-8. The margin is for other platforms'
float32 kernels, not for any known drift.
"""


def copy_twin_weights(twin, model, model_kind):
    """Copies a PyTorch twin's weights into the Keras hello model.

    Args:
        twin: from `keras_rnn.torch_twins.build_twin(model_kind, cell)`.
        model: from `keras_rnn.models.build_hello_model(model_kind, cell)`,
            with the same sizes.
        model_kind: `"cell"`, `"layer"` or `"embedding"`.

    Raises:
        parity.ConversionError: if the architectures do not match; nothing
            is written then.
    """
    if hello.check_hello_model(model_kind) == "cell":
        # StepLoop is keras_rnn's own layer, unknown to parity: copy its cell.
        parity.copy_weights(twin.rnncell, model.get_layer(models.STEP_LOOP_NAME).cell)
    else:
        # Whole models, layer by layer (`nn.RNN(num_layers=2)` into the two
        # stacked Keras layers), every weight accounted for.
        parity.copy_weights(twin, model)


@dataclasses.dataclass
class Comparison:
    """Two training runs of one hello variant, from the same weights.

    Attributes:
        model: `"cell"`, `"layer"` or `"embedding"`.
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        keras: the Keras run's `keras_rnn.hello.History`.
        torch: the PyTorch run's `keras_rnn.hello.History`.
    """

    model: str
    cell: str
    keras: hello.History
    torch: hello.History

    @property
    def differences(self):
        """`|keras loss - torch loss|`, epoch by epoch."""
        return [abs(k - t) for k, t in zip(self.keras.losses, self.torch.losses)]

    @property
    def max_difference(self):
        return max(self.differences)

    def lines(self):
        """A per-epoch table: both losses, their difference, both predictions."""
        rows = [
            f"{'epoch':>5}  {'keras loss':>10}  {'torch loss':>10}  {'|diff|':>8}  keras  torch"
        ]
        for epoch, (k, t, d, kp, tp) in enumerate(
            zip(
                self.keras.losses,
                self.torch.losses,
                self.differences,
                self.keras.predictions,
                self.torch.predictions,
            ),
            start=1,
        ):
            rows.append(f"{epoch:>5}  {k:>10.6f}  {t:>10.6f}  {d:>8.1e}  {kp}  {tp}")
        rows.append(f"largest |diff|: {self.max_difference:.2e}")
        return rows


def compare_hello(model_kind, cell="rnn", epochs=hello.DEFAULT_EPOCHS, seed=0, optimizer="torch"):
    """Trains a hello model in Keras and in PyTorch from the same weights.

    Args:
        model_kind: `"cell"`, `"layer"` or `"embedding"`.
        cell: `"rnn"`, `"lstm"` or `"gru"`.
        epochs: number of epochs for both.
        seed: seeds PyTorch (which draws the shared initial weights) and Keras.
        optimizer: the Keras side's optimiser, `"torch"` (matches) or
            `"keras"` (shows how far `keras.optimizers.Adam` drifts); see
            `keras_rnn.train.hello_optimizer`.

    Returns:
        A `Comparison`.
    """
    hello.check_hello_model(model_kind)
    hello.check_cell_type(cell)
    torch.manual_seed(seed)
    keras.utils.set_random_seed(seed)
    twin = torch_twins.build_twin(model_kind, cell)
    model = models.build_hello_model(model_kind, cell)
    copy_twin_weights(twin, model, model_kind)
    optimizer = train.hello_optimizer(model, model_kind, optimizer)
    keras_history = train.train_hello(model, model_kind, epochs, optimizer, print_fn=None)
    torch_history = torch_twins.train_twin(twin, model_kind, epochs, print_fn=None)
    return Comparison(model_kind, cell, keras_history, torch_history)
