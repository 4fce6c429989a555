"""Training the hello models as the notes do, with a per-epoch printout.

The notes train each model for 15 epochs on the one "hello" batch with
`CrossEntropyLoss` and Adam, and print one line per epoch:

    Predicted string: ohlol, Epoch [7/15] loss: 0.8250

The predicted string is the argmax of *that epoch's* forward pass, made
before the optimiser step, and the loss is the one that step minimises.
`train_hello` does the same with `predict_on_batch` then `train_on_batch`
(which returns the loss at the pre-update weights), both compiled once, so it
runs on any Keras backend.

The loss reduction follows the notes: 3.1 adds up the per-step losses (its
loop does `loss += criterion(hidden, label)`), 3.2 and 3.3 average them
(`criterion(outputs.view(-1, 4), labels)`). `StepCrossEntropy` does either.
The optimiser is, by default, the notes' `torch.optim.Adam` as
`keras_rnn.optimizers.TorchAdam` reproduces it; `optimizer="keras"` takes
`keras.optimizers.Adam` instead.

Example:

>>> from keras_rnn import models
>>> model = models.build_hello_model("layer", "gru")
>>> history = train_hello(model, "layer", epochs=3, print_fn=None)
>>> len(history.losses), len(history.predictions)
(3, 3)
"""

import keras
import numpy as np
from keras import ops

from keras_rnn import data, hello, optimizers

STEP_REDUCTIONS = ("sum", "mean")


def check_step_reduction(step_reduction):
    """Returns `step_reduction` if it is `"sum"` or `"mean"`, else raises."""
    if step_reduction not in STEP_REDUCTIONS:
        raise ValueError(
            f"Unknown step reduction. Expected one of {STEP_REDUCTIONS}. "
            f"Received: step_reduction={step_reduction!r}"
        )
    return step_reduction


@keras.saving.register_keras_serializable(package="keras_rnn")
class StepCrossEntropy(keras.losses.Loss):
    """Cross-entropy from logits per time step, summed or averaged over steps.

    For labels `(batch, steps)` and logits `(batch, steps, classes)`, each
    sequence's loss is the sum (or the mean) of its per-step cross-entropies,
    and the batch loss is the mean over sequences. With a batch of one this is
    the notes' `loss += criterion(hidden, label)` (`"sum"`) or
    `criterion(outputs.view(-1, classes), labels)` (`"mean"`).

    Args:
        step_reduction: `"sum"` or `"mean"`.
        name: the loss's name.
        **kwargs: base `keras.losses.Loss` arguments other than `reduction`.

    Example:

    >>> logits = np.zeros((1, 5, 4), "float32")
    >>> labels = np.zeros((1, 5), "int64")
    >>> float(StepCrossEntropy("sum")(labels, logits))  # 5 * log(4)
    6.931471...
    """

    def __init__(self, step_reduction="mean", name="step_cross_entropy", **kwargs):
        # The batch mean comes from the standard reduction; only the step axis
        # is reduced by `call`.
        super().__init__(name=name, reduction="sum_over_batch_size", **kwargs)
        self.step_reduction = check_step_reduction(step_reduction)

    def call(self, y_true, y_pred):
        per_step = keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=True
        )
        reduce = ops.sum if self.step_reduction == "sum" else ops.mean
        return reduce(per_step, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.pop("reduction", None)
        config["step_reduction"] = self.step_reduction
        return config


OPTIMIZERS = ("torch", "keras")


def hello_optimizer(model, model_kind, optimizer="torch"):
    """Adam at the notes' learning rate, PyTorch's way or Keras's.

    Args:
        model: the built Keras model it will train.
        model_kind: `"cell"`, `"layer"` or `"embedding"`, for the rate.
        optimizer: `"torch"`: `keras_rnn.optimizers.TorchAdam` with PyTorch's
            defaults and a double step for summed biases, i.e. the notes'
            `torch.optim.Adam` on the notes' model with both biases trainable;
            `"keras"`: `keras.optimizers.Adam` with Keras's defaults.

    Example:

    >>> from keras_rnn import models
    >>> model = models.build_hello_model("cell", "lstm")
    >>> round(float(hello_optimizer(model, "cell", "keras").learning_rate), 6)
    0.1
    """
    learning_rate = hello.NOTES_SETTINGS[hello.check_hello_model(model_kind)].learning_rate
    if optimizer == "torch":
        return optimizers.torch_style_adam(model, learning_rate)
    if optimizer == "keras":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    raise ValueError(
        f"Unknown optimizer. Expected one of {OPTIMIZERS}. Received: optimizer={optimizer!r}"
    )


def compile_hello(model, model_kind, optimizer="torch"):
    """Compiles a hello model with the notes' loss and optimiser settings.

    Args:
        model: a model from `keras_rnn.models.build_hello_model`.
        model_kind: `"cell"`, `"layer"` or `"embedding"`, for the settings.
        optimizer: `"torch"` for the notes' Adam as PyTorch runs it,
            `"keras"` for `keras.optimizers.Adam` (see `hello_optimizer`), or
            any Keras optimizer instance.

    Returns:
        The model.
    """
    settings = hello.NOTES_SETTINGS[hello.check_hello_model(model_kind)]
    if isinstance(optimizer, str):
        optimizer = hello_optimizer(model, model_kind, optimizer)
    model.compile(optimizer=optimizer, loss=StepCrossEntropy(settings.step_reduction))
    # Built here, its slots are not created inside the first train step, which
    # would make TensorFlow trace that step twice (~0.4 s per model).
    model.optimizer.build(model.trainable_variables)
    return model


def train_hello(model, model_kind, epochs=hello.DEFAULT_EPOCHS, optimizer="torch", print_fn=print):
    """Trains a hello model on "hello" -> "ohlol" as the notes do.

    Each epoch makes one forward pass for the prediction, then one optimiser
    step on the same batch; the epoch's loss is the one at the weights before
    the step, as in the notes.

    Args:
        model: a model from `keras_rnn.models.build_hello_model`.
        model_kind: `"cell"`, `"layer"` or `"embedding"`.
        epochs: the number of epochs (the notes: 15).
        optimizer: as in `compile_hello`.
        print_fn: called with the notes' line each epoch; `None` is silent.

    Returns:
        A `keras_rnn.hello.History`.

    Example:

    >>> from keras_rnn import models
    >>> model = models.build_hello_model("cell", "rnn")
    >>> history = train_hello(model, "cell", epochs=2)
    Predicted string: ..., Epoch [1/2] loss: ...
    Predicted string: ..., Epoch [2/2] loss: ...
    """
    hello.check_epochs(epochs)
    compile_hello(model, model_kind, optimizer)
    x, y = data.hello_arrays(hello.HELLO_INPUT_FORMS[model_kind])
    history = hello.History()
    for epoch in range(1, epochs + 1):
        # Both calls are compiled once per model and reused every epoch.
        logits = model.predict_on_batch(x)
        loss = float(model.train_on_batch(x, y))
        history.record(loss, data.decode_logits(np.asarray(logits)[0]))
        if print_fn is not None:
            print_fn(hello.epoch_line(history.predictions[-1], epoch, epochs, loss))
    return history
