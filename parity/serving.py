"""Fast inference for ported recurrent models: `compile_inference`.

A model that `parity.to_keras` builds is an ordinary Keras model of the
standard layers, and calling it is correct; on CPU it is also slow. Called
eagerly, every time step is a round trip through Python (8-10x PyTorch for
an LSTM of 256 units over 100 steps); `tf.function(model)` compiles the loop
but still runs each step's input product and a dozen small ops one by one
(1.3-1.6x). `compile_inference(model)` is the way `parity` runs a ported
model for inference. It returns a function computing
`model(inputs, training=False)`, which on each Keras backend does what
measured fastest (docs/performance.md):

- the input product `x @ kernel (+ bias)` is taken for many time steps in
  one matrix product, leaving `h @ recurrent_kernel` and the gate arithmetic
  in the loop; stacked and bidirectional layers stay time-major between
  layers;
- TensorFlow and JAX: sequences of known length up to `MAX_UNROLL` steps are
  unrolled, one input product per `CHUNK` steps; longer or unknown lengths
  loop (`tf.while_loop`, `lax.scan`) over one input product for all steps;
  the call is compiled once per input signature: `tf.function` with XLA on a
  CPU (XLA fuses each step's gate arithmetic into one kernel), `jax.jit`;
- PyTorch: the layers PyTorch itself computes (tanh/relu `SimpleRNN`,
  tanh/sigmoid `LSTM`, `GRU(reset_after=True)`, stacked or bidirectional)
  run on PyTorch's own fused kernels (`torch._VF`, which Keras's torch
  backend also calls for cuDNN), reading the Keras variables through
  transposed views; `Embedding` and `Dense` skip `Layer.__call__`;
- on a GPU: TensorFlow runs the model's own call inside the compiled
  function instead, because Keras's LSTM/GRU call then runs cuDNN; PyTorch
  runs its cuDNN kernels where Keras's own call would (LSTM/GRU with bias)
  and the fused loop elsewhere, keeping the model's numerics; JAX keeps the
  fused XLA loop (Keras's own cuDNN LSTM gave wrong results under `jax.jit`
  on an H200, and the loop measured 0.4-0.8x PyTorch's cuDNN there:
  docs/performance.md).

It reads the layers' own variables at every call and never copies them: the
model keeps the standard Keras layers and weight layout, saves and loads as
before, and a weight updated after `compile_inference` is used by the next
call. Outputs equal the model's own call within `parity.tolerance`.

Run fast: `SimpleRNN`, `LSTM` and `GRU` layers (any activations, with or
without bias, GRU `reset_after` either way, `go_backwards`, initial states,
`return_sequences` and `return_state`), `Bidirectional` of them (every
`merge_mode`), `parity.TorchRNN`, and `keras.Sequential` or functional models
made of these and other layers. Everything else runs through its own `call`
inside the same compiled function: other layers, masked inputs
(`mask_zero`, `Masking`), `stateful=True` layers, `ProjectedLSTM`,
subclassed cells.

Example:

>>> lstm = torch.nn.LSTM(256, 256, batch_first=True)
>>> keras_lstm = parity.to_keras(lstm)
>>> run = compile_inference(keras_lstm)
>>> outputs, h, c = run(np.zeros((64, 100, 256), "float32"))
"""

import warnings

import keras
from keras import ops

from parity.activations import activation_name
from parity.stacked import TorchRNN

# TensorFlow and JAX: sequences up to this many (static) steps are unrolled ...
MAX_UNROLL = 256
# ... in chunks of this many steps, one input product per chunk.
CHUNK = 25
UNROLLED_BACKENDS = ("tensorflow", "jax")

_FAST_LAYERS = {
    keras.layers.SimpleRNN: keras.layers.SimpleRNNCell,
    keras.layers.LSTM: keras.layers.LSTMCell,
    keras.layers.GRU: keras.layers.GRUCell,
}


def compile_inference(model, jit_compile="auto", unroll="auto"):
    """A compiled function computing `model(inputs, training=False)`, fast on CPU.

    Args:
        model: a built Keras recurrent layer, `Bidirectional`, `TorchRNN`,
            `keras.Sequential` or functional model (what `parity.to_keras`
            returns, or any model of the standard layers).
        jit_compile: TensorFlow only: compile with XLA as well. `"auto"`
            (the default): with XLA on CPU, where it measured fastest
            (docs/performance.md), falling back to plain `tf.function` with
            a warning if XLA cannot compile the model; without XLA on a GPU,
            where Keras's own LSTM/GRU call runs cuDNN.
        unroll: TensorFlow and JAX. `"auto"`: unroll (in chunks) sequences
            of static length up to `MAX_UNROLL` steps, loop over longer
            ones; `True`: unroll any static length (the trace, and XLA's
            compile time, grow with it); `False`: always loop.

    Returns:
        An `InferenceFunction`: call it as the model is called, with
        `inputs` and optionally `initial_state`.

    Raises:
        ValueError: the model is not built (it has no weights yet).

    Example:

    >>> model = parity.to_keras(torch.nn.GRU(8, 16, num_layers=2, bidirectional=True))
    >>> run = compile_inference(model)
    >>> outputs, h_n = run(np.zeros((4, 20, 8), "float32"))
    >>> tuple(h_n.shape)
    (4, 4, 16)
    """
    return InferenceFunction(model, jit_compile=jit_compile, unroll=unroll)


class InferenceFunction:
    """`model(inputs, training=False)`, compiled; see `compile_inference`.

    Attributes:
        model: the Keras object it runs (its variables are read at each call).
    """

    def __init__(self, model, jit_compile="auto", unroll="auto"):
        if not getattr(model, "built", False) or not model.weights:
            raise ValueError(
                f"compile_inference needs a built model with weights; call it on an "
                f"input or `build()` it first. Received: {type(model).__name__} "
                f"{getattr(model, 'name', '')!r} with built={getattr(model, 'built', None)}"
            )
        if unroll not in (True, False, "auto"):
            raise ValueError(
                f"unroll must be True, False or 'auto'. Received: unroll={unroll!r}"
            )
        self.model = model
        self._unroll = unroll
        backend = keras.backend.backend()
        self._accelerated = _accelerator_in_use(backend)
        self._fallback = None
        if backend == "tensorflow":
            import tensorflow as tf

            xla = not self._accelerated if jit_compile == "auto" else bool(jit_compile)
            # No autograph: the Python control flow here is over static values,
            # and the time loop is an explicit `tf.while_loop`.
            self._call = tf.function(
                self._run, jit_compile=xla, reduce_retracing=True, autograph=False
            )
            if xla and jit_compile == "auto":
                self._fallback = tf.function(self._run, reduce_retracing=True, autograph=False)
        elif backend == "jax":
            self._call = self._jax_function()
        elif backend == "torch":
            import torch

            def run_inference_mode(inputs, initial_state):
                with torch.inference_mode():
                    return self._run(inputs, initial_state)

            self._call = run_inference_mode
        else:
            self._call = self._run

    def __call__(self, inputs, initial_state=None):
        """Runs the model on `inputs` (and `initial_state`, as the model takes it)."""
        if self._fallback is None:
            return self._call(inputs, initial_state)
        import tensorflow as tf

        try:
            return self._call(inputs, initial_state)
        except tf.errors.OpError as error:
            if "XLA" not in str(error):
                raise
            warnings.warn(
                f"compile_inference: XLA cannot compile {self.model.name!r}, running it "
                f"without XLA. Received: {type(error).__name__}: {str(error)[:200]}",
                stacklevel=2,
            )
            self._call, self._fallback = self._fallback, None
            return self._call(inputs, initial_state)

    def _run(self, inputs, initial_state):
        if self._accelerated:
            # On a GPU, Keras's own LSTM/GRU call runs cuDNN's fused kernel,
            # which the CPU loop here would only slow down.
            kwargs = {} if initial_state is None else {"initial_state": initial_state}
            return self.model(inputs, training=False, **kwargs)
        return fast_call(self.model, inputs, initial_state, unroll=self._unroll)

    def _jax_function(self):
        import jax

        variables = list(self.model.variables)

        def pure(values, inputs, initial_state):
            # The variables' current values are arguments, not constants baked
            # into the trace, so later weight updates are seen.
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return self._run(inputs, initial_state)

        compiled = jax.jit(pure)

        def arguments(inputs, initial_state):
            return [v.value for v in variables], inputs, initial_state

        # For inspection (benchmarks/gpu.py reads the compiled HLO).
        self._jax_lower = lambda inputs, initial_state=None: compiled.lower(
            *arguments(inputs, initial_state))
        return lambda inputs, initial_state: compiled(*arguments(inputs, initial_state))


def _accelerator_in_use(backend):
    """Whether Keras computes on a GPU here (TensorFlow and JAX; PyTorch's kernels serve both)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    # JAX: never. Keras's own LSTM call runs cuDNN there (jax.experimental.rnn),
    # but under `jax.jit` on an H200 an LSTM's cuDNN output feeding a
    # Bidirectional SimpleRNN came out wrong by 0.5 (eager was right); the fused
    # XLA loop here is correct and measured faster (docs/performance.md).
    return False


# --------------------------------------------------------------------------
# Which objects run fast
# --------------------------------------------------------------------------


def is_fast_layer(layer):
    """True for a standard `SimpleRNN`/`LSTM`/`GRU` layer the fused loop computes."""
    cell_type = _FAST_LAYERS.get(type(layer))
    return (
        cell_type is not None
        and type(layer.cell) is cell_type
        and not layer.stateful
    )


def _is_fast_unit(unit):
    if isinstance(unit, keras.layers.Bidirectional):
        return is_fast_layer(unit.forward_layer) and is_fast_layer(unit.backward_layer)
    return is_fast_layer(unit)


def _has_mask(x):
    # Keras attaches a mask made by `Embedding(mask_zero=True)` or `Masking`
    # to the tensor itself; the fused loop does not apply masks.
    return getattr(x, "_keras_mask", None) is not None


def fast_call(obj, inputs, initial_state=None, unroll="auto"):
    """`obj(inputs, initial_state=..., training=False)`, uncompiled, recurrent layers fused.

    `compile_inference` compiles this; call it directly inside your own
    compiled function.
    """
    if keras.backend.backend() == "torch" and not _has_mask(inputs):
        result = _torch_native(obj, inputs, initial_state)
        if result is None and initial_state is None:
            result = _torch_plain(obj, inputs)
        if result is not None:
            return result
    if isinstance(obj, TorchRNN) and all(
        isinstance(u, keras.layers.Dropout) or _is_fast_unit(u) for u in obj.stack_layers()
    ) and not _has_mask(inputs):
        return _torch_rnn(obj, inputs, initial_state, unroll)
    if _is_fast_unit(obj) and not _has_mask(inputs):
        return _recurrent_unit(obj, inputs, initial_state, unroll)
    if isinstance(obj, keras.Sequential) and initial_state is None:
        x = inputs
        for layer in obj.layers:
            x = fast_call(layer, x, unroll=unroll)
        return x
    # A functional model (`keras.Model(inputs, outputs)`), not a subclassed one.
    if (type(obj).__name__ == "Functional" and hasattr(obj, "_run_through_graph")
            and initial_state is None):
        return _functional(obj, inputs, unroll)
    kwargs = {} if initial_state is None else {"initial_state": initial_state}
    return obj(inputs, training=False, **kwargs)


def _functional(model, inputs, unroll):
    """A functional model's graph, with every node run by `fast_call`."""

    def operation_fn(operation):
        def call(*args, **kwargs):
            # Nodes record the call's keywords, e.g. `training=False, mask=None`.
            given = {k: v for k, v in kwargs.items() if v is not None and k != "training"}
            if isinstance(operation, keras.layers.Layer) and len(args) == 1 and (
                not given or set(given) == {"initial_state"}
            ):
                return fast_call(operation, args[0], given.get("initial_state"), unroll=unroll)
            if isinstance(operation, keras.layers.Layer):
                kwargs["training"] = False
            return operation(*args, **kwargs)

        return call

    # Keras's own `Functional.call` walks the graph the same way; its
    # inputs are standardised first (dicts, single tensors).
    outputs = model._run_through_graph(
        model._standardize_inputs(inputs), operation_fn=operation_fn
    )
    return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs


# --------------------------------------------------------------------------
# Stacks, wrappers and layers (time-major inside)
# --------------------------------------------------------------------------


def _time_major(x):
    return ops.transpose(x, (1, 0, 2))


def _torch_rnn(model, inputs, initial_state, unroll):
    """`TorchRNN.call` at inference: states in PyTorch's `(layers*dirs, batch, hidden)`."""
    if initial_state is not None and not isinstance(initial_state, (list, tuple)):
        initial_state = (initial_state,)
    x = _time_major(_as_compute_dtype(inputs, model.rnn_layers[0]))
    finals, slot = None, 0
    for unit in model.stack_layers():
        if isinstance(unit, keras.layers.Dropout):
            continue  # inference
        directions = 2 if isinstance(unit, keras.layers.Bidirectional) else 1
        initial = None
        if initial_state is not None:
            initial = [s[slot + d] for d in range(directions) for s in initial_state]
        x, states = _unit_time_major(unit, x, initial, return_sequences=True, unroll=unroll)
        per_direction = len(states) // directions
        if finals is None:
            finals = [[] for _ in range(per_direction)]
        for d in range(directions):
            for i in range(per_direction):
                finals[i].append(states[d * per_direction + i])
        slot += directions
    outputs = _time_major(x)
    if not model.return_state:
        return outputs
    return [outputs] + [ops.stack(f, axis=0) for f in finals]


def _recurrent_unit(unit, inputs, initial_state, unroll):
    """A `SimpleRNN`/`LSTM`/`GRU` or `Bidirectional` call, batch-major like Keras."""
    layer = unit.forward_layer if isinstance(unit, keras.layers.Bidirectional) else unit
    if initial_state is not None and not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    x = _time_major(_as_compute_dtype(inputs, layer))
    output, states = _unit_time_major(
        unit, x, initial_state, return_sequences=unit.return_sequences, unroll=unroll
    )
    if unit.return_sequences:
        output = (
            tuple(_time_major(o) for o in output)
            if isinstance(output, tuple) else _time_major(output)
        )
    if not unit.return_state:
        return output
    if isinstance(output, tuple):  # Bidirectional(merge_mode=None)
        return output + tuple(states)
    return (output, *states)


def _unit_time_major(unit, x, initial_state, return_sequences, unroll):
    """One recurrent layer or `Bidirectional` on time-major `x`.

    Returns:
        `(output, states)`: `output` is time-major `(time, batch, features)`
        when `return_sequences`, else `(batch, features)`; `states` lists
        the final states, forward layer's first.
    """
    if not isinstance(unit, keras.layers.Bidirectional):
        outputs, states = _layer_time_major(unit, x, initial_state, unroll)
        return (outputs if return_sequences else states[0]), states
    half = None if initial_state is None else len(initial_state) // 2
    forward, forward_states = _layer_time_major(
        unit.forward_layer, x, None if half is None else initial_state[:half], unroll
    )
    backward, backward_states = _layer_time_major(
        unit.backward_layer, x, None if half is None else initial_state[half:], unroll
    )
    if return_sequences:
        backward = ops.flip(backward, axis=0)  # processing order -> time order
    else:
        forward, backward = forward_states[0], backward_states[0]
    if unit.merge_mode == "concat":
        output = ops.concatenate([forward, backward], axis=-1)
    else:
        output = _merge_directions(unit, forward, backward)
    return output, list(forward_states) + list(backward_states)


def _as_compute_dtype(inputs, layer):
    inputs = ops.convert_to_tensor(inputs)
    dtype = layer.compute_dtype
    if keras.backend.standardize_dtype(inputs.dtype) != dtype:
        inputs = ops.cast(inputs, dtype)
    return inputs


def _layer_time_major(layer, x, initial_state, unroll):
    """A `SimpleRNN`/`LSTM`/`GRU` layer on time-major `x`.

    Returns:
        `(outputs, states)`: every step's output `(time, batch, units)` in
        processing order (reversed time for `go_backwards`, as Keras returns
        it) and the final states.
    """
    cell = layer.cell
    if layer.go_backwards:
        x = ops.flip(x, axis=0)
    if initial_state is None:
        zeros = ops.zeros((ops.shape(x)[1], cell.units), dtype=cell.compute_dtype)
        states = [zeros] * (2 if isinstance(cell, keras.layers.LSTMCell) else 1)
    else:
        states = [ops.cast(ops.convert_to_tensor(s), cell.compute_dtype) for s in initial_state]
    step = _step_function(cell)
    steps = x.shape[0]
    if keras.backend.backend() in UNROLLED_BACKENDS and _unrolls(unroll, steps):
        outputs = []
        for start in range(0, steps, CHUNK):
            for z in ops.unstack(_project(cell, x[start:start + CHUNK]), axis=0):
                output, states = step(z, states)
                outputs.append(output)
        return ops.stack(outputs, axis=0), states
    return _scan(step, _project(cell, x), states)


def _unrolls(unroll, steps):
    if steps is None or unroll is False:
        return False
    return unroll is True or steps <= MAX_UNROLL


def _project(cell, x):
    """`x @ kernel (+ input bias)` for every step of time-major `x` at once."""
    steps, batch, features = ops.shape(x)
    projected = ops.matmul(ops.reshape(x, (-1, features)), cell.kernel)
    input_bias = _input_bias(cell)
    if input_bias is not None:
        projected = projected + input_bias
    return ops.reshape(projected, (steps, batch, -1))


def _input_bias(cell):
    if not cell.use_bias:
        return None
    if isinstance(cell, keras.layers.GRUCell) and cell.reset_after:
        return cell.bias[0]  # row 0 input bias, row 1 recurrent bias
    return cell.bias


def _step_function(cell):
    """`step(projected_input, states) -> (output, new_states)` for one cell.

    The same arithmetic as the cell's own `call` (implementation 2), with the
    input product `x @ kernel (+ input bias)` already done.
    """
    activation, units = cell.activation, cell.units
    recurrent_kernel = cell.recurrent_kernel
    if isinstance(cell, keras.layers.SimpleRNNCell):

        def step(z, states):
            h = activation(z + ops.matmul(states[0], recurrent_kernel))
            return h, [h]

        return step

    gate = cell.recurrent_activation
    if isinstance(cell, keras.layers.LSTMCell):

        def step(z, states):
            h, c = states
            z = z + ops.matmul(h, recurrent_kernel)
            i, f, g, o = ops.split(z, 4, axis=-1)
            c = gate(f) * c + gate(i) * activation(g)
            h = gate(o) * activation(c)
            return h, [h, c]

        return step

    if cell.reset_after:
        recurrent_bias = cell.bias[1] if cell.use_bias else None

        def step(z, states):
            h = states[0]
            inner = ops.matmul(h, recurrent_kernel)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
            x_z, x_r, x_h = ops.split(z, 3, axis=-1)
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            update = gate(x_z + r_z)
            reset = gate(x_r + r_r)
            candidate = activation(x_h + reset * r_h)
            h = update * h + (1 - update) * candidate
            return h, [h]

        return step

    gates_kernel = recurrent_kernel[:, : 2 * units]
    candidate_kernel = recurrent_kernel[:, 2 * units:]

    def step(z, states):
        h = states[0]
        inner = ops.matmul(h, gates_kernel)
        x_z, x_r, x_h = ops.split(z, 3, axis=-1)
        update = gate(x_z + inner[:, :units])
        reset = gate(x_r + inner[:, units:])
        candidate = activation(x_h + ops.matmul(reset * h, candidate_kernel))
        h = update * h + (1 - update) * candidate
        return h, [h]

    return step


# --------------------------------------------------------------------------
# PyTorch backend: PyTorch's own kernels on the Keras weights
# --------------------------------------------------------------------------


def _torch_native(obj, inputs, initial_state):
    """`obj`'s call on `torch._VF` kernels, or `None` where they do not compute it."""
    import torch

    with torch.no_grad():  # `compile_inference` runs it all in `inference_mode`
        return _torch_native_call(obj, inputs, initial_state)


def _torch_native_call(obj, inputs, initial_state):
    if isinstance(obj, TorchRNN):
        units = [u for u in obj.stack_layers() if not isinstance(u, keras.layers.Dropout)]
    elif _is_fast_unit(obj):
        units = [obj]
    else:
        return None
    layers = []
    for unit in units:
        if isinstance(unit, keras.layers.Bidirectional):
            if unit.forward_layer.go_backwards or not unit.backward_layer.go_backwards:
                return None
            layers += [unit.forward_layer, unit.backward_layer]
        elif unit.go_backwards and isinstance(obj, TorchRNN):
            return None
        else:
            layers.append(unit)
    first = layers[0]
    x = _as_compute_dtype(inputs, first)
    if x.is_cuda and not all(_keras_runs_cudnn(layer) for layer in layers):
        # On a GPU `torch._VF` runs cuDNN, which may compute float32 in TF32
        # (`torch.backends.cudnn.allow_tf32`, on by default) where Keras's own
        # call of these layers uses matrix products: the fused loop keeps the
        # model's own numerics.
        return None
    params = [_torch_params(layer.cell) for layer in layers]
    if any(p is None for p in params) or len({p[0] for p in params}) != 1:
        return None
    kernel_fn = params[0][0]
    flat = [tensor for _, tensors in params for tensor in tensors]
    bidirectional = isinstance(units[0], keras.layers.Bidirectional)
    if len(layers) == 1 and first.go_backwards:
        x = x.flip(1)  # a lone reverse layer: outputs in processing order, as Keras
    states = _torch_initial_states(obj, units, initial_state, x, first.cell)
    is_lstm = isinstance(first.cell, keras.layers.LSTMCell)
    with warnings.catch_warnings():
        # cuDNN: "RNN module weights are not part of single contiguous chunk of
        # memory" is advice for an `nn.LSTM` module (`flatten_parameters()`); Keras
        # variables cannot be views of cuDNN's buffer, so it is packed per call.
        warnings.filterwarnings("ignore", message="RNN module weights are not part")
        result = kernel_fn(
            x, tuple(states) if is_lstm else states[0], flat, first.cell.use_bias,
            len(units), 0.0, False, bidirectional, True,
        )
    outputs, finals = result[0], list(result[1:])
    if isinstance(obj, TorchRNN):
        return [outputs] + finals if obj.return_state else outputs
    return _torch_layer_result(obj, outputs, finals, bidirectional)


def _keras_runs_cudnn(layer):
    """Whether Keras's own call of `layer` runs cuDNN on a GPU (its torch backend's rule)."""
    return (
        isinstance(layer.cell, (keras.layers.LSTMCell, keras.layers.GRUCell))
        and layer.cell.use_bias
        and not layer.unroll
        and not layer.cell.recurrent_dropout
        and getattr(layer, "use_cudnn", "auto") in ("auto", True)
    )


def _torch_plain(obj, inputs):
    """`Embedding` and `Dense` on PyTorch's functions, without `Layer.__call__`'s
    per-call bookkeeping (which is most of a small model's time); else `None`."""
    import torch
    import torch.nn.functional as F

    plain = (
        not getattr(obj, "lora_enabled", False)
        and getattr(obj, "quantization_mode", None) is None
    )
    if type(obj) is keras.layers.Embedding and plain and not obj.mask_zero:
        indices = ops.convert_to_tensor(inputs)
        if indices.is_floating_point():
            indices = indices.to(torch.int64)
        return F.embedding(indices, ops.convert_to_tensor(obj.embeddings))
    if type(obj) is keras.layers.Dense and plain:
        x = _as_compute_dtype(inputs, obj)
        bias = ops.convert_to_tensor(obj.bias) if obj.use_bias else None
        return obj.activation(F.linear(x, ops.convert_to_tensor(obj.kernel).T, bias))
    return None


def _torch_params(cell):
    """`(torch._VF function, [weight_ih, weight_hh(, bias_ih, bias_hh)])` in PyTorch's layout."""
    import torch

    activation = activation_name(cell.activation)
    units = cell.units
    kernel = ops.convert_to_tensor(cell.kernel)
    recurrent = ops.convert_to_tensor(cell.recurrent_kernel)
    bias = ops.convert_to_tensor(cell.bias) if cell.use_bias else None
    if isinstance(cell, keras.layers.SimpleRNNCell):
        if activation not in ("tanh", "relu"):
            return None
        kernel_fn = torch._VF.rnn_tanh if activation == "tanh" else torch._VF.rnn_relu
        biases = None if bias is None else [bias, torch.zeros_like(bias)]
    elif isinstance(cell, keras.layers.LSTMCell):
        if activation != "tanh" or activation_name(cell.recurrent_activation) != "sigmoid":
            return None
        kernel_fn = torch._VF.lstm  # Keras i,f,c,o is PyTorch's i,f,g,o
        biases = None if bias is None else [bias, torch.zeros_like(bias)]
    else:
        if (not cell.reset_after or activation != "tanh"
                or activation_name(cell.recurrent_activation) != "sigmoid"):
            return None
        kernel_fn = torch._VF.gru

        def torch_gates(array):  # Keras z,r,h -> PyTorch r,z,n along the last axis
            return torch.cat(
                [array[..., units:2 * units], array[..., :units], array[..., 2 * units:]], -1
            )

        kernel, recurrent = torch_gates(kernel), torch_gates(recurrent)
        biases = None if bias is None else [torch_gates(bias[0]), torch_gates(bias[1])]
    # Transposed views: PyTorch's matrix products take them without a copy.
    weights = [kernel.T, recurrent.T]
    if kernel.is_cuda:
        # cuDNN packs the weights into one buffer of its own layout at every call
        # (as for Keras's own cuDNN call) and needs each one contiguous to do so.
        weights = [w.contiguous() for w in weights]
    return kernel_fn, weights + (biases or [])


def _torch_initial_states(obj, units, initial_state, x, cell):
    """PyTorch's `(layers*directions, batch, hidden)` states, one per state kind."""
    import torch

    kinds = 2 if isinstance(cell, keras.layers.LSTMCell) else 1
    if initial_state is None:
        slots = len(units) * (2 if isinstance(units[0], keras.layers.Bidirectional) else 1)
        zeros = torch.zeros((slots, x.shape[0], cell.units), dtype=x.dtype, device=x.device)
        return [zeros] * kinds
    if not isinstance(initial_state, (list, tuple)):
        initial_state = [initial_state]
    tensors = [ops.cast(ops.convert_to_tensor(s), x.dtype) for s in initial_state]
    if isinstance(obj, TorchRNN):
        return tensors  # already in PyTorch's layout
    # Keras: [h(, c)] per direction, forward first.
    return [torch.stack(tensors[k::kinds], 0) for k in range(kinds)]


def _torch_layer_result(unit, outputs, finals, bidirectional):
    """PyTorch's `(output, h_n(, c_n))` -> what the Keras layer returns."""
    directions = 2 if bidirectional else 1
    states = [finals[k][d] for d in range(directions) for k in range(len(finals))]
    if not bidirectional:
        output = outputs if unit.return_sequences else states[0]
        return (output, *states) if unit.return_state else output
    units = unit.forward_layer.cell.units
    if unit.return_sequences:
        forward, backward = outputs[..., :units], outputs[..., units:]
    else:
        forward, backward = finals[0][0], finals[0][1]
    if unit.merge_mode == "concat":
        output = outputs if unit.return_sequences else ops.concatenate([forward, backward], -1)
    else:
        output = _merge_directions(unit, forward, backward)
    if not unit.return_state:
        return output
    return (output + tuple(states)) if unit.merge_mode is None else (output, *states)


# --------------------------------------------------------------------------
# The time loop, per backend
# --------------------------------------------------------------------------


def _scan(step, sequence, states):
    """Runs `step` over time-major `sequence`; returns `(stacked outputs, final states)`."""
    if keras.backend.backend() == "tensorflow":
        return _scan_tensorflow(step, sequence, states)

    def body(carry, z):
        output, carry = step(z, carry)
        return carry, output

    states, outputs = ops.scan(body, states, sequence)
    return outputs, states


def _scan_tensorflow(step, sequence, states):
    import tensorflow as tf

    steps = tf.shape(sequence)[0]
    inputs = tf.TensorArray(sequence.dtype, size=steps).unstack(sequence)
    outputs = tf.TensorArray(states[0].dtype, size=steps)

    def body(t, states, outputs):
        output, states = step(inputs.read(t), states)
        return t + 1, states, outputs.write(t, output)

    _, states, outputs = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), states, outputs)
    )
    return outputs.stack(), states


def _merge_directions(unit, forward, backward):
    """`Bidirectional`'s non-concat merge modes (concat is laid out by the callers)."""
    mode = unit.merge_mode
    if mode == "sum":
        return forward + backward
    if mode == "ave":
        return (forward + backward) / 2
    if mode == "mul":
        return forward * backward
    if mode is None:
        return (forward, backward)
    raise ValueError(
        f"{unit.name}: unknown merge_mode for the fast path. Received: merge_mode={mode!r}"
    )
