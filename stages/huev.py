"""Aggregate the HuEv study's votes into Table 1's HuEv column.

  python -m stages.huev   params huev.votes (the exported votes CSV) -> reports/huev.json,
                          reports/huev.md (preference share per row, 95 % binomial interval,
                          vote counts; "no votes yet" without votes). The report stage puts
                          the shares into Table 1.
"""
import os

from pipeline.atomic import write_json_atomic
from pipeline.config.loading import load_params
from pipeline.config.validation import check_huev_rows
from pipeline.apps.huev_results import markdown, summary
from pipeline.apps.huev_votes import read_votes_csv
from stages.common import ArgumentParser, run


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--reports", default="reports")
    args = parser.parse_args()
    params = load_params(args.params)
    check_huev_rows(params)
    result = summary(read_votes_csv(params.huev.votes), params.huev.rows)
    os.makedirs(args.reports, exist_ok=True)
    path = os.path.join(args.reports, "huev.json")
    write_json_atomic(path, result, sort_keys=True)
    with open(os.path.join(args.reports, "huev.md"), "w") as f:
        f.write(markdown(result))
    print(f"huev: {result['votes']} votes from {result['participants']} participants -> "
          f"{path}")


if __name__ == "__main__":
    run(main)
