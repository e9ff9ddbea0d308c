"""The paper's rows found by their params, never by their names: a role is what a row trains
(its params section, loss and observation); the row of params that trains it on a dataset plays
it. A row of the q-sensitivity sweep (q_from `q_sweep.<name>`, Fig 10) plays no role, nor does a
row with its own batch_size: that is a variant of the row that plays its role (`variants`). The
report's comparisons, the study's questions and the picture grids pick their rows here, so a
row named otherwise keeps its paired differences."""
from __future__ import annotations

from typing import NamedTuple


class Role(NamedTuple):
    title: str              # the paper's name of the row
    section: str            # the params section of its row (pipeline.config.sections.ROW_SECTIONS)
    loss: str               # its loss (pipeline.config.losses.LOSSES)
    observation: str = ""   # TwoSM rows: local | full


PIX2PIXHD = Role("Pix2PixHD", "baselines", "pix2pixhd")
MEXGAN = Role("MExGAN", "mex_rows", "mex")
AMEXGAN = Role("A-MExGAN", "mex_rows", "amex")
TWOSM = Role("TwoSM", "twosm_rows", "twosm", "local")
TWOSM_FULL = Role("TwoSM+Full", "twosm_rows", "twosm", "full")
TWOSM_FULL_MEX = Role("TwoSM+Full+MEx", "twosm_rows", "mex", "full")
TWOSM_FULL_AMEX = Role("TwoSM+Full+A-MEx", "twosm_rows", "amex", "full")

TABLE1 = (PIX2PIXHD, MEXGAN, AMEXGAN)                          # Tables 1 and 4
TABLE2 = (TWOSM, TWOSM_FULL, TWOSM_FULL_MEX, TWOSM_FULL_AMEX)

# The paper's comparisons (a, b), a − b: MExGAN − Pix2PixHD, A-MExGAN − MExGAN; +Full − TwoSM,
# +MEx / +A-MEx − +Full (the questions of a study); the report adds +A-MEx − +MEx.
TABLE1_STEPS = ((MEXGAN, PIX2PIXHD), (AMEXGAN, MEXGAN))
TABLE2_STEPS = ((TWOSM_FULL, TWOSM), (TWOSM_FULL_MEX, TWOSM_FULL), (TWOSM_FULL_AMEX, TWOSM_FULL))
COMPARISONS = TABLE1_STEPS + TABLE2_STEPS + ((TWOSM_FULL_AMEX, TWOSM_FULL_MEX),)


def row_of(params, role: Role, dataset: str) -> str | None:
    """The name of the row of `params` that plays `role` on `dataset`, None when none does;
    ValueError when several do (the report could not tell which one the paper's row is)."""
    sweep = {f"q_sweep.{name}" for name in params.q_sweep}
    found = [name for name, row in getattr(params, role.section).items()
             if (row.dataset, row.loss, row.observation) == (dataset, role.loss, role.observation)
             and row.q_from not in sweep and not row.batch_size]
    if len(found) > 1:
        raise ValueError(f"{role.section} rows {', '.join(found)} all train {role.title} on "
                         f"{dataset}: the report needs one row per role")
    return found[0] if found else None


def rows_of(params, roles, dataset: str) -> list:
    """row_of each role, in order (None where no row plays it)."""
    return [row_of(params, role, dataset) for role in roles]


def variants(params, dataset: str) -> list:
    """(variant, row, what differs) for each row on `dataset` with its own batch_size whose
    role another row plays (same section, loss and observation, the section's batch): the
    study reports the variant beside that row, e.g. TwoSM+Full at batch 1 beside batch 8."""
    found = []
    for role in TABLE1 + TABLE2:
        row = row_of(params, role, dataset)
        if row is None:
            continue
        for name, other in getattr(params, role.section).items():
            if (other.dataset, other.loss, other.observation) == \
                    (dataset, role.loss, role.observation) and other.batch_size:
                found.append((name, row, f"batch {other.batch_size} against "
                              f"{params.row_batch(row)}"))
    return found
