"""The `parity` command line: inspect, convert and check checkpoint files.

    parity inspect FILE
    parity convert SRC DST [--nonlinearity relu] [--prefix rnn.]
    parity check SRC DST [--seq-len 50 --batch 4 --seed 0 --atol A --rtol R]

`main(argv)` returns the exit code instead of exiting, so tests can call it
in-process; `python -m parity` and the `parity` console script exit with it.
"""

import argparse
import dataclasses
import sys
import textwrap
import traceback

EXIT_OK = 0
EXIT_PARITY_FAILED = 1
EXIT_USAGE = 2  # also: missing file, unknown format (`parity.io.FileError`)
EXIT_CORRUPT = 3  # truncated, corrupt or unsafe file (`parity.io.CorruptFileError`)
EXIT_UNSUPPORTED = 4  # the weights form no supported layer (`parity.ConversionError`)
EXIT_INTERNAL = 5  # a bug in parity: printed with its traceback

EXIT_CODES_HELP = """\
exit codes:
  0  success (check: every output within tolerance)
  1  check: some output differs by more than the tolerance, or the two files
     hold different architectures
  2  usage error, missing file, unknown format, unwritable destination
  3  truncated or corrupt file, or an unsafe one: a pickle that would run code
     or is not a plain tensor dictionary, a .keras file with a Lambda layer
  4  the weights form no supported layer (or an unsupported option/dtype)
  5  internal error (a bug in parity; the traceback is printed)
"""

FORMATS_HELP = """\
formats (by suffix):
  .pt .pth       PyTorch state_dict, read with torch.load(weights_only=True)
  .safetensors   safetensors, PyTorch names
  .keras         Keras 3 archive, read with safe_mode=True
  .weights.h5    Keras 3 weights; the layers are inferred from the file
  .h5 .hdf5      Keras 2 / tf.keras 2 HDF5 weights (read only)
"""

MAIN_EXAMPLES = """\
examples:
  parity inspect model.pt
  parity convert model.pt model.keras
  parity check model.pt model.keras
"""

INSPECT_EXAMPLES = """\
example:
  $ parity inspect lstm.pt
  lstm.pt: PyTorch state_dict (pickle, weights only), 4 tensors
  name          shape    dtype
  ...
  layers:
    (no prefix)  LSTM(input_size=8, hidden_size=16, num_layers=1, ...)
"""

CONVERT_EXAMPLES = """\
examples:
  parity convert lstm.pt lstm.keras
  parity convert model.safetensors encoder.weights.h5 --prefix encoder.rnn.
  parity convert rnn.pt rnn.keras --nonlinearity relu
  parity convert tied.pt tied.keras --embedding emb --linear decoder
"""

CHECK_EXAMPLES = """\
example:
  parity check lstm.pt lstm.keras --seq-len 50 --batch 4 --seed 0
"""


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30)


def _paragraph(text):
    # RawDescriptionHelpFormatter keeps the epilogs' layout; wrap the prose here.
    return textwrap.fill(text, width=79)


def _add_inference_options(parser):
    group = parser.add_argument_group("inference (for files that do not record it)")
    group.add_argument(
        "--nonlinearity", choices=("tanh", "relu"), default=None,
        help="activation of every nn.RNN / SimpleRNN layer; the weights do not "
             "record it (default: tanh, or what a .keras file records)",
    )
    group.add_argument(
        "--prefix", default=None, metavar="PREFIX",
        help="convert only the layers under this module prefix, e.g. 'rnn.' "
             "(the prefix is removed from the names)",
    )
    group.add_argument(
        "--embedding", action="append", default=[], metavar="PREFIX",
        help="the layer with this prefix is an nn.Embedding (a lone 2-D weight "
             "is otherwise decided by its name and neighbours); '' names a bare layer",
    )
    group.add_argument(
        "--linear", action="append", default=[], metavar="PREFIX",
        help="the layer with this prefix is a bias-free nn.Linear",
    )


def build_parser():
    parser = argparse.ArgumentParser(
        prog="parity",
        description=_paragraph(
            "Inspect, convert and check PyTorch / Keras 3 recurrent-network checkpoints."
        ),
        epilog=FORMATS_HELP + "\n" + MAIN_EXAMPLES + "\n" + EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    inspect = commands.add_parser(
        "inspect", help="list every weight and the layers inferred from them",
        description=_paragraph(
            "Lists every weight of FILE (name, shape, dtype) and the layers parity "
            "infers from them, with their configs."
        ),
        epilog=INSPECT_EXAMPLES + "\n" + EXIT_CODES_HELP, formatter_class=_formatter,
    )
    inspect.add_argument("file", metavar="FILE")
    _add_inference_options(inspect)

    convert = commands.add_parser(
        "convert", help="convert a checkpoint to another format",
        description=_paragraph(
            "Converts SRC to DST, each in the format its suffix names, inferring the "
            "architecture from SRC's weights, and prints what it built. DST is "
            "written under a temporary name and renamed when complete."
        ),
        epilog=CONVERT_EXAMPLES + "\n" + FORMATS_HELP + "\n" + EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    convert.add_argument("src", metavar="SRC")
    convert.add_argument("dst", metavar="DST")
    _add_inference_options(convert)

    check = commands.add_parser(
        "check", help="run both files on the same input and compare",
        description=_paragraph(
            "Builds the model of each file (a PyTorch one and a Keras one; two files "
            "of one framework are compared through parity's conversion), runs both "
            "on the same random input and prints the parity report of every output "
            "and final state. Exits 0 only when every element is within --atol + "
            "--rtol * |expected|."
        ),
        epilog=CHECK_EXAMPLES + "\n" + EXIT_CODES_HELP, formatter_class=_formatter,
    )
    check.add_argument("src", metavar="SRC")
    check.add_argument("dst", metavar="DST")
    check.add_argument("--seq-len", type=_positive_int, default=50,
                       help="time steps of the random input (default: 50)")
    check.add_argument("--batch", type=_positive_int, default=4,
                       help="batch size of the random input (default: 4)")
    check.add_argument("--seed", type=int, default=0,
                       help="seed of the random input (default: 0)")
    check.add_argument("--atol", type=float, default=None,
                       help="absolute tolerance (default: 1e-5 for float32, 1e-10 for float64)")
    check.add_argument("--rtol", type=float, default=None,
                       help="relative tolerance (default: 1e-5 for float32, 1e-10 for float64)")
    _add_inference_options(check)
    return parser


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1. Received: {text}")
    return value


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _table(rows, indent=""):
    from parity.tolerance import render_table

    return "\n".join(indent + line for line in render_table(rows))


def _layers_text(layers, indent="  "):
    from parity.infer import describe_prefix

    names = [p if p else describe_prefix(p) for p, _ in layers]
    width = max(len(n) for n in names)
    return "\n".join(f"{indent}{n.ljust(width)}  {spec}" for n, (_, spec) in zip(names, layers))


def _header(checkpoint):
    count = len(checkpoint.entries)
    return f"{checkpoint.path}: {checkpoint.format.description}, {count} weight(s)"


def _print_notes(checkpoint):
    for note in checkpoint.notes:
        print(f"parity: note: {note}", file=sys.stderr)


def _read(args, path):
    from parity import io

    return io.read(path, nonlinearity=args.nonlinearity, embedding=args.embedding,
                   linear=args.linear, prefix=args.prefix)


def _warn_unused_nonlinearity(args, *checkpoints):
    from parity.infer import has_rnn

    if args.nonlinearity and not any(has_rnn(c.layers) for c in checkpoints):
        print(f"parity: note: --nonlinearity {args.nonlinearity} ignored: no RNN layer",
              file=sys.stderr)


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def run_inspect(args):
    from parity import io

    # The listing comes first, so it shows even when no layer can be inferred.
    fmt = io.format_of(args.file)
    entries = io.list_entries(args.file)
    print(f"{args.file}: {fmt.description}, {len(entries)} weight(s)\n")
    rows = [("name", "shape", "dtype")]
    rows += [(e.name, str(e.shape), e.dtype) for e in entries]
    print(_table(rows))
    checkpoint = _read(args, args.file)
    _print_notes(checkpoint)
    _warn_unused_nonlinearity(args, checkpoint)
    origin = "as the file records them" if checkpoint.keras_object is not None else (
        "inferred from the weights")
    print(f"\nlayers ({origin}):")
    print(_layers_text(checkpoint.layers))
    return EXIT_OK


def run_convert(args):
    from parity import io

    io.format_of(args.dst, writing=True)  # refuse an unwritable suffix before reading
    checkpoint = _read(args, args.src)
    _print_notes(checkpoint)
    _warn_unused_nonlinearity(args, checkpoint)
    print(f"read {_header(checkpoint)}")
    print(_layers_text(checkpoint.layers))
    written = io.write(checkpoint, args.dst)
    print(f"wrote {args.dst}: {written}")
    return EXIT_OK


def _same_architecture(a, b):
    """Spec lists equal up to prefixes and training-only dropout."""

    def strip(spec):
        return dataclasses.replace(spec, dropout=0.0) if hasattr(spec, "dropout") else spec

    return [strip(s) for _, s in a] == [strip(s) for _, s in b]


def random_input(spec, batch, seq_len, seed):
    """The random input for a model whose first layer is `spec`, in its torch layout."""
    import numpy as np

    from parity.recurrent import RecurrentSpec

    rng = np.random.default_rng(seed)
    if getattr(spec, "kind", None) == "embedding":
        return rng.integers(0, spec.input_size, size=(batch, seq_len)).astype("int64")
    if isinstance(spec, RecurrentSpec) and spec.cell:
        # A cell runs as a loop over time: (time, batch, features).
        return rng.normal(size=(seq_len, batch, spec.input_size)).astype(spec.dtype)
    # Every module parity builds is batch_first; Linear takes any leading dims.
    return rng.normal(size=(batch, seq_len, spec.input_size)).astype(spec.dtype)


def run_check(args):
    import parity
    from parity import io

    first, second = _read(args, args.src), _read(args, args.dst)
    for checkpoint in (first, second):
        _print_notes(checkpoint)
        print(f"{_header(checkpoint)}")
        print(_layers_text(checkpoint.layers))
    _warn_unused_nonlinearity(args, first, second)
    if not _same_architecture(first.layers, second.layers):
        print(f"\nFAIL: {args.src} and {args.dst} hold different architectures; "
              f"nothing was run.")
        return EXIT_PARITY_FAILED
    # The PyTorch side comes from a PyTorch file when there is one; the Keras
    # side from a Keras file, else from parity's conversion of the other file.
    torch_file, keras_file = first, second
    if first.format.framework == "keras" and second.format.framework == "torch":
        torch_file, keras_file = second, first
    keras_model = io.keras_object(keras_file)
    torch_model, structure = None, ""
    if keras_file.keras_object is not None:
        # A .keras file records what weights do not (return_sequences, activation
        # layers): run the PyTorch weights in that structure when their names fit.
        candidate = parity.to_torch(keras_model)
        if list(candidate.state_dict()) == list(torch_file.state_dict):
            torch_model = io.torch_object(torch_file, structure=candidate)
            structure = f" in the structure of {keras_file.path}"
    if torch_model is None:
        torch_model = io.torch_object(torch_file)
    spec = torch_file.layers[0][1]
    tolerance = parity.default_tolerance(spec.dtype)
    atol = tolerance["atol"] if args.atol is None else args.atol
    rtol = tolerance["rtol"] if args.rtol is None else args.rtol
    x = random_input(spec, args.batch, args.seq_len, args.seed)
    report = parity.compare(torch_model, keras_model, x, atol=atol, rtol=rtol)
    print(f"\ntorch side: {torch_file.path}{structure}; keras side: {keras_file.path} "
          f"({io.describe_keras(keras_model)})")
    print(f"input: shape {x.shape} {x.dtype}, seed {args.seed}\n")
    print(report)
    return EXIT_OK if report.ok else EXIT_PARITY_FAILED


COMMANDS = {"inspect": run_inspect, "convert": run_convert, "check": run_check}


def main(argv=None):
    """Runs the command line; returns the exit code (see `EXIT_CODES_HELP`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    from parity.errors import ConversionError

    try:
        return COMMANDS[args.command](args)
    except ConversionError as error:
        print(f"parity: error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", EXIT_UNSUPPORTED)
    except KeyboardInterrupt:
        print("parity: interrupted", file=sys.stderr)
        return 130
    except Exception:  # a bug, not a bad file: keep the traceback for the report
        traceback.print_exc()
        print("parity: internal error (a bug in parity; please report the traceback "
              "above)", file=sys.stderr)
        return EXIT_INTERNAL
