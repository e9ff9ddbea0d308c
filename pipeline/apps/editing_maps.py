"""A user's map files for the editor (pipeline.apps.editing): reading a label map (ids, or a
colour map in the dataset's palette, looked up exactly) and an instance map, both as PNG files
checked before decoding (pipeline.data.map_files); and the side-by-side picture of an edit
(input | incomplete | edited | photo). Every bad file raises EditError with one line."""
from __future__ import annotations

import numpy as np

from pipeline.apps.editing import EditError, Editor, EditResult, id_dtype
from pipeline.models.map_edits import nearest_index

#---------------------------------------------------------------------------------------------
# Reading maps


def _open_image(path: str):
    """The PNG at `path` (pipeline.data.map_files: known by its signature, its IHDR frame inside
    MAX_SIDE / MAX_MAP_PIXELS before anything is decoded), decoded."""
    from pipeline.data.map_files import MapFileError, open_png
    try:
        image = open_png(path)
        image.load()
    except MapFileError as err:
        raise EditError(str(err)) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:
        raise EditError(f"{path}: not a readable PNG ({' '.join(str(err).split())[:160]})") \
            from None
    return image


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) colours -> (...) uint32 codes 0xRRGGBB (one channel converted at a time)."""
    rgb = np.asarray(rgb)
    codes = rgb[..., 0].astype(np.uint32) << 16
    codes |= rgb[..., 1].astype(np.uint32) << 8
    codes |= rgb[..., 2].astype(np.uint32)
    return codes


CODE_ROWS = 256   # rows looked up at a time: bounds the temporaries of a 4096-wide map


def colour_map_to_ids(rgb, palette: np.ndarray, where: str, dataset: str) -> np.ndarray:
    """Exact palette lookup of a (H, W, 3) colour map (an array, or a decoded PIL image read
    CODE_ROWS rows at a time, never converted whole), into id_dtype ids; EditError naming the
    first colour that is not in the palette."""
    palette_codes = _colour_codes(palette)
    order = np.argsort(palette_codes)
    sorted_codes = palette_codes[order]
    image = None if isinstance(rgb, np.ndarray) else rgb
    shape = rgb.shape[:2] if image is None else (image.size[1], image.size[0])
    ids = np.empty(shape, dtype=id_dtype(len(palette)))
    missing, first = 0, None
    for top in range(0, shape[0], CODE_ROWS):
        strip = (rgb[top:top + CODE_ROWS] if image is None else np.asarray(
            image.crop((0, top, shape[1], min(top + CODE_ROWS, shape[0]))).convert("RGB")))
        codes = _colour_codes(strip)
        position = np.clip(np.searchsorted(sorted_codes, codes), 0, len(sorted_codes) - 1)
        found = sorted_codes[position] == codes
        if not found.all():
            missing += int((~found).sum())
            if first is None:
                y, x = (int(v[0]) for v in np.nonzero(~found))
                first = (top + y, x, tuple(int(c) for c in strip[y, x]))
        ids[top:top + CODE_ROWS] = order[position]
    if missing:
        y, x, colour = first
        raise EditError(f"{where}: {missing} pixels have colours outside the "
                        f"{dataset} palette (first {colour} at x={x}, y={y}); a colour map must "
                        "use the palette's exact colours (a lossless PNG, not a JPEG), or give "
                        "a PNG of label ids")
    return ids


def read_label_map(path: str, editor: Editor) -> np.ndarray:
    """A label map file -> (H, W) ids of the editor's dataset. Greyscale / 16-bit PNGs hold ids
    (Cityscapes *_labelIds.png); RGB(A) PNGs are colour maps in the dataset palette (exact
    colours; alpha ignored); a palette-mode PNG holds ids when its palette agrees with the
    dataset's on every used index (CMP Facade style), else it is read as a colour map.
    EditError naming the file on a bad input."""
    image = _open_image(path)
    if image.mode == "P":
        ids = np.asarray(image)
        raw = image.getpalette() or []
        file_palette = np.array(raw + [0] * (768 - len(raw)), dtype=np.int64)[:768].reshape(256, 3)
        used = np.unique(ids)
        agrees = (used.max() < editor.num_labels and
                  (file_palette[used] == editor.palette[used]).all())
        image = image if agrees else image.convert("RGB")
        if agrees:
            return _checked(ids, path, editor)
    if image.mode in ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr"):
        return colour_map_to_ids(image, editor.palette, path, editor.dataset)
    if image.mode in ("LA", "La", "PA"):
        image = image.getchannel(0)
    array = np.asarray(image)
    if array.dtype.kind == "f":
        if not np.all(np.mod(array, 1) == 0):
            raise EditError(f"{path}: float pixels that are not whole label ids")
    if array.ndim != 2:
        raise EditError(f"{path}: image mode {image.mode} is neither label ids nor a colour map")
    if array.dtype.kind == "f":
        array = array.astype(np.int64)
    return _checked(array, path, editor)


def _checked(ids: np.ndarray, path: str, editor: Editor) -> np.ndarray:
    try:
        return editor.check_label_map(ids, what=path)
    except EditError as err:
        raise EditError(str(err).replace(f"{path}: ", f"{path}: label ids: ", 1)) from None


def read_instance_map(path: str) -> np.ndarray:
    """An instance-id PNG (e.g. Cityscapes *_instanceIds.png, 16-bit) -> (H, W) ints."""
    image = _open_image(path)
    if image.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA"):
        raise EditError(f"{path}: an instance map must be a greyscale / 16-bit PNG of ids, not "
                        f"mode {image.mode}")
    array = np.asarray(image)
    if array.ndim != 2:
        raise EditError(f"{path}: not a 2-D instance map")
    return array.astype(np.int32, copy=False)


#---------------------------------------------------------------------------------------------
# Picture


def side_by_side(input_colour: np.ndarray, result: EditResult, boxes,
                 min_height: int = 128, max_width: int = 1024,
                 max_height: int = 1024) -> np.ndarray:
    """One RGB picture: input | incomplete (G input) | edited | photo (G_I), each captioned, with
    the boxes outlined in white (display only). Small maps are enlarged (nearest, integer
    factor) to at least `min_height`, large ones reduced to fit `max_width` x `max_height` per
    panel: the picture is at most 4 x max_width + 12 by max_height + 14 pixels."""
    from PIL import Image, ImageDraw
    height, width = input_colour.shape[:2]
    scale = max(1, -(-min_height // height))
    panel_w, panel_h = width * scale, height * scale
    shrink = min(1.0, max_width / panel_w, max_height / panel_h)
    if shrink < 1:
        panel_w = max(1, min(max_width, round(panel_w * shrink)))
        panel_h = max(1, min(max_height, round(panel_h * shrink)))
    sx, sy = panel_w / width, panel_h / height
    photo = result.photo if result.photo is not None else np.full_like(input_colour, 128)
    panels = [("input", input_colour, True), ("incomplete (G input)", result.incomplete, True),
              ("edited", result.colour, True),
              ("photo (G_I)" if result.photo is not None else "no G_I", photo, False)]
    caption, gap = 14, 4
    canvas = Image.new("RGB", (4 * panel_w + 3 * gap, panel_h + caption), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, (title, array, is_map) in enumerate(panels):
        if shrink < 1:  # reduce in numpy first (nearest; the photo to twice the panel, then
            #             bilinear): no full-size copy of a large map in PIL's memory
            factor = 1 if is_map else 2
            array = array[nearest_index(min(height, panel_h * factor), height)[:, None],
                          nearest_index(min(width, panel_w * factor), width)[None, :]]
        image = Image.fromarray(np.ascontiguousarray(array))
        image = image.resize((panel_w, panel_h), Image.NEAREST if is_map else Image.BILINEAR)
        left = i * (panel_w + gap)
        canvas.paste(image, (left, caption))
        draw.text((left + 2, 1), title, fill=(0, 0, 0))
        if i in (1, 2):
            for x1, y1, x2, y2 in boxes:
                draw.rectangle([left + int(x1 * sx), caption + int(y1 * sy),
                                left + max(int(x2 * sx) - 1, int(x1 * sx)),
                                caption + max(int(y2 * sy) - 1, int(y1 * sy))],
                               outline=(255, 255, 255))
    return np.asarray(canvas)
