"""Label-map files read safely: the format is known by its signature and the frame that will be
decoded is checked against the size limits before a pixel is decoded.

Maps are PNG files (the only format the editor accepts): the signature is checked, and the IHDR
chunk, which must come first and is the size the decoder fills, gives the width, height, bit
depth and colour type. Any other container (ICO, whose directory may name 256x256 while it
wraps a 13000x13000 PNG; TIFF, GIF, BMP, JPEG...) is refused, as is a PNG whose IHDR is
malformed. Limits: MAX_SIDE pixels a side and MAX_MAP_PIXELS in all (a real Cityscapes map,
2048x1024, is well inside both)."""
from __future__ import annotations

import os
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 4096                  # pixels per side
MAX_MAP_PIXELS = 4096 * 4096     # pixels in all
# bits per pixel of each PNG colour type (x bit depth): grey, RGB, palette, grey+alpha, RGBA
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


class MapFileError(ValueError):
    """A map file refused before decoding; the message is one line naming the file."""


def png_header(path: str) -> dict:
    """The IHDR of the PNG at `path` ({width, height, bit_depth, colour_type, interlace}),
    checked against the limits; MapFileError naming the file otherwise. Reads 33 bytes."""
    if not os.path.isfile(path):
        raise MapFileError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(33)
    if not head.startswith(PNG_SIGNATURE):
        kind = _kind(head)
        raise MapFileError(f"{path}: not a PNG file ({kind}); a map must be a PNG of label ids "
                           "or a colour map")
    length, name = struct.unpack(">I4s", head[8:16]) if len(head) >= 16 else (0, b"")
    if name != b"IHDR" or length != 13 or len(head) < 33:
        raise MapFileError(f"{path}: a PNG whose first chunk is not a valid IHDR")
    body, crc = head[16:29], struct.unpack(">I", head[29:33])[0]
    if zlib.crc32(b"IHDR" + body) != crc:
        raise MapFileError(f"{path}: a PNG whose IHDR is damaged (CRC mismatch)")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
    if colour not in _CHANNELS or depth not in _DEPTHS[colour] or interlace > 1:
        raise MapFileError(f"{path}: a PNG with an invalid IHDR (bit depth {depth}, colour "
                           f"type {colour})")
    check_size(path, width, height)
    return {"width": width, "height": height, "bit_depth": depth, "colour_type": colour,
            "interlace": interlace}


def check_size(where: str, width: int, height: int) -> None:
    """MapFileError unless width x height is inside MAX_SIDE and MAX_MAP_PIXELS."""
    if width < 1 or height < 1:
        raise MapFileError(f"{where}: {width}x{height} pixels: an empty map")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_MAP_PIXELS:
        raise MapFileError(f"{where}: {width}x{height} pixels, more than a map may have "
                           f"(at most {MAX_SIDE} a side and {MAX_MAP_PIXELS} pixels in all)")


def open_png(path: str):
    """The PIL image of a PNG map that passed png_header, not yet decoded; the decoded size is
    the IHDR's (checked again after PIL read the header). MapFileError otherwise."""
    from PIL import Image, UnidentifiedImageError
    header = png_header(path)
    try:
        image = Image.open(path, formats=["PNG"])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise MapFileError(f"{path}: not a readable PNG ({' '.join(str(err).split())})") \
            from None
    if image.size != (header["width"], header["height"]):
        image.close()
        raise MapFileError(f"{path}: its header says {header['width']}x{header['height']} but "
                           f"the decoder would fill {image.size[0]}x{image.size[1]}")
    return image


def _kind(head: bytes) -> str:
    for magic, name in ((b"\x00\x00\x01\x00", "an ICO icon"), (b"GIF8", "a GIF"),
                        (b"BM", "a BMP"), (b"\xff\xd8\xff", "a JPEG"), (b"II*\x00", "a TIFF"),
                        (b"MM\x00*", "a TIFF"), (b"RIFF", "a RIFF/WebP file")):
        if head.startswith(magic):
            return name
    return "unknown signature" if head else "empty file"
