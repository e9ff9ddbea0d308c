"""Semantic editing of a user's own segmentation map with a trained row (the paper's use case:
"a user can semantically edit a segmentation map by setting an arbitrary bounding box and a
target label").

    editor = load_editor("mexgan-cityscapes")             # a row of params.yaml, or a model file
    labels = read_label_map("my_map.png", editor)         # ids, or a colour map in the palette
                                                          # (pipeline.apps.editing_maps)
    result = editor.apply(labels, [Edit((10, 4, 30, 20), "car")])
    result.labels, result.colour, result.incomplete, result.photo

Sizes: the model runs at the size it was trained at (its file's metadata). The label map (and
instance map) is resized to it by nearest neighbour (pixel centres), each box is scaled to
cover the same region (floor of the left/top edge, ceiling of the right/bottom one), and the
generated labels inside the box are resized back by nearest neighbour and pasted into the box
of the input-size map: pixels outside the boxes are never changed, whatever the sizes.

Several edits apply in order, each to the map the previous one produced. Instance map: without
one, the label map serves as its own instance map (instance edges = label boundaries, so two
touching objects of one class have no edge between them, as in a map without instances). After
an edit, the pixels of the box that got the target label become one new instance
(label * 1000 + 999 - k for the k-th edit), the other box pixels take their label as id.

Every bad input raises ValueError (EditError) with a one-line message; nothing is computed
half-way for a user to see.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.data.inputs import from_unit_range, to_unit_range
from pipeline.kinds import KINDS, ROW_KINDS, TRANSLATOR, load_generator
from pipeline.models.model_files import GENERATOR_FILE
from pipeline.models.map_edits import resize_nearest

__all__ = ["Edit", "EditResult", "Editor", "EditError", "load_editor", "parse_box"]


class EditError(ValueError):
    """A bad editing input (model, map, box, label): the message is one line."""


@dataclass(frozen=True)
class Edit:
    box: tuple            # (x1, y1, x2, y2) half-open, in the INPUT map's own pixels
    label: int | str      # target label id or name


@dataclass
class EditResult:
    labels: np.ndarray     # (H, W) int, edited label ids at the input's size
    colour: np.ndarray     # (H, W, 3) uint8, `labels` in the dataset palette
    incomplete: np.ndarray  # (H, W, 3) uint8, the input colour map with the boxes painted in
    #                         their target labels (the G input as a user would see it)
    photo: np.ndarray | None  # (H, W, 3) uint8, G_I's photo of the edited map (None: no G_I)


#---------------------------------------------------------------------------------------------
# Inputs (pure functions)


def parse_box(text: str) -> tuple:
    """'x1,y1,x2,y2' -> a tuple of 4 ints (EditError otherwise)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4 or not all(_ascii_int(p) for p in parts):
            raise ValueError
        return tuple(int(p) for p in parts)
    except ValueError:
        raise EditError(f"box {text!r}: expected x1,y1,x2,y2 (4 integers, pixels of the input "
                        "map, x2/y2 exclusive)") from None


def _ascii_int(text: str) -> bool:
    """Whether `text` is an integer in ASCII digits (no '٣', '1_0', '+1'), at most 18 long."""
    digits = text[1:] if text.startswith("-") else text
    return 0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()


def id_dtype(num_labels: int):
    """The smallest integer type of a label map of `num_labels` labels that also holds the
    instance ids an edit gives (label * 1000 + 999 - k): uint16 up to 65 labels, else int32."""
    return np.uint16 if num_labels * 1000 <= np.iinfo(np.uint16).max else np.int32


def check_box(box, width: int, height: int) -> tuple:
    """The box as 4 ints, inside a width x height map and not empty (EditError otherwise)."""
    try:
        values = tuple(box)
        if len(values) != 4 or any(isinstance(v, bool) or int(v) != v for v in values):
            raise TypeError
        x1, y1, x2, y2 = (int(v) for v in values)
    except (TypeError, ValueError):
        raise EditError(f"box {box!r}: expected (x1, y1, x2, y2), 4 integers") from None
    if x2 <= x1 or y2 <= y1:
        raise EditError(f"box {x1},{y1},{x2},{y2} is empty (need x1 < x2 and y1 < y2; x2, y2 "
                        "exclusive)")
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise EditError(f"box {x1},{y1},{x2},{y2} is outside the {width}x{height} map "
                        f"(0 <= x1 < x2 <= {width}, 0 <= y1 < y2 <= {height})")
    return (x1, y1, x2, y2)


#---------------------------------------------------------------------------------------------
# The editor


PHOTO_BAND_PIXELS = 1 << 20  # output pixels G_I's photo is enlarged at a time (Editor.translate)


class Editor:
    """A trained structure generator (and its dataset's G_I) with what it needs to edit any map
    of its dataset: label names, palette, the size it runs at. Made by load_editor."""

    def __init__(self, generator, translator=None, *, device="cpu", model_path: str = "",
                 translator_path: str | None = None, translator_note: str = ""):
        meta = generator.meta
        self.generator, self.translator, self.device = generator, translator, torch.device(device)
        self.meta = meta
        self.kind = KINDS[meta["kind"]]   # how it draws a box (edit_box)
        self.dataset: str = meta["dataset"]
        self.label_names: list = list(meta["label_names"])
        self.palette: np.ndarray = np.asarray(meta["palette"], dtype=np.uint8)
        self.width, self.height = int(meta["width"]), int(meta["height"])
        self.row: str = meta["row"]
        self.model_path, self.translator_path = model_path, translator_path
        self.translator_note = translator_note
        self._names = {}
        for label, name in enumerate(self.label_names):
            self._names.setdefault(_normalise(name), label)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    # -- inputs ---------------------------------------------------------------------------

    def label_id(self, label) -> int:
        """A target label given by id (int or digits) or by name (case and _/space-insensitive)."""
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= int(label) < self.num_labels:
                return int(label)
            raise EditError(f"label id {int(label)} is outside the {self.dataset} labels "
                            f"(0..{self.num_labels - 1})")
        text = str(label).strip()
        if _ascii_int(text):
            return self.label_id(int(text))
        if text.replace("-", "").isdigit():
            raise EditError(f"label {ascii(text[:20])}: an id is written in ASCII digits 0-9")
        if _normalise(text) in self._names:
            return self._names[_normalise(text)]
        raise EditError(f"unknown label {text!r} for {self.dataset}; valid: "
                        f"{self.valid_labels_text()}")

    def valid_labels_text(self) -> str:
        named = [n for n in self.label_names if not n.startswith("nyu_class_")]
        more = ("; or nyu_class_<id>" if len(named) < self.num_labels else "")
        return f"{', '.join(named)}{more} (or an id 0..{self.num_labels - 1})"

    def check_label_map(self, label_map, what: str = "label map") -> np.ndarray:
        array = np.asarray(label_map)
        if array.ndim != 2 or array.size == 0:
            raise EditError(f"{what}: expected an (H, W) array of label ids, got shape "
                            f"{array.shape}")
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise EditError(f"{what}: expected integer label ids, got dtype {array.dtype}")
        if array.dtype == bool:
            array = array.view(np.uint8)
        bad = np.empty(0, dtype=np.int64)
        if int(array.min()) < 0 or int(array.max()) >= self.num_labels:  # refused: may copy
            bad = np.unique(array[(array < 0) | (array >= self.num_labels)])
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:8]) + (", ..." if bad.size > 8 else "")
            raise EditError(f"{what}: values {shown} are outside the {self.dataset} palette "
                            f"(ids 0..{self.num_labels - 1})")
        return array.astype(id_dtype(self.num_labels), copy=False)

    def check_instance_map(self, instance_map, shape) -> np.ndarray:
        array = np.asarray(instance_map)
        if array.shape != tuple(shape):
            raise EditError(f"instance map: shape {array.shape} differs from the label map's "
                            f"{tuple(shape)}")
        if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
            raise EditError(f"instance map: expected integer ids, got dtype {array.dtype}")
        if array.size and (int(array.min()) < np.iinfo(np.int32).min
                           or int(array.max()) > np.iinfo(np.int32).max):
            return array.astype(np.int64, copy=False)
        return array.astype(np.int32, copy=False)

    def check_edits(self, edits, width: int, height: int) -> list:
        """[(box, label id)] of `edits`, every one checked (EditError on the first bad one)."""
        if isinstance(edits, Edit):
            edits = [edits]
        edits = list(edits)
        if not edits:
            raise EditError("no edit given (need at least one box and target label)")
        checked = []
        for edit in edits:
            if not isinstance(edit, Edit):
                raise EditError(f"expected Edit(box, label), got {edit!r}")
            checked.append((check_box(edit.box, width, height), self.label_id(edit.label)))
        return checked

    # -- editing --------------------------------------------------------------------------

    def apply(self, label_map: np.ndarray, edits: list,
              instance_map: np.ndarray | None = None) -> EditResult:
        """Edit `label_map` ((H, W) ids of this editor's dataset, any size) with `edits` in
        order; `instance_map` (H, W) ids, optional (see the module docstring)."""
        labels = self.check_label_map(label_map)
        height, width = labels.shape
        checked = self.check_edits(edits, width, height)
        # one copy each of the map, its instances and the incomplete map, edited in place: the
        # caller's arrays never change, and a 4096x4096 map costs 3 x 32 MB here
        instances = (labels.copy() if instance_map is None
                     else np.array(self.check_instance_map(instance_map, labels.shape)))
        incomplete = labels.copy()
        labels = labels.copy()
        for k, (box, target) in enumerate(checked):
            x1, y1, x2, y2 = box
            incomplete[y1:y2, x1:x2] = target
            predicted = self._edit_box(labels, instances, box, target).astype(labels.dtype,
                                                                               copy=False)
            labels[y1:y2, x1:x2] = predicted
            inside = instances[y1:y2, x1:x2]
            inside[...] = predicted
            inside[predicted == target] = target * 1000 + 999 - k
            del predicted, inside
        incomplete = self.palette[incomplete]
        colour = self.palette[labels]
        return EditResult(labels=labels, colour=colour, incomplete=incomplete,
                          photo=self.translate(colour))

    def _edit_box(self, labels, instances, box, target) -> np.ndarray:
        """The generator's labels inside `box` (input pixels) for target `target`, drawn as its
        row kind draws (pipeline.kinds: `edit_box`, pipeline.models.map_edits)."""
        return self.kind.edit_box(self.generator, labels, instances, box, target, self.device)

    @torch.no_grad()
    def translate(self, colour: np.ndarray) -> np.ndarray | None:
        """G_I's photo of a (H, W, 3) colour map, at the map's size (None without a G_I). G_I
        runs at its own training size: the map is resized to it (nearest), the photo back
        (bilinear)."""
        if self.translator is None:
            return None
        from PIL import Image
        meta = self.translator.meta
        small = resize_nearest(colour, meta["width"], meta["height"])
        photo = from_unit_range(self.translator(to_unit_range(small[None]).to(self.device)))[0]
        height, width = colour.shape[:2]
        if photo.shape[:2] == (height, width):
            return photo
        image, small_h = Image.fromarray(photo), photo.shape[0]
        if height * width <= 4 * PHOTO_BAND_PIXELS:  # up to 2048x2048: one resize
            return np.asarray(image.resize((width, height), Image.BILINEAR))
        # larger: bilinear band by band into the output, without a second full-size picture in
        # PIL's own memory. PIL places each output pixel's centre in the whole source (a band's
        # box only offsets the centres), so a band's rows are the whole resize's up to float
        # rounding of the centres: values differ by at most 1 (of 255)
        out = np.empty((height, width, 3), np.uint8)
        band = max(1, PHOTO_BAND_PIXELS // width)
        for top in range(0, height, band):
            bottom = min(height, top + band)
            out[top:bottom] = np.asarray(image.resize(
                (width, bottom - top), Image.BILINEAR,
                box=(0, top * small_h / height, photo.shape[1], bottom * small_h / height)))
        return out

    def describe(self) -> str:
        """Some lines about the model (for --info)."""
        m = self.meta
        lines = [f"model: {self.model_path}", f"row: {m['row']} ({m['kind']})",
                 f"dataset: {m['dataset']} ({self.num_labels} labels)",
                 f"input size: {m['width']}x{m['height']}",
                 f"conditioning: {m['conditioning']} ({m['in_channels']} channels)",
                 f"params hash: {m['params_hash']}", f"code commit: {m['commit']}",
                 f"translator: {self.translator_path or 'none'}"
                 + (f" ({self.translator_note})" if self.translator_note else "")]
        if m.get("edit_classes"):
            lines.append("trained edit classes: " + ", ".join(
                f"{self.label_names[c]} ({c})" for c in m["edit_classes"]))
        return "\n".join(lines)


def _normalise(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


#---------------------------------------------------------------------------------------------
# Loading


def _resolve_model(model: str, params_path: str) -> tuple:
    """(model file, project root for the default translator) of a row name or a path."""
    if os.path.isdir(model):
        path = os.path.join(model, "generator.pt")
        if not os.path.isfile(path):
            raise EditError(f"model folder {model} has no generator.pt")
        return path, None
    if os.path.isfile(model):
        return model, None
    if not os.path.isfile(params_path):
        raise EditError(f"model {model!r}: no such file (and no {params_path} to look it up "
                        "as a row)")
    from pipeline.config.loading import load_params
    from pipeline.config.sections import ParamsError
    try:
        params = load_params(params_path)
    except ParamsError as err:
        raise EditError(str(err).splitlines()[0]) from None
    root = os.path.dirname(os.path.abspath(params_path))
    editable = {name: kind for kind in ROW_KINDS if kind.edits_maps for name in kind.rows(params)}
    if model not in editable:
        other = [kind.name for kind in ROW_KINDS if model in kind.rows(params)]
        if other:
            raise EditError(f"{model} is a row of kind {other[0]}, not a segmentation-map "
                            f"editor; rows: {', '.join(editable)}")
        raise EditError(f"model {model!r}: no such file, and not a row of {params_path} "
                        f"(rows: {', '.join(editable)})")
    kind, seed = editable[model], params.seeds[0]
    path = os.path.join(type(kind)(model_root=os.path.join(root, kind.model_root))
                        .model_dir(model, seed), GENERATOR_FILE)
    if not os.path.isfile(path):
        raise EditError(f"model file {os.path.relpath(path)} of row {model} does not exist: "
                        f"make it with `dvc repro {kind.stage(params, model)}@{model}-{seed}` "
                        "(or `dvc pull` it from your lab's DVC remote)")
    return path, root


def _default_translator(model_path: str, root: str | None, dataset: str):
    """The G_I file next to a pipeline model (artifacts/models/translator-<dataset>), if any."""
    candidates = [os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(model_path)))), f"translator-{dataset}", "generator.pt")]
    if root is not None:
        candidates.append(os.path.join(root, "artifacts", "models", f"translator-{dataset}",
                                       "generator.pt"))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return None


# the kinds of model an editor runs: those whose models redraw a box of a label map
EDITING_KINDS = tuple(kind.name for kind in ROW_KINDS if kind.edits_maps)


def _load(path: str, device, **checks):
    try:
        return load_generator(path, device, **checks)
    except (FileNotFoundError, ValueError) as err:
        raise EditError(" ".join(str(err).split())) from None


def load_editor(model: str, *, params_path: str = "params.yaml", translator: str | None = None,
                device: str = "cpu") -> Editor:
    """An Editor for `model`: a row name of params (its first training seed's
    artifacts/models/<row>/seed<k>/generator.pt, relative to the params file's folder) or the
    path of a model file (or of its folder). translator: a G_I model file, "none" for no photo,
    or None for the dataset's G_I next to the model (artifacts/models/translator-<dataset>/;
    no photo when there is none). EditError (a ValueError) with one line on any problem."""
    path, root = _resolve_model(str(model), params_path)
    generator = _load(path, device, kinds=EDITING_KINDS)
    dataset = generator.meta["dataset"]
    note = ""
    if translator is None:
        translator_path = _default_translator(path, root, dataset)
        if translator_path is None:
            note = f"no translator-{dataset} model found next to the model: no photo"
    elif str(translator).lower() == "none":
        translator_path, note = None, "disabled"
    else:
        translator_path = str(translator)
        if os.path.isdir(translator_path):
            translator_path = os.path.join(translator_path, "generator.pt")
        if not os.path.isfile(translator_path):
            raise EditError(f"translator {translator}: no such model file (the pipeline makes "
                            f"it with `dvc repro translator@{dataset}`)")
    translator_model = (None if translator_path is None else
                        _load(translator_path, device, dataset=dataset, kinds=(TRANSLATOR.name,)))
    size = (generator.meta["width"], generator.meta["height"])
    if translator is None and translator_model is not None and \
            (translator_model.meta["width"], translator_model.meta["height"]) != size:
        # the G_I found beside the model was trained with another model (another size): its
        # photo would not be this model's; a user can still name it with --translator
        note = (f"{translator_path} runs at {translator_model.meta['width']}x"
                f"{translator_model.meta['height']}, not at the model's {size[0]}x{size[1]} "
                f"(give --translator to use it anyway)")
        translator_model, translator_path = None, None
    return Editor(generator, translator_model, device=device, model_path=path,
                  translator_path=translator_path, translator_note=note)
