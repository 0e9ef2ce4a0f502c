"""The readable side of an evaluation: a printed table, plots, and report.md / report.html."""

from __future__ import annotations

import html
from dataclasses import replace
from pathlib import Path

import numpy as np

from brats3d.data.io import load_case
from brats3d.data.labels import CLASS_NAMES, REGION_NAMES, REGION_SHORT
from brats3d.evaluation.evaluate import Evaluation, write_tables
from brats3d.files import atomic_path
from brats3d.transforms.pipeline import EVERY_AXIS
from brats3d.transforms.resampling import SPACING_TOLERANCE

STRUCTURE_TITLES = {
    **{n: f"{REGION_SHORT[n]} ({n.replace('_', ' ')})" for n in REGION_NAMES},
    "edema": "edema (class)",
    "non_enhancing": "necrotic / non-enhancing (class)",
    "enhancing": "enhancing (class)",
}
ORDER = (*REGION_NAMES, *CLASS_NAMES)


def summary_rows(evaluation: Evaluation) -> list[list[str]]:
    summary = evaluation.summary()
    rows = [["structure", "Dice mean ± sd", "Dice median", "sensitivity", "specificity", "HD95 median (mm)"]]
    for s in ORDER:
        m = summary[s]
        hd = f"{m['hd95']['median']:.2f}" if "hd95" in m else "-"
        rows.append(
            [
                STRUCTURE_TITLES[s],
                f"{m['dice']['mean']:.3f} ± {m['dice']['std']:.3f}",
                f"{m['dice']['median']:.3f}",
                f"{m['sensitivity']['mean']:.3f}",
                f"{m['specificity']['mean']:.4f}",
                hd,
            ]
        )
    return rows


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def plot_dice(evaluation: Evaluation, path: Path) -> Path:
    """Per-case Dice per region: points, box, mean (solid) and median (dashed) lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    rng = np.random.default_rng(0)
    for ax, group, title in ((axes[0], REGION_NAMES, "BraTS regions"), (axes[1], CLASS_NAMES, "classes")):
        data = [[c.scores[s]["dice"] for c in evaluation.cases] for s in group]
        ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"visible": False})
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=18, alpha=0.7, zorder=3)
            ax.hlines(np.mean(values), i - 0.3, i + 0.3, colors="black", linewidth=2, label="mean" if i == 1 else None)
            ax.hlines(
                np.median(values), i - 0.3, i + 0.3, colors="red", linestyles="--", label="median" if i == 1 else None
            )
        ax.set_xticks(range(1, len(group) + 1), [REGION_SHORT.get(s, s.replace("_", "-")) for s in group])
        ax.set_title(f"Dice per case: {title}")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("Dice")
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def case_montages(evaluation: Evaluation, out_dir: Path, pred_convention: str | None = None) -> dict[str, Path]:
    """Montages (predicted vs true outlines) of the worst and best case by whole-tumour Dice."""
    from brats3d.visualize import write_montage

    ranked = sorted(evaluation.cases, key=lambda c: c.scores["whole_tumour"]["dice"])
    picks = {"worst": ranked[0], "best": ranked[-1]}
    out = {}
    for tag, case in picks.items():
        if case.reference is None or case.prediction is None:
            continue
        truth = load_case(case.reference, ras=True)
        layout = pred_convention or case.reference.layout.value
        pred_case = replace(case.reference, label=case.prediction, layout=type(case.reference.layout)(layout))
        pred = load_case(pred_case, ras=True)
        out[tag] = write_montage(out_dir / f"{tag}_{case.case_id}_montage.png", truth.image[0], pred.label, truth.label)
    return out


def write_report(evaluation: Evaluation, out_dir: str | Path, pred_convention: str | None = None) -> Path:
    """per_case.csv, summary.json, dice_per_case.png, montages, report.md and report.html; returns report.md."""
    out_dir = Path(out_dir)
    write_tables(evaluation, out_dir)
    plot = plot_dice(evaluation, out_dir / "dice_per_case.png")
    montages = case_montages(evaluation, out_dir, pred_convention)
    md = [
        f"# Evaluation report ({len(evaluation.cases)} cases)",
        "",
        *([inference_line(evaluation.inference), ""] if evaluation.inference else []),
        *_summary_section(evaluation),
        *(_patch_section(evaluation) if evaluation.patch_scores else []),
        *_lesion_section(evaluation),
        *_dice_section(evaluation, plot),
        *_montage_sections(montages),
        *_volume_section(evaluation),
    ]
    md_path = out_dir / "report.md"
    with atomic_path(md_path) as tmp:
        tmp.write_text("\n".join(md))
    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(markdown_html(md))
    return md_path


def _summary_section(evaluation: Evaluation) -> list[str]:
    conventions = (
        "Conventions: both masks empty gives Dice 1, sensitivity 1 and HD95 0 mm; exactly one empty gives Dice 0 "
        "and HD95 373.13 mm (BraTS). Specificity counts true negatives over the whole scan, so it is always close "
        "to 1; read sensitivity and Dice first. HD95 is in mm, from the voxel spacing."
    )
    return ["## Summary", "", _md_table(summary_rows(evaluation)), "", conventions, ""]


def _patch_section(evaluation: Evaluation) -> list[str]:
    return [
        "## Patches vs whole scans",
        "",
        "Mean Dice on tumour-biased training-style patches (the network applied to each patch alone) next "
        "to whole-scan Dice. Patch scores are usually higher: patches are chosen to hold tumour.",
        "",
        _md_table(_patch_rows(evaluation)),
        "",
    ]


def _lesion_section(evaluation: Evaluation) -> list[str]:
    return [
        "## Lesion-wise scores (BraTS 2023)",
        "",
        "Each tumour region split into lesions (26-connected, merged when within three dilations); a missed lesion "
        "or a false-positive component scores Dice 0 and HD95 374 mm, so scattered false positives that barely "
        "move the legacy Dice show here. Lesions of at most 50 voxels are not scored.",
        "",
        _md_table(lesion_rows(evaluation)),
        "",
    ]


def _dice_section(evaluation: Evaluation, plot: Path) -> list[str]:
    return [
        "## Dice per case",
        "",
        f"![Dice per case]({plot.name})",
        "",
        "## Sensitivity and specificity",
        "",
        _md_table(sensitivity_rows(evaluation)),
        "",
    ]


def _montage_sections(montages: dict[str, Path]) -> list[str]:
    md = []
    for tag, path in montages.items():
        md += [
            f"## {tag.capitalize()} case by whole-tumour Dice",
            "",
            "Outlines: prediction in cyan, ground truth in magenta.",
            "",
            f"![{tag}]({path.name})",
            "",
        ]
    return md


def _volume_section(evaluation: Evaluation) -> list[str]:
    return [
        "## Volumes per case",
        "",
        "Predicted next to true volume (ml) and Dice per region: over- or under-segmentation that a Dice table "
        "hides (a tumour core predicted as enhancing, a whole tumour twice its size) shows here.",
        "",
        _md_table(volume_rows(evaluation)),
        "",
        "## Per case",
        "",
        "See `per_case.csv` (every metric, every structure) and `summary.json`.",
        "",
    ]


def sensitivity_rows(evaluation: Evaluation) -> list[list[str]]:
    """Per structure: mean and median sensitivity and specificity."""
    summary = evaluation.summary()
    rows = [["structure", "sensitivity mean", "sensitivity median", "specificity mean", "specificity median"]]
    for s in ORDER:
        se, sp = summary[s]["sensitivity"], summary[s]["specificity"]
        rows.append(
            [
                STRUCTURE_TITLES[s],
                f"{se['mean']:.3f}",
                f"{se['median']:.3f}",
                f"{sp['mean']:.4f}",
                f"{sp['median']:.4f}",
            ]
        )
    return rows


def lesion_rows(evaluation: Evaluation) -> list[list[str]]:
    """Per region: legacy Dice beside lesion-wise Dice and HD95 (means), and the lesion counts summed."""
    summary = evaluation.summary()
    rows = [["region", "Dice", "lesion-wise Dice", "lesion-wise HD95 (mm)", "lesions", "false positives", "missed"]]
    for n in REGION_NAMES:
        s = summary[n]
        if "lesion_dice" not in s:
            continue
        counts = [sum(c.scores[n]["lesions"] for c in evaluation.cases)]
        counts += [sum(c.scores[n][k] for c in evaluation.cases) for k in ("false_positives", "missed_lesions")]
        hd = f"{s['lesion_hd95']['mean']:.1f}" if "lesion_hd95" in s else "n/a"
        rows.append(
            [STRUCTURE_TITLES[n], f"{s['dice']['mean']:.3f}", f"{s['lesion_dice']['mean']:.3f}", hd]
            + [str(int(c)) for c in counts]
        )
    return rows


def volume_rows(evaluation: Evaluation) -> list[list[str]]:
    """Per case and region: predicted ml / true ml (ratio) and Dice."""
    header = ["case"] + [f"{REGION_SHORT[n]} pred / true ml (Dice)" for n in REGION_NAMES]
    rows = [header]
    for case in evaluation.cases:
        cells = [case.case_id]
        for n in REGION_NAMES:
            m = case.scores[n]
            ratio = f" ×{m['pred_volume_ml'] / m['ref_volume_ml']:.2f}" if m["ref_volume_ml"] > 0 else ""
            cells.append(f"{m['pred_volume_ml']:.1f} / {m['ref_volume_ml']:.1f}{ratio} ({m['dice']:.3f})")
        rows.append(cells)
    return rows


def _patch_rows(evaluation: Evaluation) -> list[list[str]]:
    summary = evaluation.summary()
    rows = [["structure", "patch Dice", "whole-scan Dice", "patch sensitivity", "patch specificity"]]
    for s in ORDER:
        p = evaluation.patch_scores[s]
        rows.append(
            [
                STRUCTURE_TITLES[s],
                f"{p['dice']:.3f}",
                f"{summary[s]['dice']['mean']:.3f}",
                f"{p['sensitivity']:.3f}",
                f"{p['specificity']:.4f}",
            ]
        )
    return rows


def _md_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def markdown_html(md_lines: list[str]) -> str:
    """A small self-contained rendering of the Markdown report (headings, tables, images, paragraphs)."""
    body, table = [], []

    def flush_table():
        if table:
            head, *rest = [[html.escape(c.strip()) for c in r.strip("|").split("|")] for r in table if "---" not in r]
            body.append(
                "<table><tr>"
                + "".join(f"<th>{c}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest)
                + "</table>"
            )
            table.clear()

    for line in "\n".join(md_lines).splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](")
            body.append(f'<img src="{html.escape(src.rstrip(")"))}" alt="{html.escape(alt)}" style="max-width:100%">')
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    flush_table()
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>brats3d evaluation</title><style>{style}</style>"
        f"</head><body>{''.join(body)}</body></html>"
    )


def inference_line(settings: dict) -> str:
    """One sentence saying how the scored predictions were made (the numbers depend on it)."""
    rules = settings["postprocessing"]
    n = len(settings["checkpoints"])
    models = settings["checkpoints"][0] if n == 1 else f"{n} checkpoints"
    components = (
        f"tumour components under {rules['min_component']} voxels removed (never the largest)"
        if rules["min_component"]
        else "no component removed"
    )
    enhancing = (
        f"enhancing tumour under {rules['min_enhancing']} voxels relabelled as core"
        if rules["min_enhancing"]
        else "no enhancing-volume rule"
    )
    contrast = rules.get("min_enhancing_contrast")
    if contrast is not None:
        enhancing = f"enhancing voxels under T1ce z {contrast:g} relabelled as core, {enhancing}"
    thresholds = "/".join(f"{t:g}" for t in rules["thresholds"])
    window = "×".join(map(str, settings["window"])) if "window" in settings else "of the training patch"
    axes = settings.get("flip_axes", list(EVERY_AXIS))  # reports written before flip_axes existed flipped all three
    every_axis = len(axes) == len(EVERY_AXIS)
    tta = "off" if not settings["tta"] else "on" if every_axis else f"on (axes {', '.join(map(str, axes))})"
    spacing = settings.get("resample_to")
    resampled = (
        f", scans over {SPACING_TOLERANCE * 100:g} % from the training spacing "
        f"{'×'.join(f'{v:g}' for v in spacing)} mm resampled to it"
        if spacing
        else ""
    )
    return (
        f"Predicted with {models}: sliding window {window}, overlap {settings['overlap']}, flip TTA "
        f"{tta}{resampled}, thresholds WT/TC/ET {thresholds}, {components}, {enhancing}."
    )
