"""The ``brats3d`` command: parses arguments and calls the library. No pipeline logic lives here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from brats3d import __version__
from brats3d.errors import BratsInputError

LAYOUT_CHOICES = ("msd", "brats2021", "brats2023")


def _shape(text: str) -> tuple[int, int, int]:
    try:
        dims = tuple(int(x) for x in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 8:
        raise argparse.ArgumentTypeError(f"expected three sizes like 96x96x64 (each >= 8), got {text!r}")
    return dims  # type: ignore[return-value]


def _cmd_inspect(args: argparse.Namespace) -> int:
    from brats3d.data.inspect import inspect_dataset

    report = inspect_dataset(args.data, layout=args.layout, full=args.full)
    print(report.format())
    return 1 if report.problems else 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from brats3d.data.synthetic import write_dataset

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise BratsInputError(out, "output directory is not empty (use --force to add cases to it)")
    ids = write_dataset(out, args.cases, layout=args.layout, shape=args.shape, seed=args.seed)
    print(f"wrote {len(ids)} synthetic {args.layout} cases of {'x'.join(map(str, args.shape))} voxels to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from brats3d.config import load_config
    from brats3d.training.trainer import train

    if args.resume:
        result = train(run_dir=args.resume, data_dir=args.data, resume=True, overrides=args.set)
    else:
        if not args.config:
            raise BratsInputError(None, "pass --config FILE (see configs/) or --resume RUN_DIR")
        config = load_config(args.config, args.set)
        result = train(config, run_dir=args.out, data_dir=args.data)
    if result.is_main:
        best = f"best mean Dice {result.best_mean_dice:.4f}"
        print(f"done: {result.epochs_done} epochs, {best}; run folder {result.run_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brats3d",
        description="3D brain-tumour segmentation in multi-modal MRI: inspect data, train, predict, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"brats3d {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("inspect", help="detect a dataset's layout, list its cases and report problems")
    p.add_argument("data", help="dataset directory (Decathlon Task01, BraTS 2018-2021 or BraTS 2023+)")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, help="skip detection and assume this layout")
    p.add_argument("--full", action="store_true", help="read every voxel (finds truncated files and NaNs; slower)")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("synth", help="write synthetic BraTS-like phantom cases in a dataset layout")
    p.add_argument("out", help="output directory")
    p.add_argument("--cases", type=int, default=8, help="number of cases (default 8)")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default="msd", help="dataset layout (default msd)")
    p.add_argument("--shape", type=_shape, default=(96, 96, 64), help="volume size XxYxZ (default 96x96x64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "train",
        help="train a network from a YAML config (multi-GPU: torchrun --nproc_per_node=N -m brats3d.cli train ...)",
    )
    p.add_argument("--config", help="YAML config (see configs/)")
    p.add_argument("--data", help="dataset directory (overrides data.root)")
    p.add_argument("--out", default="runs/latest", help="run folder for checkpoints and logs (default runs/latest)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=5"
    )
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brats3d`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BratsInputError as exc:
        if args.debug:
            raise
        print(f"brats3d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"brats3d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
