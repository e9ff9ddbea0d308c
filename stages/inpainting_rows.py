"""List Table 3's rows and seeds in the inpainting models folder.

  python -m stages.inpainting_rows   params inpainting_rows, seeds
                                     -> artifacts/inpainting/models/rows.json

The folder evaluate_inpainting depends on then exists whatever the rows: a profile that leaves
Table 3 out (`inpainting_rows: {}`, as the CPU study does) evaluates the floors only instead of
failing on a missing dependency. The file says which models the folder should hold.
"""
import os

from pipeline.config.loading import load_params, to_dict
from pipeline.atomic import write_json_atomic
from stages.common import ArgumentParser, run

MODELS = "artifacts/inpainting/models"  # pipeline.kinds.inpainting.InpaintingKind.model_root


def main():
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    params = load_params(args.params)
    models = MODELS
    os.makedirs(models, exist_ok=True)
    path = os.path.join(models, "rows.json")
    write_json_atomic(path, {"rows": {name: to_dict(row)
                                      for name, row in params.inpainting_rows.items()},
                             "seeds": list(params.seeds)})
    print(f"{len(params.inpainting_rows)} inpainting rows x {len(params.seeds)} seeds -> {path}")


if __name__ == "__main__":
    run(main)
