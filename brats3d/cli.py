"""The ``brats3d`` command: parses arguments and calls the library. No pipeline logic lives here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from brats3d import __version__
from brats3d.config import DEFAULT_CONFIG, load_config, packaged_configs
from brats3d.data.layouts import MODALITIES, Layout
from brats3d.data.slices import SliceLayout
from brats3d.errors import BratsInputError, find_input_error
from brats3d.files import ensure_output_dir, settle_outputs
from brats3d.transforms.resampling import SPACING_TOLERANCE

LAYOUT_CHOICES = tuple(layout.value for layout in Layout)
SLICE_LAYOUTS = tuple(layout.value for layout in SliceLayout)
DEFAULT_CHECKPOINT = "runs/latest/best.pt"  # where `brats3d train` writes without --out


def _sizes(example: str, minimum: int) -> Callable[[str], tuple[int, ...]]:
    """An argparse type for sizes written like ``example`` (as many as it has), each at least ``minimum``."""
    count = len(example.split("x"))
    words = {2: "two", 3: "three"}[count]

    def parse(text: str) -> tuple[int, ...]:
        try:
            dims = tuple(int(x) for x in text.lower().replace(",", "x").split("x"))
        except ValueError:
            dims = ()
        if len(dims) != count or min(dims) < minimum:
            raise argparse.ArgumentTypeError(f"expected {words} sizes like {example} (each >= {minimum}), got {text!r}")
        return dims

    return parse


def _add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """The sliding-window options of ``predict``, shared by ``evaluate --checkpoint`` so both predict alike."""
    p.add_argument(
        "--window",
        type=_sizes("160x160x32", 8),
        help="sliding-window size XxYxZ (default: the recipe's inference.window, else its training patch)",
    )
    p.add_argument("--overlap", type=float, default=0.5, help="sliding-window overlap (default 0.5)")
    p.add_argument("--sw-batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        help="average over the flips the recipe trained on (8 on three axes, 8x the compute; default: the recipe's "
        "choice; unet3d: on)",
    )
    p.add_argument(
        "--threshold", type=float, help="probability threshold for every region (default: the run's rules, else 0.5)"
    )
    p.add_argument(
        "--min-component", type=int, help="drop tumour components under N voxels (default: the run's rules, else 0)"
    )
    p.add_argument(
        "--min-enhancing",
        type=int,
        help="relabel predicted enhancing tumour as core when under N voxels (default: the run's rules, else 0)",
    )
    p.add_argument(
        "--enhancing-contrast",
        type=_z_or_off,
        metavar="Z|off",
        help="relabel predicted enhancing voxels as core where T1ce is under Z standard deviations above the "
        "scan's healthy brain (default: the run's rules, else off)",
    )
    p.add_argument(
        "--resample",
        action=argparse.BooleanOptionalAction,
        default=True,
        help=f"predict a scan whose voxel spacing is over {SPACING_TOLERANCE * 100:g}%% from the training data's at "
        "the training spacing, probabilities resampled back to the scan's grid; voxel counts of the rules keep their "
        "volume (default on)",
    )
    p.add_argument("--opening", type=int, default=0, help="2D: morphological opening, disc radius in pixels")
    p.add_argument("--closing", type=int, default=0, help="2D: morphological closing, disc radius in pixels")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def _z_or_off(text: str) -> float | str:
    """``--enhancing-contrast``: a z-score, or ``off``."""
    if text.lower() == "off":
        return "off"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a z-score or 'off', got {text!r}") from None


def _predict_options(args: argparse.Namespace, **extra):
    """PredictOptions from the arguments of ``_add_inference_arguments`` plus command-specific ``extra``."""
    from brats3d.inference.predict import PredictOptions

    return PredictOptions(
        window=args.window,
        overlap=args.overlap,
        sw_batch_size=args.sw_batch_size,
        tta=args.tta,
        threshold=args.threshold,
        min_component=args.min_component,
        min_enhancing=args.min_enhancing,
        enhancing_contrast=args.enhancing_contrast,
        resample=args.resample,
        device=args.device,
        **extra,
    )


def _cmd_inspect(args: argparse.Namespace) -> int:
    from brats3d.data.inspect import inspect_dataset
    from brats3d.data.slices import inspect_slices, is_slice_dataset

    if args.layout in SLICE_LAYOUTS or (args.layout is None and is_slice_dataset(args.data)):
        report = inspect_slices(args.data, args.layout, args.patient_pattern, full=args.full)
    else:
        report = inspect_dataset(args.data, layout=args.layout, full=args.full)
    print(report.format())
    return 1 if report.problems else 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from brats3d.data.synthetic import write_dataset

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise BratsInputError(out, "output directory is not empty (use --force to add cases to it)")
    if args.layout in SLICE_LAYOUTS:
        from brats3d.data.synthetic_slices import write_lgg_dataset, write_paired_dataset

        size, per = args.image_size, args.slices
        if args.layout == "lgg":
            write_lgg_dataset(out, args.cases, per, size, seed=args.seed)
        else:
            channels = 3 if args.rgb else 1
            write_paired_dataset(out, args.cases, per, size, channels, args.classes, seed=args.seed)
        print(f"wrote {args.cases} synthetic {args.layout} patients of {per} slices ({size[0]}x{size[1]}) to {out}")
        return 0
    ids = write_dataset(out, args.cases, layout=args.layout, shape=args.shape, seed=args.seed)
    print(f"wrote {len(ids)} synthetic {args.layout} cases of {'x'.join(map(str, args.shape))} voxels to {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from brats3d.training.trainer import train

    if args.resume:
        results = [train(run_dir=args.resume, data_dir=args.data, resume=True, overrides=args.set)]
    elif args.folds:
        folds = range(args.folds) if args.fold == "all" else [_fold_number(args.fold, args.folds)]
        load_config(args.config, [*args.set, f"data.folds={args.folds}"])  # fail on a bad config before any fold
        results = []
        for k in folds:
            config = load_config(args.config, [*args.set, f"data.folds={args.folds}", f"data.fold={k}"])
            results.append(train(config, run_dir=Path(args.out) / f"fold_{k}", data_dir=args.data))
    else:
        results = [train(load_config(args.config, args.set), run_dir=args.out, data_dir=args.data)]
    for result in results:
        if result.is_main:
            best = f"best mean Dice {result.best_mean_dice:.4f}" if result.best_mean_dice >= 0 else "no validation"
            print(f"done: {result.epochs_done} epochs, {best}; run folder {result.run_dir}")
    return 0


def _fold_number(text: str, folds: int) -> int:
    if not text.isdigit() or int(text) >= folds:
        raise BratsInputError(None, f"--fold must be 'all' or a number from 0 to {folds - 1}, got {text!r}")
    return int(text)


def _cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from brats3d.inference.predict import Predictor, load_truth, resolve_inputs, summary_line
    from brats3d.models.checkpoint import checkpoint_kind

    checkpoints = _existing_checkpoints(args.checkpoint)
    if checkpoint_kind(checkpoints[0]) == "slices2d":
        return _predict_slices(args, checkpoints)
    modality_files = {"flair": args.flair, "t1": args.t1, "t1ce": args.t1ce, "t2": args.t2}
    cases = resolve_inputs(args.inputs, modality_files, args.convention)
    if args.label and len(cases) != 1:
        raise BratsInputError(args.label, "--label needs exactly one input case")
    options = _predict_options(
        args,
        save_probabilities=args.save_probabilities,
        pictures=not args.no_pictures,
        picture_modality=args.modality,
    )
    ensure_output_dir(args.out)
    predictor = Predictor(checkpoints, options)
    failures = []
    for case in tqdm(cases, desc="cases", disable=len(cases) < 2 or None):
        try:  # over a folder, one bad case does not stop the others; it is listed at the end
            prediction = predictor.predict(case)
            truth = load_truth(args.label, prediction) if args.label else None
            predictor.write(prediction, args.out, truth)
        except Exception as exc:
            error = find_input_error(exc)
            if error is None:
                raise
            failures.append(str(error))
            continue
        print(summary_line(prediction))
    if len(failures) < len(cases):
        print(f"wrote {len(cases) - len(failures)} segmentation(s) to {args.out}")
    return _report_failures(args.command, failures, len(cases))


def _slice_postprocessing(args: argparse.Namespace):
    from brats3d.transforms.slices import SlicePostProcessing

    rules = SlicePostProcessing(
        args.threshold if args.threshold is not None else 0.5, args.min_component or 0, args.opening, args.closing
    )
    try:
        rules.check()
    except ValueError as exc:
        raise BratsInputError(None, str(exc)) from exc
    return rules


def _predict_slices(args: argparse.Namespace, checkpoints: list[str]) -> int:
    """2D images in, masks (same size and file type), overlay PNGs and per-patient GIFs out."""
    from brats3d.inference.slices import SliceModels, SlicePredictOptions, predict_slices, prediction_inputs

    if not args.inputs:
        raise BratsInputError(None, "give an image, a patient folder or a dataset folder to segment")
    models = SliceModels.load(checkpoints, args.device)
    inputs = [s for path in args.inputs for s in prediction_inputs(path)]
    options = SlicePredictOptions(_slice_postprocessing(args), pictures=not args.no_pictures)
    ensure_output_dir(args.out)
    written = predict_slices(models, inputs, args.out, options)
    print(f"wrote {len(written)} mask(s) to {args.out}")
    return 0


def _evaluate_slices(args: argparse.Namespace) -> int:
    """2D evaluation: --checkpoint with --data, or --pred with --ref."""
    from brats3d.data.slices import discover_slices, mask_values
    from brats3d.evaluation.slices import (
        evaluate_out_of_fold,
        evaluate_predictions,
        evaluate_with_models,
        write_slice_report,
    )
    from brats3d.inference.slices import SliceModels, SlicePredictOptions

    data = args.data or args.ref
    slices = discover_slices(data, patient_pattern=args.patient_pattern).require_clean().labelled()
    if args.cv:
        evaluation = evaluate_out_of_fold(args.cv, data, SlicePredictOptions(_slice_postprocessing(args)))
    elif args.checkpoint:
        models = SliceModels.load(_existing_checkpoints(args.checkpoint), args.device)
        evaluation = evaluate_with_models(models, slices, SlicePredictOptions(_slice_postprocessing(args)))
    else:
        evaluation = evaluate_predictions(args.pred, slices, mask_values(slices))
    out = ensure_output_dir(args.out or (Path(args.cv) / "out_of_fold" if args.cv else "evaluation"))
    report = write_slice_report(evaluation, out)
    for key, value in evaluation.summary().items():
        print(f"{key:<38} mean {value['mean']:.4f}  median {value['median']:.4f}  (n={value['n']})")
    print(f"report: {report} (and report.html, per_image.csv, per_patient.csv, summary.json)")
    return 0


def _report_failures(command: str, failures: list[str], cases: int) -> int:
    """Print each bad case on its own line, then a count when there were several cases; exit 2 when any failed.

    A single bad case is exactly one line: the file and what is wrong with it."""
    for failure in failures:
        print(f"brats3d {command}: error: {failure}", file=sys.stderr)
    if failures and cases > 1:
        outcome = "nothing was written" if len(failures) == cases else "the others are done"
        print(f"brats3d {command}: {len(failures)} of {cases} cases failed (listed above); {outcome}", file=sys.stderr)
    return 2 if failures else 0


def _existing_checkpoints(paths: list[str]) -> list[str]:
    if paths == [DEFAULT_CHECKPOINT] and not Path(DEFAULT_CHECKPOINT).is_file():
        raise BratsInputError(
            DEFAULT_CHECKPOINT,
            "no checkpoint here: train one (`brats3d train --data DIR`, which writes it) or pass --checkpoint PATH",
        )
    return paths


def _cmd_show(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from brats3d.data.io import load_case
    from brats3d.inference.predict import resolve_inputs
    from brats3d.visualize import write_case_pictures

    cases = resolve_inputs([args.case], {}, args.label_convention)
    if len(cases) != 1:
        raise BratsInputError(args.case, f"show takes one case, found {len(cases)}; point it at one case folder")
    case = replace(cases[0], label=Path(args.label)) if args.label else cases[0]
    ensure_output_dir(args.out)
    loaded = load_case(case, ras=True)
    channel = MODALITIES.index(args.modality)
    for path in write_case_pictures(args.out, case.case_id, loaded.image[channel], loaded.label):
        print(path)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from brats3d.data.slices import is_slice_dataset
    from brats3d.evaluation.crossval import evaluate_out_of_fold
    from brats3d.evaluation.evaluate import evaluate_checkpoint, evaluate_folder
    from brats3d.evaluation.report import format_table, summary_rows, write_report
    from brats3d.models.checkpoint import checkpoint_kind

    if (
        (args.checkpoint and args.data and checkpoint_kind(args.checkpoint[0]) == "slices2d")
        or (args.pred and args.ref and is_slice_dataset(args.ref))
        or (args.cv and args.data and is_slice_dataset(args.data))
    ):
        return _evaluate_slices(args)
    if (args.cv or args.checkpoint) and not args.data:
        raise BratsInputError(None, "--cv and --checkpoint need --data DATA_DIR (the labelled cases to score)")
    if not (args.cv or args.checkpoint or (args.pred and args.ref)):
        raise BratsInputError(
            None,
            "give --pred PRED_DIR --ref DATA_DIR, --checkpoint best.pt --data DATA_DIR, "
            "or --cv RUN_DIR --data DATA_DIR",
        )
    out = ensure_output_dir(args.out or (Path(args.cv) / "out_of_fold" if args.cv else "evaluation"))
    hd95 = not args.no_hd95
    if args.cv:
        evaluation = evaluate_out_of_fold(args.cv, args.data, out, _predict_options(args), hd95, keep_going=True)
    elif args.checkpoint:
        options = _predict_options(args, pictures=False)
        evaluation = evaluate_checkpoint(
            args.checkpoint, args.data, out, options, args.patches, args.case_ids, hd95, keep_going=True
        )
    else:
        evaluation = evaluate_folder(args.pred, args.ref, args.pred_convention, hd95, keep_going=True)
    scored = len(evaluation.cases) + len(evaluation.failures)
    if not evaluation.cases:
        return _report_failures(args.command, evaluation.failures, scored) or 2
    report = write_report(evaluation, out, None if args.cv or args.checkpoint else args.pred_convention)
    print(format_table(summary_rows(evaluation)))
    print(f"report: {report} (and report.html, per_case.csv, summary.json)")
    return _report_failures(args.command, evaluation.failures, scored)


def _cmd_postprocess(args: argparse.Namespace) -> int:
    from brats3d.data.layouts import discover
    from brats3d.evaluation.crossval import PROBABILITIES, fold_runs
    from brats3d.evaluation.postprocessing import choose_postprocessing, format_scores
    from brats3d.transforms.postprocess import RULES_FILE

    folds = [fold_ids for _, fold_ids in fold_runs(args.run)]
    ids = {i for fold_ids in folds for i in fold_ids}
    cases = [c for c in discover(args.data).labelled() if c.case_id in ids]
    probabilities = Path(args.oof or Path(args.run) / "out_of_fold") / PROBABILITIES
    rules, evidence = choose_postprocessing(cases, probabilities, folds=folds if len(folds) > 1 else None)
    if "nested" in evidence:
        print(
            "on unseen cases (rules chosen without each fold, scored on it): "
            f"{format_scores(evidence['nested']['mean_dice'])}; without rules "
            f"{format_scores(evidence['mean_dice_neutral'])}"
        )
    path = rules.save(Path(args.run) / RULES_FILE, evidence)
    print(
        f"chosen: thresholds {rules.thresholds}, min component {rules.min_component} voxels, "
        f"enhancing contrast {'off' if rules.min_enhancing_contrast is None else rules.min_enhancing_contrast}, "
        f"min enhancing {rules.min_enhancing} voxels -> {path} (predict applies them to this run's checkpoints)"
    )
    return 0


def _cmd_preprocess(args: argparse.Namespace) -> int:
    from brats3d.data.io import case_spacing
    from brats3d.data.layouts import discover
    from brats3d.models.device import available_cores
    from brats3d.training.cache import preprocess
    from brats3d.training.data import median_spacing

    config = load_config(args.config, args.set)
    cases = discover(args.data).require_clean().labelled()
    ensure_output_dir(args.out)
    workers = args.workers or max(1, available_cores())
    spacing = median_spacing(map(case_spacing, cases))  # what `train` on this folder works at
    done, failures = preprocess(cases, config, args.out, workers=workers, spacing=spacing)
    print(f"{args.out}: {len(done)} case(s) preprocessed, {len(cases) - len(done) - len(failures)} already fresh")
    return _report_failures(args.command, failures, len(cases))


def _cmd_export(args: argparse.Namespace) -> int:
    from brats3d.models.export import export_checkpoint

    for path in export_checkpoint(args.checkpoint, args.out, args.format):
        print(f"wrote {path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from brats3d.demo import run_demo

    if args.slices:
        from brats3d.demo import run_slice_demo

        run_slice_demo(args.out, patients=args.cases, epochs=args.epochs)
        return 0
    run_demo(args.out, cases=args.cases, epochs=args.epochs)
    return 0


def _add_config_arguments(p: argparse.ArgumentParser) -> None:
    """--config and --set, with one meaning wherever a command reads a run config."""
    p.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help=f"YAML file, or the name of a packaged config: {', '.join(packaged_configs())} (default {DEFAULT_CONFIG})",
    )
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. train.epochs=5"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brats3d",
        description="3D brain-tumour segmentation in multi-modal MRI, and 2D slice segmentation (LGG brain MRI, "
        "ultrasound, CT): inspect data, train, predict, evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"brats3d {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _add_inspect,
        _add_synth,
        _add_train,
        _add_predict,
        _add_show,
        _add_evaluate,
        _add_postprocess,
        _add_preprocess,
        _add_export,
        _add_demo,
    ):
        add(sub)
    return parser


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="detect a dataset's layout, list its cases and report problems")
    p.add_argument(
        "data",
        help="dataset directory (Decathlon Task01, BraTS 2018-2021, BraTS 2023+; 2D: Kaggle LGG or images/ + masks/)",
    )
    p.add_argument("--layout", choices=LAYOUT_CHOICES + SLICE_LAYOUTS, help="skip detection and assume this layout")
    p.add_argument("--patient-pattern", help="2D paired layout: regex whose first group is the patient id")
    p.add_argument(
        "--full",
        action="store_true",
        help="also read every voxel (NaN/Inf, label values; slower). Truncated files are found without it",
    )
    p.set_defaults(func=_cmd_inspect)


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write synthetic BraTS-like phantom cases (or 2D slices) in a dataset layout")
    p.add_argument("out", help="output directory")
    p.add_argument("--cases", type=int, default=8, help="number of cases, or patients for 2D layouts (default 8)")
    p.add_argument(
        "--layout", choices=LAYOUT_CHOICES + SLICE_LAYOUTS, default="msd", help="dataset layout (default msd)"
    )
    p.add_argument(
        "--image-size", type=_sizes("128x128", 16), default=(128, 128), help="2D: slice size HxW (default 128x128)"
    )
    p.add_argument("--slices", type=int, default=12, help="2D: slices per patient (default 12)")
    p.add_argument("--rgb", action="store_true", help="2D paired layout: RGB images (default grey)")
    p.add_argument("--classes", type=int, default=2, choices=(2, 3), help="2D paired layout: mask classes")
    p.add_argument(
        "--shape", type=_sizes("96x96x64", 8), default=(96, 96, 64), help="volume size XxYxZ (default 96x96x64)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="write into a non-empty directory")
    p.set_defaults(func=_cmd_synth)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a network from a YAML config (multi-GPU: torchrun --nproc_per_node=N -m brats3d.cli train ...)",
    )
    _add_config_arguments(p)
    p.add_argument("--data", help="dataset directory (overrides data.root)")
    p.add_argument("--out", default="runs/latest", help="run folder for checkpoints and logs (default runs/latest)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last.pt")
    p.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation: every case is validated exactly once across the folds; "
        "fold k trains into OUT/fold_k (score the out-of-fold predictions with `brats3d evaluate --cv OUT`); "
        "--set data.fold_by=site keeps each institution's cases in one fold (BraTS 2017-2019 case ids)",
    )
    p.add_argument("--fold", default="all", help="with --folds: the fold to train, 0..K-1, or all (default)")
    p.set_defaults(func=_cmd_train)


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment scans (NIfTI, GIFs, montage) or 2D images (masks, overlays, GIFs) with a trained checkpoint",
    )
    p.add_argument(
        "inputs",
        nargs="*",
        help="4D Decathlon NIfTI file(s), BraTS case folder(s) or a dataset folder; with a 2D checkpoint: "
        "image file(s), patient folder(s) or a dataset folder",
    )
    p.add_argument(
        "--checkpoint",
        nargs="+",
        default=[DEFAULT_CHECKPOINT],
        help="best.pt or last.pt from `brats3d train`; several (e.g. runs/cv/fold_*/last.pt) are ensembled "
        f"by the mean of their probabilities (default {DEFAULT_CHECKPOINT})",
    )
    p.add_argument("--out", default="predictions", help="output folder (default predictions)")
    for m in MODALITIES:
        p.add_argument(f"--{m}", help=f"{m} file, when giving the four modalities one by one")
    p.add_argument(
        "--convention",
        choices=LAYOUT_CHOICES,
        help="label numbering of the output for single-file inputs (default: msd for a 4D file, "
        "brats2021 for --flair/--t1/--t1ce/--t2); folders use their own layout's numbering",
    )
    p.add_argument("--label", help="ground-truth label map: pictures show predicted and true outlines")
    _add_inference_arguments(p)
    p.add_argument("--save-probabilities", action="store_true", help="also write <case>_prob.nii.gz")
    p.add_argument("--no-pictures", action="store_true", help="skip the GIFs and the montage")
    p.add_argument("--modality", choices=MODALITIES, default="flair", help="modality shown in the pictures")
    p.set_defaults(func=_cmd_predict)


def _add_show(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="three-plane GIFs and a montage of one case with its ground-truth labels")
    p.add_argument("case", help="a BraTS case folder or a 4D Decathlon file")
    p.add_argument("--label", help="label map (default: the case's own)")
    p.add_argument(
        "--label-convention", choices=LAYOUT_CHOICES, help="label numbering of --label for a 4D file (default msd)"
    )
    p.add_argument("--modality", choices=MODALITIES, default="flair", help="modality shown")
    p.add_argument("--out", default="pictures", help="output folder (default pictures)")
    p.set_defaults(func=_cmd_show)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="Dice, sensitivity, specificity and HD95 per class and region (2D: DSC, IoU, ... per image and "
        "patient), with a report",
    )
    p.add_argument("--pred", help="folder of predicted label maps (<case>_seg.nii.gz or <case>.nii.gz)")
    p.add_argument("--ref", help="labelled dataset folder the predictions are scored against")
    p.add_argument("--patient-pattern", help="2D paired layout: regex whose first group is the patient id")
    p.add_argument(
        "--pred-convention",
        choices=LAYOUT_CHOICES,
        help="label numbering of the predictions (default: the reference's own)",
    )
    p.add_argument(
        "--checkpoint", nargs="+", help="predict with this checkpoint (several: their ensemble) first, then score"
    )
    p.add_argument(
        "--cv",
        metavar="RUN_DIR",
        help="score a cross-validation run out of fold: each case by the fold model that held it out "
        "(outputs in RUN_DIR/out_of_fold unless --out)",
    )
    p.add_argument("--data", help="with --checkpoint or --cv: the labelled dataset to predict and score")
    p.add_argument("--case-ids", nargs="+", metavar="ID", help="with --checkpoint: only these case ids")
    p.add_argument("--patches", type=int, default=0, help="with --checkpoint: also score N tumour patches per case")
    _add_inference_arguments(p)
    p.add_argument("--no-hd95", action="store_true", help="skip HD95 (faster)")
    p.add_argument("--out", help="output folder (default evaluation, or RUN_DIR/out_of_fold with --cv)")
    p.set_defaults(func=_cmd_evaluate)


def _add_postprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "postprocess",
        help="choose post-processing rules (thresholds, small components, small enhancing volume) from a "
        "cross-validation run's out-of-fold predictions and save them in the run for predict; also prints what "
        "they are worth on unseen cases (rules chosen without each fold, scored on it)",
    )
    p.add_argument("run", help="cross-validation run folder (brats3d train --folds K --out RUN)")
    p.add_argument("--data", required=True, help="the labelled dataset the folds were made from")
    p.add_argument("--oof", help="folder of `brats3d evaluate --cv` (default RUN/out_of_fold)")
    p.set_defaults(func=_cmd_postprocess)


def _add_preprocess(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preprocess",
        help="preprocess a dataset once into a memory-mapped cache for training with data.cache=mmap (RAM flat in "
        "the number of cases); changed or new cases are redone, the others reused",
    )
    p.add_argument("data", help="dataset directory")
    p.add_argument("--out", required=True, help="cache folder (train with --set data.cache=mmap data.cache_dir=OUT)")
    _add_config_arguments(p)  # its patch settings shape the cache
    p.add_argument("--workers", type=int, default=0, help="processes (default: every core)")
    p.set_defaults(func=_cmd_preprocess)


def _add_export(sub: argparse._SubParsersAction) -> None:
    from brats3d.models.export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a checkpoint's network for use without brats3d: TorchScript, ONNX, or a MONAI bundle "
        "(inputs, channel order, normalisation and outputs are described in the export's metadata.json)",
    )
    p.add_argument("checkpoint", help="a brats3d checkpoint (best.pt)")
    p.add_argument("--format", choices=FORMATS, required=True, help="torchscript, onnx or bundle")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_cmd_export)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on synthetic data (a few minutes on a CPU)")
    p.add_argument("--out", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("--cases", type=int, default=8, help="synthetic cases to generate (default 8)")
    p.add_argument("--epochs", type=int, help="override the demo's training epochs")
    p.add_argument("--slices", action="store_true", help="the 2D demo: LGG-style slices with a 2D U-Net")
    p.set_defaults(func=_cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``brats3d`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    code = 1
    try:
        code = _run(args)
        return code
    finally:  # a failure (an exit code or an exception) leaves no empty output folder behind
        settle_outputs(failed=code != 0)


def _run(args: argparse.Namespace) -> int:
    """The command's exit code, with input errors (also from MONAI transforms and loader workers) as one line."""
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
    except Exception as exc:  # a BratsInputError wrapped by MONAI's Compose or re-raised from a loader worker
        error = find_input_error(exc)
        if error is None or args.debug:
            raise
        print(f"brats3d {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
