"""A PyTorch-style Adam for Keras, so that ported models train the same way.

Copying a PyTorch model's weights into Keras gives the same forward pass;
training it with `keras.optimizers.Adam` still drifts away from
`torch.optim.Adam`, for two reasons:

1. **Where epsilon goes.** Keras folds both bias corrections into the step
   size and adds epsilon to the *uncorrected* `sqrt(v)`; PyTorch divides
   `sqrt(v)` by `sqrt(1 - beta_2**t)` first and adds epsilon to that, with a
   default of 1e-8 where Keras has 1e-7. On PyTorch's scale Keras's epsilon is
   `1e-7 / sqrt(1 - beta_2**t)`: about 3e-6 at step 1, 300 times PyTorch's.
   Small gradients (late in training, or on rarely used weights) then take
   visibly different steps.
2. **One bias where PyTorch has two.** `nn.RNN`/`nn.LSTM` (and their cells)
   keep `b_ih` and `b_hh`; Keras `SimpleRNN`/`LSTM` keep their sum. Both
   PyTorch biases receive the same gradient as the Keras sum, so each takes
   the same Adam step and their sum moves by *twice* that step. Keras's one
   bias must take a double step to follow. (Keras `GRU` with
   `reset_after=True` keeps the input and recurrent bias rows apart, like
   PyTorch, so it needs no doubling.)

`TorchAdam` reproduces `torch.optim.Adam`'s update, operation for operation,
with `keras.ops` only (so it runs on every Keras backend), and takes a
per-variable step multiplier. `summed_bias_multipliers(model)` finds the
summed biases of a model and `torch_style_adam(model, lr)` puts the two
together.

Example:

>>> layers = [keras.Input((5, 4)), keras.layers.SimpleRNN(4, name="rnn")]
>>> model = keras.Sequential(layers, name="net")
>>> optimizer = torch_style_adam(model, learning_rate=0.05)
>>> optimizer.step_multipliers
{'net/rnn/simple_rnn_cell/bias': 2.0}
"""

import math

import keras
from keras import ops

# Cells whose one bias stands for PyTorch's `b_ih + b_hh`.
_SUMMED_BIAS_CELLS = (keras.layers.SimpleRNNCell, keras.layers.LSTMCell)


@keras.saving.register_keras_serializable(package="keras_rnn")
class TorchAdam(keras.optimizers.Optimizer):
    """Adam with `torch.optim.Adam`'s update rule and per-variable step sizes.

    For every variable, with gradient `g` at step `t` (from 1):

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        denom = sqrt(v) / sqrt(1 - beta_2**t) + epsilon
        variable -= (lr * multiplier / (1 - beta_1**t)) * (m / denom)

    which is `torch.optim.Adam` (`amsgrad=False`, no weight decay) when every
    multiplier is 1. Keras's base-optimizer arguments (`clipnorm`,
    `weight_decay`, `use_ema`, ...) pass through unchanged; note that Keras's
    `weight_decay` is decoupled, as in `torch.optim.AdamW`, not Adam's L2 term.

    Args:
        learning_rate: a float or a learning-rate schedule.
        beta_1: decay rate of the first moment (PyTorch's `betas[0]`).
        beta_2: decay rate of the second moment (PyTorch's `betas[1]`).
        epsilon: added to the bias-corrected `sqrt(v)`; PyTorch's default.
        step_multipliers: a dict `{variable.path: factor}`; that variable's
            step is multiplied by `factor`. Checked against the variables when
            the optimizer is built.
        name: the optimizer's name.
        **kwargs: base `keras.optimizers.Optimizer` arguments.

    Example:

    >>> variable = keras.Variable([1.0, -1.0], name="w")
    >>> optimizer = TorchAdam(learning_rate=0.1, step_multipliers={"w": 2.0})
    >>> optimizer.apply([ops.convert_to_tensor([0.5, -0.5])], [variable])
    >>> [round(float(v), 4) for v in ops.convert_to_numpy(variable)]  # 2 * lr * sign(g)
    [0.8, -0.8]
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        step_multipliers=None,
        name="torch_adam",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.step_multipliers = dict(step_multipliers or {})
        if any(
            not isinstance(factor, (int, float)) or factor <= 0
            for factor in self.step_multipliers.values()
        ):
            raise ValueError(
                "Step multipliers must be positive numbers. "
                f"Received: step_multipliers={self.step_multipliers}"
            )

    def build(self, var_list):
        if self.built:
            return
        unknown = sorted(set(self.step_multipliers) - {v.path for v in var_list})
        if unknown:
            raise ValueError(
                f"Step multipliers name variables that are not being optimised: "
                f"{unknown}. Known variables: {[v.path for v in var_list]}. "
                f"Received: step_multipliers={self.step_multipliers}"
            )
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"]
        )
        # update_step may see a backend variable (a tf.Variable under
        # TensorFlow), which has no `.path`: key by what `_var_key` returns.
        self._multiplier_by_key = {
            self._var_key(v): float(self.step_multipliers[v.path])
            for v in var_list
            if v.path in self.step_multipliers
        }

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        multiplier = self._multiplier_by_key.get(self._var_key(variable), 1.0)
        # Under TensorFlow an embedding's gradient arrives as tf.IndexedSlices
        # with one slice per occurrence of an index, and `ops.square` squares
        # the slices one by one: a row looked up twice ("l" in "hello") would
        # get g1**2 + g2**2 instead of (g1 + g2)**2 in `v` (keras Adam does
        # this too). Adding it to a dense zero sums the slices first; on other
        # backends gradients are dense already.
        gradient = ops.add(ops.zeros(variable.shape, dtype), ops.cast(gradient, dtype))
        step = ops.cast(self.iterations + 1, dtype)

        # The same operations, in the same order, as torch.optim.Adam's
        # single-tensor path, so that float32 rounding agrees too.
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign(
            v,
            ops.add(
                ops.multiply(v, self.beta_2),
                ops.multiply(ops.square(gradient), 1 - self.beta_2),
            ),
        )
        # PyTorch computes 1 - beta**t in float64 on the host. In float32,
        # 1 - 0.999**t cancels catastrophically (about 1e-5 relative error
        # at t=3), so use -expm1(t * log(beta)), accurate to float32 rounding.
        bias_correction_1 = -ops.expm1(step * math.log(self.beta_1))
        bias_correction_2_sqrt = ops.sqrt(-ops.expm1(step * math.log(self.beta_2)))
        step_size = ops.cast(learning_rate, dtype) * multiplier / bias_correction_1
        denom = ops.add(ops.divide(ops.sqrt(v), bias_correction_2_sqrt), self.epsilon)
        self.assign_sub(variable, ops.multiply(step_size, ops.divide(m, denom)))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "beta_1": self.beta_1,
                "beta_2": self.beta_2,
                "epsilon": self.epsilon,
                "step_multipliers": dict(self.step_multipliers),
            }
        )
        return config


def summed_bias_variables(model):
    """The bias variables of a model that hold PyTorch's `b_ih + b_hh`.

    These are the biases of every `SimpleRNNCell` and `LSTMCell` in the model,
    at any depth (inside `SimpleRNN`/`LSTM`, `Bidirectional`, `StepLoop`...).
    `GRUCell` is left out: with `reset_after=True` its bias keeps PyTorch's
    two rows apart.

    Args:
        model: a built Keras layer or model.

    Returns:
        A list of variables.

    Example:

    >>> layers = [keras.Input((5, 4)), keras.layers.LSTM(3, name="lstm")]
    >>> model = keras.Sequential(layers, name="net")
    >>> [v.path for v in summed_bias_variables(model)]
    ['net/lstm/lstm_cell/bias']
    """
    if not model.built:
        raise ValueError(
            "The model must be built (called once, or created with an Input) "
            f"before its variables can be found. Received: model={model.name!r}"
        )
    # Keras has no public recursive walk over sublayers; `_flatten_layers` is
    # the one its own weight tracking uses.
    return [
        layer.bias
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, _SUMMED_BIAS_CELLS) and layer.use_bias
    ]


def summed_bias_multipliers(model, factor=2.0):
    """`{path: factor}` for `summed_bias_variables(model)`, for `TorchAdam`.

    Example:

    >>> model = keras.Sequential([keras.Input((5, 4)), keras.layers.GRU(3)])
    >>> summed_bias_multipliers(model)
    {}
    """
    return {variable.path: factor for variable in summed_bias_variables(model)}


def torch_style_adam(model, learning_rate=0.001, **kwargs):
    """A `TorchAdam` for `model` that trains it as `torch.optim.Adam` would
    train the PyTorch model it was copied from (both biases trainable).

    Args:
        model: the built Keras model to be trained.
        learning_rate: PyTorch's `lr`.
        **kwargs: other `TorchAdam` arguments.

    Example:

    >>> model = keras.Sequential([keras.Input((5, 4)), keras.layers.SimpleRNN(4)])
    >>> model.compile(optimizer=torch_style_adam(model, 0.05), loss="mse")
    """
    return TorchAdam(
        learning_rate=learning_rate,
        step_multipliers=summed_bias_multipliers(model),
        **kwargs,
    )
