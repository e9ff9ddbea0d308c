"""Write each MEx / TwoSM row's own q, one file per row, for the row's training stage to depend on.

  python -m stages.row_q --out artifacts/row_q   params q, q_overrides, q_sweep, mex_rows,
                                                 twosm_rows -> artifacts/row_q/<row>.json

A row's q is the value of the param its `q_from` names (Params.row_q); a row without an
expansion loss has none (null). A DVC matrix stage cannot name the param a row's q_from holds
(`${mex_rows.${item.row}.q_from}` does not parse), so the training stages depend on this file
instead of on q, q_overrides and q_sweep: `dvc exp run -S q=8` rewrites the files of the rows
whose q_from is `q` and leaves the others' files (and so their models) as they are.
"""
import os

from pipeline.atomic import write_json_atomic
from pipeline.config import load_params
from stages.common import ArgumentParser, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="artifacts/row_q")
    args = parser.parse_args()
    params = load_params(args.params)
    os.makedirs(args.out, exist_ok=True)
    rows = {**params.mex_rows, **params.twosm_rows}
    for name in rows:
        write_json_atomic(os.path.join(args.out, f"{name}.json"), {"q": params.row_q(name)})
    print(f"the q of {len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    run(main)
