"""Port the notes' trained 3.3 model from PyTorch to Keras, save it, reload it.

Trains the notes' embedding model (`Embedding(4, 10)` -> 2 stacked recurrent
layers of 8 -> `Linear(8, 4)`) in PyTorch for 15 epochs, copies every weight
into the Keras model that mirrors it with `parity.copy_weights` (a whole
model: layers matched in order, all checked before anything is written),
saves it as a `.keras` file, reloads it with `safe_mode=True` and shows that
both frameworks predict the same string with the same logits.

    python examples/port_model.py                 # the RNN model
    python examples/port_model.py --cell lstm --out /tmp/port

Exit status 1 if any logit differs by more than 1e-5.
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import parity  # noqa: E402
from keras_rnn import data, models, torch_twins  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell", choices=("rnn", "lstm", "gru"), default="rnn")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="folder for the .keras file (default: a temporary one)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    twin = torch_twins.build_twin("embedding", args.cell)
    print(f"Training the PyTorch model ({args.cell}) for {args.epochs} epochs:")
    torch_twins.train_twin(twin, "embedding", epochs=args.epochs)
    twin.eval()

    keras_model = models.build_embedding_model(args.cell)
    parity.copy_weights(twin, keras_model)
    indices, _ = data.hello_arrays("indices")           # "hello", (1, 5)
    report = parity.assert_parity(twin, keras_model, indices)
    print("\nPyTorch -> Keras:\n" + str(report))

    out = args.out or tempfile.mkdtemp(prefix="port_model_")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"hello_{args.cell}.keras")
    keras_model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    reloaded_report = parity.compare(twin, reloaded, indices)
    print(f"\nSaved {path} and reloaded it:\n{reloaded_report}")

    with torch.no_grad():
        torch_logits = twin(torch.from_numpy(indices)).numpy()
    keras_logits = keras.ops.convert_to_numpy(reloaded(indices)).reshape(torch_logits.shape)
    torch_text = data.decode_logits(torch_logits)
    keras_text = data.decode_logits(keras_logits)
    print(f"\nPyTorch predicts {torch_text!r}, the reloaded Keras model predicts "
          f"{keras_text!r}; largest logit difference {np.abs(torch_logits - keras_logits).max():.3g}")
    same = reloaded_report.ok and torch_text == keras_text
    print("identical predictions" if same else "PREDICTIONS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
