"""keras_rnn: the PyTorch RNN notes' models, in Keras 3, and proof they match.

Modules (import the ones you need; none is imported here, so that
`keras_rnn.torch_twins` can be used without loading Keras's backend, and
Keras without PyTorch):

- `keras_rnn.data`: the "hello" -> "ohlol" task, encoded for each model.
- `keras_rnn.hello`: what Keras and PyTorch runs share (settings, history).
- `keras_rnn.models`: builders for the notes' models (3.1, 3.2, 3.3) and the
  task shapes of section 1.2, for `"rnn"`, `"lstm"` and `"gru"` cells.
- `keras_rnn.train`: trains a hello model as the notes do.
- `keras_rnn.optimizers`: `TorchAdam`, PyTorch's Adam for Keras models.
- `keras_rnn.torch_twins`: the notes' PyTorch models (imports torch).
- `keras_rnn.trajectory`: a Keras model and its PyTorch twin trained side by
  side from the same weights (imports torch and `parity`).

Example:

>>> from keras_rnn import models, train
>>> model = models.build_hello_model("embedding", "gru")
>>> history = train.train_hello(model, "embedding", epochs=15, print_fn=None)
"""
