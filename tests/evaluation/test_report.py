from brats3d.data.labels import CLASS_NAMES, REGION_NAMES
from brats3d.evaluation.evaluate import CaseScores, Evaluation
from brats3d.evaluation.report import inference_line, markdown_html, volume_rows


def _scores(dice: float, pred_ml: float, ref_ml: float) -> dict[str, float]:
    return {"dice": dice, "sensitivity": 1.0, "specificity": 1.0, "pred_volume_ml": pred_ml, "ref_volume_ml": ref_ml}


def _evaluation() -> Evaluation:
    over = {s: _scores(0.5, 40.0, 20.0) for s in (*REGION_NAMES, *CLASS_NAMES)}
    no_enhancing = {**over, "enhancing_tumour": _scores(1.0, 0.0, 0.0)}
    return Evaluation(cases=[CaseScores("case_a", over), CaseScores("case_b", no_enhancing)])


def test_volume_table_shows_over_prediction_as_a_ratio_to_the_true_volume():
    header, a, b = volume_rows(_evaluation())
    assert header[0] == "case" and header[1].startswith("WT pred / true ml")
    assert a == ["case_a"] + ["40.0 / 20.0 ×2.00 (0.500)"] * 3
    assert b[3] == "0.0 / 0.0 (1.000)"  # no true volume: no ratio, and no division by zero


def test_html_rendering_escapes_text_and_keeps_tables_and_images():
    md = ["# Report", "| case | note |", "|---|---|", "| <x> | a & b |", "", "![plot](dice.png)", "`per_case.csv`"]
    page = markdown_html(md)
    assert "<h1>Report</h1>" in page
    assert "<tr><th>case</th><th>note</th></tr><tr><td>&lt;x&gt;</td><td>a &amp; b</td></tr>" in page
    assert '<img src="dice.png" alt="plot"' in page and "<p>per_case.csv</p>" in page
    assert "<x>" not in page


def test_inference_line_states_how_the_predictions_were_made():
    settings = {
        "checkpoints": ["a.pt", "b.pt"],
        "window": [160, 160, 16],
        "overlap": 0.5,
        "tta": True,
        "flip_axes": [0],
        "resample_to": [1.0, 1.0, 1.0],
        "postprocessing": {
            "thresholds": [0.3, 0.3, 0.6],
            "min_component": 10000,
            "min_enhancing": 0,
            "min_enhancing_contrast": 0.5,
        },
    }
    line = inference_line(settings)
    assert line.startswith("Predicted with 2 checkpoints: sliding window 160×160×16, overlap 0.5, flip TTA on (axes 0)")
    assert "scans over 10 % from the training spacing 1×1×1 mm resampled to it" in line
    assert "thresholds WT/TC/ET 0.3/0.3/0.6" in line and "under 10000 voxels removed" in line
    assert "T1ce z 0.5 relabelled as core, no enhancing-volume rule" in line
