"""The paper's numbers (Tables 1-4), keyed by our row names, and the readings of Table 3's rows."""
from __future__ import annotations

# The paper's numbers (Tables 1 and 4). Keys are our row names; FID columns compare only when
# our run used the real Inception weights.
PAPER_TABLE1 = {
    "pix2pixhd-cityscapes": {"tiou": 0.7350, "hamm": 0.7483, "fid": 139.47},
    "mexgan-cityscapes": {"tiou": 0.7493, "hamm": 0.7677, "fid": 139.14},
    "pix2pixhd-nyu": {"tiou": 0.4222, "hamm": 0.3763, "fid": 138.16},
    "mexgan-nyu": {"tiou": 0.4851, "hamm": 0.4683, "fid": 137.44},
    "pix2pixhd-helen": {"tiou": 0.2806, "hamm": 0.4753, "fid": 64.91},
    "mexgan-helen": {"tiou": 0.3721, "hamm": 0.5278, "fid": 63.90},
}
PAPER_TABLE4 = {
    "mexgan-cityscapes": {"tiou": 0.7493, "hamm": 0.7677, "mem_gpu_step_peak_mean_gb": 4.43},
    "amexgan-cityscapes": {"tiou": 0.7652, "hamm": 0.7734, "mem_gpu_step_peak_mean_gb": 4.54},
}
# Table 2 (Cityscapes): TwoSM, TwoSM+Full, TwoSM+Full+MEx, TwoSM+Full+A-MEx, by our row names.
PAPER_TABLE2 = {
    "twosm-cityscapes": {"tiou": 0.7064, "hamm": 0.7443},
    "twosm-full-cityscapes": {"tiou": 0.8285, "hamm": 0.8427},
    "twosm-full-mex-cityscapes": {"tiou": 0.8242, "hamm": 0.8395},
    "twosm-full-amex-cityscapes": {"tiou": 0.8243, "hamm": 0.8387},
}
# Table 3 (CMP Facade inpainting): GL and GL+A-MEx, by our row names (inpainting_rows).
PAPER_TABLE3 = {
    "gl-facade": {"ssim": 0.3827, "l1": 21.59, "fid": 63.14},
    "gl-amex-facade": {"ssim": 0.3912, "l1": 20.22, "fid": 54.84},
}
# Table 3's rows by (loss, amex_reading): the paper row each reproduces, and how it is built.
TABLE3_READINGS = {
    ("gl", "ours"): ("gl-facade", "GL", "GL (global + local context discriminator)"),
    ("gl_amex", "ours"): ("gl-amex-facade", "GL+A-MEx",
                          "GL+A-MEx, our reading: GL's context discriminator plus a separate "
                          "LSGAN PatchGAN on the full-size (input, photo) × M^E_j, j = 0..q, "
                          "weighted α·λ4"),
    ("gl_amex", "authors"): ("gl-amex-facade", "GL+A-MEx (authors' D)",
                             "GL+A-MEx, the authors' code's reading: GL's local discriminator "
                             "replaced by one trunk shared over the full-size photo × M^E_j "
                             "(+ M^E_j), j = 0..q, its q+1 features and the global trunk's "
                             "into GL's one logit (BCE, weight α)"),
}


def table3_paper(rows: dict, paper: dict = PAPER_TABLE3) -> dict:
    """Table 3's paper values for the params' inpainting_rows (name -> InpaintingRow): the
    paper's rows, and every other row under the paper row it is a reading of (both GL+A-MEx
    readings are compared with the paper's GL+A-MEx)."""
    values = dict(paper)
    for name, row in rows.items():
        reading = TABLE3_READINGS.get((row.loss, row.amex_reading))
        if name not in values and reading and reading[0] in paper:
            values[name] = paper[reading[0]]
    return values


def table3_readings(rows: dict) -> str:
    """One sentence naming the reading of every Table 3 row (name -> InpaintingRow)."""
    parts = [f"`{name}`: {TABLE3_READINGS[(row.loss, row.amex_reading)][2]}" + (
                 "; L_rec's hole sum divided by the whole image's pixels (the authors' code)"
                 if getattr(row, "rec_divisor", "hole") == "image" else "")
             for name, row in rows.items() if (row.loss, row.amex_reading) in TABLE3_READINGS]
    return ("Rows: " + "; ".join(parts) + ".") if parts else ""


def study_paper_values(rows) -> dict:
    """The paper's tIOU / hamm of a study's trained rows (Tables 1, 2 and 4; A-MExGAN's from
    Table 4); a row the paper has no value for gets none."""
    paper = {**PAPER_TABLE4, **PAPER_TABLE1, **PAPER_TABLE2}
    return {row: {m: v for m, v in paper.get(row, {}).items() if m in ("tiou", "hamm")}
            for row in rows}
