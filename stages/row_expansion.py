"""Write each MEx / TwoSM row's own expansion settings, one file per row, for its training stage.

  python -m stages.row_expansion --out artifacts/row_expansion
      params q, q_overrides, q_sweep, alpha, beta, loss.lambda_mex, mex_rows, twosm_rows
      -> artifacts/row_expansion/<row>.json

A row with an expansion loss (mex / amex) gets its q (the value of the param its `q_from`
names, Params.row_q), α, β and λ4; a row without one gets {"q": null}. A DVC matrix stage
cannot name the param a row's q_from holds (`${mex_rows.${item.row}.q_from}` does not parse),
so the training stages depend on this file instead of on q, q_overrides, q_sweep, alpha, beta
and loss.lambda_mex: `dvc exp run -S q=8` rewrites the files of the rows whose q_from is `q`
only, `-S alpha=3` those of the rows with an expansion loss only, and a row whose file is
unchanged is not retrained.
"""
import os

from pipeline.atomic import write_json_atomic
from pipeline.config.loading import load_params
from stages.common import ArgumentParser, run


def expansion_settings(params, name: str) -> dict:
    """The expansion-loss params a row resolves: {"q": None} for a row without one."""
    q = params.row_q(name)
    if q is None:
        return {"q": None}
    return {"q": q, "alpha": params.alpha, "beta": params.beta,
            "lambda_mex": params.loss.lambda_mex}


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="artifacts/row_expansion")
    args = parser.parse_args()
    params = load_params(args.params)
    os.makedirs(args.out, exist_ok=True)
    rows = {**params.mex_rows, **params.twosm_rows}
    for name in rows:
        write_json_atomic(os.path.join(args.out, f"{name}.json"), expansion_settings(params, name))
    print(f"the expansion settings of {len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    run(main)
