"""Section 2.1 of the notes in Keras: a recurrent cell stepped by hand.

The notes build `torch.nn.RNNCell(input_size=4, hidden_size=2)` and feed it
a `(seq_len=3, batch=1, input=4)` sequence one step at a time, from a zero
hidden state, printing each step's shapes and hidden state. Keras's cell is
`keras.layers.SimpleRNNCell(2)`; Keras data is batch-major, so the steps are
`inputs[:, t, :]`. A cell call returns `(output, new_states)`: for a plain
RNN both hold the same tensor.

    python examples/rnncell_shapes.py [--cell rnn|lstm|gru] [--seed 0]

Checked: every step's input is `(batch, input_size)` and hidden state
`(batch, hidden_size)`, and the hand-written loop gives the same outputs as
`keras.layers.RNN(cell)` running the loop itself. Exits with status 1 if not.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=hello.CELL_TYPES, default="rnn")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)

    cell = models.recurrent_cell(args.cell, HIDDEN_SIZE)
    # (batch, seq_len, input_size): Keras's layout; the notes' is time-major.
    dataset = np.random.default_rng(args.seed).standard_normal(
        (BATCH_SIZE, SEQ_LEN, INPUT_SIZE)
    ).astype("float32")
    # Zeros, (batch, hidden): a list of one tensor, or [h, c] for an LSTM.
    states = cell.get_initial_state(batch_size=BATCH_SIZE)
    print("Initial hidden size:", tuple(states[0].shape))

    failures = []
    outputs = []
    for idx in range(SEQ_LEN):
        input = dataset[:, idx, :]
        print("=" * 20, idx, "=" * 20)
        print("Input size:", input.shape)
        hidden, states = cell(input, states)
        print("output size:", tuple(hidden.shape))
        print(ops.convert_to_numpy(hidden))
        outputs.append(ops.convert_to_numpy(hidden))
        if input.shape != (BATCH_SIZE, INPUT_SIZE) or tuple(hidden.shape) != (
            BATCH_SIZE,
            HIDDEN_SIZE,
        ):
            failures.append(f"step {idx}: shapes {input.shape} -> {tuple(hidden.shape)}")

    # The same cell, looped by Keras's RNN layer over the whole sequence.
    layer_outputs = ops.convert_to_numpy(
        keras.layers.RNN(cell, return_sequences=True)(dataset)
    )
    same = np.allclose(np.stack(outputs, axis=1), layer_outputs, atol=1e-6)
    print("\nHand-written loop equals keras.layers.RNN(cell):", same)
    if not same:
        failures.append("the hand-written loop differs from keras.layers.RNN(cell)")

    if failures:
        print("FAILED:", "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
