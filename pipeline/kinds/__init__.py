"""Row kinds: every row of the paper's tables is a params entry, and its kind is the class that
builds, trains, loads and scores it (one file each):

  structure   baselines, mex_rows   Table 1, Fig 10: pix2pixHD generator, L_B (+ MEx / A-MEx)
  twosm       twosm_rows            Table 2: the two-stream model of Hong et al.
  inpainting  inpainting_rows       Table 3: GL's completion network (+ A-MEx)
  translator  (one per dataset)     G_I, colour map -> photo, for every row's FID

`kind_of` maps a row name to its kind; `load_generator` rebuilds the network of any model file
by the kind its metadata names; `evaluate_table` scores the rows of one evaluate stage."""
from __future__ import annotations

import os

import torch.nn as nn

from pipeline.training import trainer
from pipeline.training.checkpoints import load_model_file
from pipeline.config.sections import Params, ParamsError
from pipeline.evaluation.evaluation import evaluate
from pipeline.kinds.base import RowKind
from pipeline.kinds.inpainting import InpaintingKind
from pipeline.kinds.structure import StructureKind
from pipeline.kinds.translator import TranslatorKind, translator_name
from pipeline.kinds.twosm import TwoSMKind
from pipeline.models.model_files import GENERATOR_FILE, ModelFileError, check_model_meta

STRUCTURE, TWOSM, INPAINTING, TRANSLATOR = (StructureKind(), TwoSMKind(), InpaintingKind(),
                                            TranslatorKind())
KINDS = {kind.name: kind for kind in (STRUCTURE, TWOSM, INPAINTING, TRANSLATOR)}
ROW_KINDS = (STRUCTURE, TWOSM, INPAINTING)   # the kinds of table rows
# The rows each evaluate stage scores (table -> the kinds that declare it), and the kinds of its
# test sets
TABLES = {table: tuple(kind for kind in ROW_KINDS if kind.table == table)
          for table in dict.fromkeys(kind.table for kind in ROW_KINDS)}

__all__ = ["KINDS", "ROW_KINDS", "TRANSLATOR", "RowKind", "kind_of", "load_generator",
           "train_row", "evaluate_table", "table_rows", "translator_name"]


def kind_of(params: Params, name: str) -> RowKind:
    """The kind of row `name` (the params section that lists it)."""
    for kind in ROW_KINDS:
        if name in kind.rows(params):
            return kind
    known = [row for kind in ROW_KINDS for row in kind.rows(params)]
    raise ParamsError(f"unknown row {name!r}; params.yaml rows: {', '.join(known) or 'none'}")


def train_row(params: Params, name: str, data_dir: str | None = None,
              out_dir: str | None = None, live_dir: str | None = None, progress: bool = True,
              seed: int | None = None) -> dict:
    """Train row `name` (any kind) with training seed `seed` (default: the first of
    params.seeds); the folders default to the kind's (RowKind.train)."""
    return kind_of(params, name).train(params, name, seed, data_dir=data_dir, out_dir=out_dir,
                                       live_dir=live_dir, progress=progress)


def load_generator(model_dir: str, device, *, dataset: str | None = None,
                   kinds=None) -> nn.Module:
    """A trained generator from `model_dir/generator.pt` (or the model file `model_dir`
    itself), in eval mode, rebuilt by the kind its metadata names (the pix2pixHD generator,
    the two-stream model with its `observation`, GL's completion network with its hole
    `fill`). Its checked metadata is `generator.meta`; a file of an older layout, or not of
    `dataset` / one of `kinds` when given, raises ModelFileError (one line)."""
    path = model_dir if os.path.isfile(model_dir) else os.path.join(model_dir, GENERATOR_FILE)
    state = load_model_file(path, ("generator", "in_channels"))
    meta = check_model_meta(state, path, dataset=dataset, kinds=kinds)
    if meta["kind"] not in KINDS:
        raise ModelFileError(f"{path}: a model of unknown kind {meta['kind']!r} (known: "
                             f"{', '.join(KINDS)})")
    generator = KINDS[meta["kind"]].network(state)
    try:
        generator.load_state_dict(state["generator"])
    except RuntimeError as err:
        raise ModelFileError(f"{path}: weights do not fit the network its metadata describes "
                             f"({str(err).splitlines()[0]})") from None
    generator.meta = meta
    return generator.to(device).eval()


def table_rows(params: Params, table: str) -> list:
    """The rows an evaluate stage scores: every row of its kinds."""
    return [row for kind in TABLES[table] for row in kind.rows(params)]


def evaluate_table(params: Params, table: str, rows=None, *, samples_dir: str,
                   data_root: str | None = None, model_root: str | None = None,
                   progress: bool = True) -> dict:
    """Score `rows` (default: every row of the table's kinds), every seed, and the floors of
    their test sets (pipeline.evaluation.evaluation.evaluate); table `segmentation` (Tables 1-2: one
    test set per dataset of the rows) or `inpainting` (Table 3: the facade test set, scored
    for its floors even without rows). data_root / model_root: the prepared data and the
    models (translators included) elsewhere than the kinds' folders."""
    rows = table_rows(params, table) if rows is None else list(rows)
    table_kinds = {kind.name: type(kind)(data_root, model_root) for kind in TABLES[table]}
    kinds = {}
    for name in rows:  # unknown names fail before any work
        kind = kind_of(params, name)
        if kind.name not in table_kinds:
            raise ParamsError(f"row {name!r} is a {kind.name} row, not one of the "
                              f"{table} table")
        kinds[name] = table_kinds[kind.name]
    t = params.train
    trainer.make_deterministic(t.seed, t.cpu_threads, t.deterministic)
    device = trainer.pick_device(t.device)
    kind = table_kinds[TABLES[table][0].name]
    datasets = kind.test_datasets(params, [kinds[name].dataset(params, name) for name in rows])

    def load_translator(folder, dataset):
        return load_generator(folder, device, dataset=dataset, kinds=(TRANSLATOR.name,))

    test_sets = {dataset: kind.test_set(params, dataset, device, load_translator)
                 for dataset in datasets}
    result = evaluate(params, kinds, test_sets, device=device, load=load_generator,
                      samples_dir=samples_dir, progress=progress)
    result["conditions"].update(kind.conditions(params, test_sets))
    return result
