"""The notes' worked example in Keras: learn "hello" -> "ohlol".

Trains every variant of the notes' section 3 (3.1 a cell stepped by hand,
3.2 one recurrent layer, 3.3 embedding + two layers + dense), each with a
plain RNN, an LSTM and a GRU cell, printing the notes' line per epoch, and
ends with a summary table.

    python examples/hello_keras.py                        # all nine variants
    python examples/hello_keras.py --model cell --cell lstm
    python examples/hello_keras.py --compare-torch        # trajectory parity
    python examples/hello_keras.py --compare-torch --plot losses.png
    python examples/hello_keras.py --compare-torch --optimizer keras  # drift

With `--compare-torch`, each Keras model starts from the initial weights of
its PyTorch twin (`keras_rnn.torch_twins`, the notes' code), copied with
`parity`; both train for the same epochs, and the script prints both losses,
their difference and both predictions per epoch. It exits with status 1 if
any difference exceeds `keras_rnn.trajectory.TOLERANCE`.
"""

import argparse
import sys

import keras

from keras_rnn import hello, models, train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    hello.add_variant_arguments(parser)
    parser.add_argument(
        "--compare-torch",
        action="store_true",
        help="train the PyTorch twin from the same weights and compare losses",
    )
    parser.add_argument(
        "--optimizer",
        choices=train.OPTIMIZERS,
        default="torch",
        help="Keras side's Adam: PyTorch's update (default) or keras.optimizers.Adam",
    )
    parser.add_argument("--plot", metavar="PATH", help="write the loss curves to a PNG")
    return parser.parse_args(argv)


def train_keras(model_kind, cell, args):
    """One Keras run from Keras's own initial weights; prints the notes' lines."""
    keras.utils.set_random_seed(args.seed)
    model = models.build_hello_model(model_kind, cell)
    return train.train_hello(model, model_kind, args.epochs, args.optimizer)


def format_table(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(str(cell).rjust(width) for cell, width in zip(line, widths)) for line in lines
    )


def summary_rows(results):
    """One row per variant: epoch first predicting "ohlol", final loss(es)."""
    rows = []
    for name, keras_history, comparison in results:
        reached = keras_history.first_epoch_reaching()
        row = [name, reached if reached else "-", f"{keras_history.losses[-1]:.4f}"]
        if comparison is not None:
            row += [f"{comparison.torch.losses[-1]:.4f}", f"{comparison.max_difference:.1e}"]
        rows.append(row)
    return rows


def plot_losses(path, results):
    """One panel per variant: the Keras loss curve, and PyTorch's if compared."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(results))
    rows = -(-len(results) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False
    )
    for axis in axes.flat[len(results):]:
        axis.set_visible(False)
    for axis, (name, keras_history, comparison) in zip(axes.flat, results):
        epochs = range(1, len(keras_history.losses) + 1)
        axis.plot(epochs, keras_history.losses, "o-", label="Keras", markersize=3)
        if comparison is not None:
            axis.plot(epochs, comparison.torch.losses, "x--", label="PyTorch", markersize=4)
            axis.set_title(f"{name}  (max |diff| {comparison.max_difference:.0e})", fontsize=9)
        else:
            axis.set_title(name, fontsize=9)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel("loss")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None):
    args = parse_args(argv)
    if args.compare_torch:
        # Imports torch and parity; plain Keras runs need neither.
        from keras_rnn import trajectory
    results = []
    for model_kind, cell in hello.variants(args):
        name = hello.variant_name(model_kind, cell)
        print(f"=== {name} (seed {args.seed}, {args.optimizer}-style Adam) ===")
        if args.compare_torch:
            comparison = trajectory.compare_hello(
                model_kind, cell, args.epochs, args.seed, args.optimizer
            )
            print("\n".join(comparison.lines()))
            results.append((name, comparison.keras, comparison))
        else:
            results.append((name, train_keras(model_kind, cell, args), None))
        print()

    header = ["variant", "ohlol at epoch", "final loss"]
    if args.compare_torch:
        header += ["torch final loss", "max |diff|"]
    print(format_table(header, summary_rows(results)))

    if args.plot:
        plot_losses(args.plot, results)
        print(f"\nLoss curves written to {args.plot}")

    if args.compare_torch:
        worst = max(comparison.max_difference for _, _, comparison in results)
        verdict = "OK" if worst <= trajectory.TOLERANCE else "FAIL"
        print(
            f"\nLargest per-epoch loss difference over all variants: {worst:.2e} "
            f"(tolerance {trajectory.TOLERANCE:.0e}): {verdict}"
        )
        return 0 if verdict == "OK" else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
