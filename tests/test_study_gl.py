"""The Table 3 study (make study PROFILE=gl): its params and its summary's questions, on
hand-made per-hole scores (SSIM: higher is better, L1: lower is better)."""
import os

import numpy as np
import pandas as pd

from pipeline.config.loading import load_params
from pipeline.evaluation.reports.study_summary import inpainting_study_summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS = ["gl-facade", "gl-amex-facade", "gl-amex-authors-facade", "gl-image-facade",
        "gl-amex-image-facade"]
FLOORS = ["floor-mean-fill-facade", "floor-biharmonic-facade"]


def test_the_gl_study_params_have_both_readings_and_no_segmentation_row():
    params = load_params(os.path.join(REPO, "params_study_gl.yaml"))
    assert list(params.inpainting_rows) == ROWS and not params.rows
    assert [(r.amex_reading, r.rec_divisor) for r in params.inpainting_rows.values()] == [
        ("ours", "hole"), ("ours", "hole"), ("authors", "image"), ("ours", "image"),
        ("ours", "image")]
    ip = params.inpainting
    assert ip.completion_epochs + ip.discriminator_epochs < ip.epochs
    assert params.train.eval_every <= -(-ip.synthetic_train // ip.batch_size)  # once an epoch
    assert len(params.seeds) >= 3


def _scores(levels: dict) -> pd.DataFrame:
    """Per (row, seed, image, hole) scores: row -> (ssim, l1) means, a small per-image
    spread."""
    rng = np.random.default_rng(3)
    records = []
    for row, (ssim, l1) in levels.items():
        for seed in ((-1,) if row.startswith("floor-") else (0, 1, 2)):
            for image in range(6):
                for repeat in range(2):
                    noise = rng.normal(0, 0.005)
                    records.append({"row": row, "seed": seed, "image": f"facade_{image}",
                                    "repeat": repeat, "ssim": ssim + noise,
                                    "l1": l1 - 100 * noise, "ssim_image": 0.9,
                                    "l1_image": 5.0})
    return pd.DataFrame(records)


def test_the_gl_summary_asks_table_3s_questions_in_each_metrics_direction():
    params = load_params(os.path.join(REPO, "params_study_gl.yaml"))
    levels = {"gl-facade": (0.30, 20.0), "gl-amex-facade": (0.40, 15.0),
              "gl-amex-authors-facade": (0.20, 30.0), "gl-image-facade": (0.35, 18.0),
              "gl-amex-image-facade": (0.30, 20.0),
              "floor-mean-fill-facade": (0.05, 60.0), "floor-biharmonic-facade": (0.25, 25.0)}
    scores = _scores(levels)
    metrics = {row: {"ssim": s, "l1": l, "ssim_image": 0.9, "l1_image": 5.0,
                     "seeds": 1 if row.startswith("floor-") else 3}
               for row, (s, l) in levels.items()}
    curves = {row: {seed: {"ssim": ([25, 50, 75, 100, 125], [0.1, 0.2, 0.3, 0.3, 0.3])}
                    for seed in (0, 1, 2)} for row in ROWS}
    text = inpainting_study_summary(metrics=metrics, scores=scores, eval_curves=curves,
                                    params=params, wall_seconds=1200, platform="test CPU")
    assert text.startswith("## CPU study of Table 3")
    assert "| Does GL+A-MEx beat GL? | **yes**: ssim gl-amex-facade − gl-facade = +0.0983" in text
    # L1 is lower for GL+A-MEx: a negative difference is a "yes"
    assert "**yes**: l1 gl-amex-facade − gl-facade = -4.8307" in text
    # the authors' reading divides L_rec by the image's pixels: it meets the rows that do too
    assert ("| Does GL+A-MEx (authors' D) beat GL, L_rec / image? | **no, it is worse**: ssim "
            "gl-amex-authors-facade − gl-image-facade = -0.1") in text
    assert ("| Does GL+A-MEx (authors' D) beat GL+A-MEx, L_rec / image? | **no, it is worse**"
            in text)
    # the divisor switch, row by row
    assert ("| Does GL, L_rec / image beat GL? | **yes**: ssim gl-image-facade − gl-facade = "
            "+0.05") in text
    assert ("| Does GL+A-MEx, L_rec / image beat GL+A-MEx? | **no, it is worse**: ssim "
            "gl-amex-image-facade − gl-amex-facade = -0.09") in text
    assert "| Does GL+A-MEx, L_rec / image beat GL, L_rec / image? | **no, it is worse**" in text
    assert "| Does gl-facade beat floor-biharmonic-facade? | **yes**" in text
    assert "| Does gl-amex-authors-facade beat floor-biharmonic-facade? | **no, it is worse**" \
        in text
    assert ("**In short:** on SSIM, GL+A-MEx beats GL, GL+A-MEx (authors' D) is worse than GL, "
            "L_rec / image") in text
    assert "| gl-facade | 0.3000 | 20.0000 | +0.0000 | yes |" in text
    assert "6000 steps: GL's phases 43 / 5 / 192 epochs" in text
    assert "(study_gl/figures/metric_curves_facade.png)" in text
