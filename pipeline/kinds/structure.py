"""Structure rows (Table 1, Fig 10: params `baselines`, `mex_rows`): the pix2pixHD global
generator redraws the box of a colour map, G(Su, B) = Ỹ, fused into Ŷ (Eq 5); its loss
plug-ins are L_B (loss pix2pixhd, Eq 1-4), + λ4·L_MEx (mex, Eq 6-7) or + λ4·L_A-MEx (amex,
Eq 8-9). Scored by tIOU / hamm inside the seed-679 test boxes and FID through the dataset's
G_I (pipeline.evaluation.evaluation.BoxTestSet)."""
from __future__ import annotations

import os

from pipeline.data.boxes import box_size_passes
from pipeline.config.loading import to_dict
from pipeline.config.sections import Params, Row
from pipeline.data.datasets import read_split
from pipeline.data.sets import get_spec
from pipeline.evaluation.evaluation import BoxTestSet, HeldBackBoxes, edited_maps
from pipeline.data.inputs import EditTask, check_boxes, condition_channels, read_boxes
from pipeline.kinds.base import RowKind
from pipeline.models.map_edits import colour_box
from pipeline.kinds.parts import build_generator, build_losses, build_vgg, global_generator
from pipeline.training.runs import Run, files_md5

DATA_FILES = ("train.h5", "boxes.csv", "test.h5", "test_boxes.csv")


class StructureKind(RowKind):
    name = "structure"
    sections = ("baselines", "mex_rows")
    table = "segmentation"
    edits_maps = True
    no_vgg = "none"    # every structure row has L_B, which says why it has no VGG19
    # how its generator redraws test boxes: Ỹ fused (Eq 5), labels by nearest palette colour
    edited_maps = staticmethod(edited_maps)
    # how it redraws a box of a user's map (the editor): at its size, labels resized back
    edit_box = staticmethod(colour_box)

    def networks(self, params: Params, row: Row) -> tuple:
        """(generator, loss plug-ins) of a row, with the settings of its profile."""
        channels = condition_channels(get_spec(row.dataset))
        profile = params.profile_of(row)
        generator = build_generator(channels, params)
        losses = build_losses(row.loss, channels, params, params.q_of(row),
                              build_vgg(params, profile), profile)
        return generator, losses

    def task(self, params: Params, row: Row, split, boxes: dict, seed: int, generator):
        """The batches: a random eligible box per image per epoch (EditTask)."""
        t = params.train
        return EditTask(split, get_spec(row.dataset), boxes,
                        batch_size=params.row_batch_size(self.sections[0], row), flip=t.flip,
                        seed=seed)

    def build(self, params: Params, row: Row, split, boxes: dict, seed: int) -> tuple:
        """(generator, loss plug-ins, task) of a row on a training split and its boxes (image
        name -> EditBoxes)."""
        generator, losses = self.networks(params, row)
        return generator, losses, self.task(params, row, split, boxes, seed, generator)

    def settings(self, params: Params) -> dict | None:
        """The kind's own params section a run records (None: none)."""
        return None

    def model_info(self, params: Params, generator) -> dict:
        return {"model": to_dict(params.model), "twosm": None}

    def network(self, state: dict):
        return global_generator(state)

    def run(self, params: Params, name: str, data_dir: str, seed: int) -> Run:
        """Row `name` on its prepared dataset: the training boxes down to the row's size
        threshold; its tIOU / hamm on the first train.eval_boxes test boxes are logged as
        learning curves (dvclive eval/)."""
        row = self.rows(params)[name]
        spec = get_spec(row.dataset)
        split = read_split(os.path.join(data_dir, "train.h5"))
        boxes_path = os.path.join(data_dir, "boxes.csv")
        threshold = params.row_threshold(name)
        boxes = read_boxes(boxes_path, split="train")
        check_boxes(boxes_path, boxes, split, spec)
        height, width = split.labels.shape[1:]
        rule = params.data.box_rule  # boxes.csv lists boxes down to the lowest row threshold
        boxes = {image: [b for b in entries
                         if box_size_passes(b.box, height, width, threshold, rule)]
                 for image, entries in boxes.items()}
        if not any(boxes.get(image) for image in split.names):
            raise ValueError(f"{boxes_path}: no train box passes size threshold {threshold:g} "
                             f"(box rule {rule}; the prepared data has no eligible box; check "
                             f"datasets.{row.dataset}.size_threshold and rerun prepare)")
        generator, losses, task = self.build(params, row, split, boxes, seed)
        q = params.q_of(row)
        t = params.train
        extra = {"dataset": row.dataset, "loss": row.loss, "q": -1 if q is None else q,
                 "alpha": params.alpha if q is not None else -1,
                 "beta": params.beta if q is not None else -1,
                 "in_channels": condition_channels(spec), "train_images": len(task.usable),
                 "seed": seed, "size_threshold": threshold, "box_rule": rule,
                 "profile": {"name": row.profile or params.profile,
                             **to_dict(params.profile_of(row))},
                 "observation": row.observation,
                 "twosm": self.settings(params),
                 "data_md5": files_md5(data_dir, DATA_FILES),
                 # a row's own batch (its run's records and checkpoint must say so); absent
                 # for a row at its section's batch, so their records stay as they were
                 **({"batch_size": row.batch_size} if row.batch_size else {})}
        held_back = HeldBackBoxes(row.dataset, data_dir, t.eval_boxes, self.edited_maps,
                                  params.box_convention)
        return Run(name=name, kind=self.name, generator=generator, losses=losses, task=task,
                   epochs=params.row_epochs(name), size=(width, height), extra=extra,
                   optimiser=(t.lr, (t.beta1, t.beta2)),
                   model_info=self.model_info(params, generator), monitor=held_back.scores,
                   no_vgg=self.no_vgg)

    def test_set(self, params: Params, dataset: str, device, load_translator) -> BoxTestSet:
        """The seed-679 test boxes of `dataset`, with its translator G_I
        (load_translator(model folder, dataset) -> generator) for FID."""
        translator = load_translator(os.path.join(self.model_root, f"translator-{dataset}"),
                                     dataset)
        return BoxTestSet(dataset, os.path.join(self.data_root, dataset), translator, device,
                          params.box_convention)

    def score(self, test: BoxTestSet, generator) -> tuple:
        return test.run(generator, self.edited_maps)

    def test_datasets(self, params: Params, row_datasets: list) -> list:
        """One test set per dataset of the rows."""
        return list(dict.fromkeys(row_datasets))

    def training_settings(self, params: Params, row: Row) -> dict:
        return {"q": params.q_of(row), "model": to_dict(params.model),
                "loss": to_dict(params.loss), "train": to_dict(params.train)}

    def conditions(self, params: Params, test_sets: dict) -> dict:
        """What run_conditions.json records besides the device, FID, seeds and VGG19s."""
        return {"data_source": params.data.label(params.datasets),
                "test_box_seed": params.evaluate.seed, "box_convention": params.box_convention}
