"""A tiny configuration of the real params.yaml for tests that run the stages (seconds on CPU)."""
import copy
import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# data.seed of the tiny projects. The street world of issue 35 has few eligible boxes, and at
# 32x16 most maps have none (seed 0: 1 of the 6 training maps and 1 of the 4 test maps under the
# authors' rule). Seed 599 gives the tiny world the boxes the tests need: under the tight rule
# all 6 training maps have a box (10 boxes) and 3 of the 4 test maps; under the authors' rule
# 5 of 6 and 3 of 4 (so >= 2 test boxes; 16 test maps: 7 with a box).
DATA_SEED = 599


def tiny_params(**sections) -> dict:
    """params.yaml with tiny sizes: 32x16 Cityscapes (6 train / 4 test synthetic images, data.seed
    DATA_SEED), a 4-channel generator with 2 downsamplings, 1 epoch, one CPU thread; 24x22 facades
    (4 train / 2 test, 3 holes each) for the inpainting rows, 3 epochs = one per GL phase.
    `sections` updates top-level sections (dicts are merged one level deep)."""
    with open(os.path.join(REPO, "params.yaml")) as f:
        params = yaml.safe_load(f)
    for dataset in params["datasets"].values():
        dataset.update(synthetic_train=6, synthetic_test=4)
    params["datasets"]["cityscapes"].update(width=32, height=16)
    params["data"]["seed"] = DATA_SEED
    params["datasets"]["nyu"].update(width=32, height=24)
    params["datasets"]["helen"].update(width=24, height=24)
    params["model"].update(ngf=4, ndf=4, n_blocks=1, n_layers_d=2, num_d=1, n_downsampling=2)
    params["train"].update(epochs=1, log_every=1, cpu_threads=1, device="cpu")
    params["translator"]["epochs"] = 1
    params["evaluate"]["grid_images"] = 2
    params["q"] = 1
    # the editor of a tiny project runs its own row (the repository's released model is 64x32)
    params["huev"]["editor_row"] = "mexgan-cityscapes"
    params["inpainting"].update(  # 24x22: not a multiple of the stride 4 (padded)
        width=24, height=22, synthetic_train=4, synthetic_test=2, test_holes=3, fid_holes=2,
        ngf=4, ndf=4, dilations=[2], global_layers=2, local_layers=2, amex_layers=2, q=1,
        alpha=1, beta=1, epochs=3, completion_epochs=1, discriminator_epochs=1, batch_size=2)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **copy.deepcopy(value)}
        else:
            params[key] = copy.deepcopy(value)
    return params


def make_vgg_weights(path):
    """A VGG19 weights file for the tests: loading 80 MB is much faster than the random-init
    stand-in each training process would otherwise build."""
    import torch
    from torchvision.models.vgg import cfgs, make_layers
    torch.manual_seed(0)
    features = make_layers(cfgs["E"], batch_norm=False)
    with torch.no_grad():
        for p in features.parameters():
            p.normal_(0, 0.05)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)


def write_params(path, params) -> str:
    with open(path, "w") as f:
        yaml.safe_dump(params, f, sort_keys=False)
    return str(path)


def prepare_tiny_cityscapes(params: dict, data_dir: str) -> str:
    """Generate and prepare the synthetic Cityscapes of a tiny_params() dict into data_dir."""
    from pipeline.data.preparation import prepare_dataset
    from pipeline.data.synthetic import generate_split
    size = params["datasets"]["cityscapes"]
    splits = {split: generate_split("cityscapes", split, size[f"synthetic_{split}"],
                                    size["height"], size["width"], params["data"]["seed"])
              for split in ("train", "test")}
    prepare_dataset("cityscapes", splits, data_dir, width=size["width"], height=size["height"],
                    threshold=size["size_threshold"], box_rule=params["data"]["box_rule"],
                    source="synthetic")
    return data_dir


def prepare_tiny_facades(inpainting, data_dir: str) -> str:
    """Generate and prepare the synthetic facades of a parsed inpainting section into data_dir
    (its holes drawn test_holes times per test image)."""
    from pipeline.data.preparation import prepare_dataset
    from pipeline.data.synthetic import generate_split
    ip = inpainting
    splits = {split: generate_split("facade", split, count, ip.height, ip.width, 0)
              for split, count in (("train", ip.synthetic_train), ("test", ip.synthetic_test))}
    prepare_dataset("facade", splits, data_dir, width=ip.width, height=ip.height,
                    threshold=0.0003, box_rule="authors", source="synthetic",
                    hole=(ip.hole_min, ip.hole_max), hole_repeats=ip.test_holes)
    return data_dir
