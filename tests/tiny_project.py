"""A tiny configuration of the real params.yaml for tests that run the stages (seconds on CPU)."""
import copy
import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_params(**sections) -> dict:
    """params.yaml with tiny sizes: 32x16 Cityscapes (6 train / 4 test synthetic images), a
    4-channel generator with 2 downsamplings, 1 epoch, one CPU thread. `sections` updates
    top-level sections (dicts are merged one level deep)."""
    with open(os.path.join(REPO, "params.yaml")) as f:
        params = yaml.safe_load(f)
    for dataset in params["datasets"].values():
        dataset.update(synthetic_train=6, synthetic_test=4)
    params["datasets"]["cityscapes"].update(width=32, height=16)
    params["datasets"]["nyu"].update(width=32, height=24)
    params["datasets"]["helen"].update(width=24, height=24)
    params["model"].update(ngf=4, ndf=4, n_blocks=1, n_layers_d=2, num_d=1, n_downsampling=2)
    params["train"].update(epochs=1, log_every=1, cpu_threads=1, device="cpu")
    params["translator"]["epochs"] = 1
    params["evaluate"]["grid_images"] = 2
    params["q"] = 1
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **copy.deepcopy(value)}
        else:
            params[key] = copy.deepcopy(value)
    return params


def write_params(path, params) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    return str(path)
