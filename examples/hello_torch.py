"""The notes' PyTorch code for "hello" -> "ohlol", runnable, with LSTM/GRU twins.

Runs the models of the notes' section 3 as written (`keras_rnn.torch_twins`:
PyTorch's initialisers, both biases trainable, `torch.optim.Adam` with its
defaults and the notes' learning rates), printing the notes' line per epoch.
Imports neither Keras nor TensorFlow.

    python examples/hello_torch.py                    # all nine variants
    python examples/hello_torch.py --model layer --cell rnn --seed 3
"""

import argparse

import torch

from keras_rnn import hello, torch_twins


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args = hello.add_variant_arguments(parser).parse_args(argv)
    for model_kind, cell in hello.variants(args):
        print(f"=== {hello.variant_name(model_kind, cell)} (seed {args.seed}) ===")
        # Seeded per variant, so that one variant run alone starts from the
        # same weights as in a run of all nine.
        torch.manual_seed(args.seed)
        twin = torch_twins.build_twin(model_kind, cell)
        print(twin)
        history = torch_twins.train_twin(twin, model_kind, args.epochs)
        reached = history.first_epoch_reaching()
        print(f"ohlol first predicted at epoch: {reached if reached else '-'}\n")


if __name__ == "__main__":
    main()
