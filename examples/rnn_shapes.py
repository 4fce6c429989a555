"""Sections 2.2 and 2.3 of the notes in Keras: a recurrent layer's shapes.

The notes run `torch.nn.RNN(input_size=4, hidden_size=2, num_layers=1)` on a
whole sequence: time-major by default (2.2, `Output size: (3, 1, 2)`) and
with `batch_first=True` (2.3, `Output size: (1, 3, 2)`); the hidden state is
`(num_layers, batch, hidden) = (1, 1, 2)` either way, and equals the last
output step.

Keras layers are always batch-major and return the final state as
`(batch, hidden)`: `keras.layers.SimpleRNN(2, return_sequences=True,
return_state=True)`. The time-major case therefore transposes in and out,
and the state gets PyTorch's leading `num_layers` axis to compare shapes.

    python examples/rnn_shapes.py [--cell rnn|lstm|gru] [--seed 0]

Checked: the shapes above, and that the last output step equals the final
hidden state (exactly). Exits with status 1 if not.
"""

import argparse
import sys

import keras
import numpy as np
from keras import ops

from keras_rnn import hello, models

BATCH_SIZE = 1
SEQ_LEN = 3
INPUT_SIZE = 4
HIDDEN_SIZE = 2
NUM_LAYERS = 1


def run_section(title, layer, inputs, time_major):
    """Runs `layer` on `inputs` laid out as PyTorch would, prints as the notes do.

    Returns a list of failed checks.
    """
    print(f"=== {title}: input {inputs.shape} ({'time' if time_major else 'batch'}-major) ===")
    # Keras is batch-major: (seq, batch, feature) <-> (batch, seq, feature).
    batch_major = np.swapaxes(inputs, 0, 1) if time_major else inputs
    output, hidden, *cell_state = layer(batch_major)
    output = ops.convert_to_numpy(output)
    hidden = ops.convert_to_numpy(hidden)
    if time_major:
        output = np.swapaxes(output, 0, 1)
    # PyTorch stacks one final state per layer in front: (num_layers, batch, hidden).
    stacked_hidden = hidden[None]
    print("Output size:", output.shape)
    print("Output:", output)
    print("Hidden size:", stacked_hidden.shape, f"(Keras returns {hidden.shape})")
    print("Hidden:", stacked_hidden)
    if cell_state:
        print("LSTM cell state size:", tuple(cell_state[0].shape))

    seq_axis_first = (SEQ_LEN, BATCH_SIZE) if time_major else (BATCH_SIZE, SEQ_LEN)
    last_step = output[-1] if time_major else output[:, -1]
    equal = np.array_equal(last_step, hidden)
    print("Last output step equals final hidden state:", equal, "\n")
    failures = []
    if output.shape != (*seq_axis_first, HIDDEN_SIZE):
        failures.append(f"{title}: output shape {output.shape}")
    if stacked_hidden.shape != (NUM_LAYERS, BATCH_SIZE, HIDDEN_SIZE):
        failures.append(f"{title}: hidden shape {stacked_hidden.shape}")
    if not equal:
        failures.append(f"{title}: last output step != final hidden state")
    return failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=hello.CELL_TYPES, default="rnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    layer = models.recurrent_layer(
        args.cell, HIDDEN_SIZE, return_sequences=True, return_state=True
    )
    failures = run_section(
        "2.2 time-major (PyTorch's default)",
        layer,
        rng.standard_normal((SEQ_LEN, BATCH_SIZE, INPUT_SIZE)).astype("float32"),
        time_major=True,
    )
    failures += run_section(
        "2.3 batch-major (batch_first=True; Keras's only layout)",
        layer,
        rng.standard_normal((BATCH_SIZE, SEQ_LEN, INPUT_SIZE)).astype("float32"),
        time_major=False,
    )
    if failures:
        print("FAILED:", "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
