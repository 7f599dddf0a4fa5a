"""Any common image file -> uint8 RGB ``[S,S,3]``: the one decode path of ``curate`` and ``gva predict``.

Policy (docs/data.md, "Images"), in this order:

1. JPEGs at least twice the target side on both axes are decoded at reduced scale (libjpeg's DCT
   scaling, PIL's ``draft``: 1/2, 1/4 or 1/8, never below 2x the target), which makes a 12 MP photo
   about 10x cheaper; smaller images, Tiny ImageNet's 64 px among them, decode in full.
2. EXIF orientation is applied (``PIL.ImageOps.exif_transpose``): a phone photo stands upright.
3. 16-bit (and 32-bit integer) greyscale is scaled to 8 bits (``v / 65535 * 255``; PIL's plain
   conversion would clip it); transparency (RGBA, LA, PA, palette with a transparent colour) is
   composited on **white**; every other mode (L, P, 1, CMYK, YCbCr ...) goes through PIL's RGB conversion.
4. ``resize`` makes the ``size x size`` square, always with a bicubic filter:

   * ``center_crop`` (default): the short side is scaled to ``size`` and the centre of the long side
     kept (``ImageOps.fit``); a square image is only resized, so a 64 px Tiny ImageNet image at
     ``size`` 64 keeps its exact pixels;
   * ``squash``: both sides scaled to ``size``, ignoring the aspect ratio;
   * ``pad``: the long side scaled to ``size``, the image centred on a **black** square (letterbox).

Errors are ``ValueError`` with a short reason (no file name: the caller names the file).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, ImageOps

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file must raise, never decode half-grey

# Files with these suffixes (any case) are images; everything else in a dataset is skipped and counted.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
RESIZE_POLICIES = ("center_crop", "squash", "pad")
MAX_PIXELS = 100_000_000   # refuse decompression bombs, allow 4000x3000 photos
TRANSPARENCY_BACKGROUND = (255, 255, 255)
PAD_COLOUR = (0, 0, 0)


def is_image_name(path: str, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    """An image by its (relative POSIX) path: an image suffix, and neither the file nor a folder on
    its way hidden (macOS' ``._x.jpg``, ``.ipynb_checkpoints/``)."""
    return path.lower().endswith(suffixes) and not any(p.startswith(".") and p not in (".", "..")
                                                       for p in path.split("/"))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.new("RGB", rgba.size, TRANSPARENCY_BACKGROUND)
        im.paste(rgba, mask=rgba.getchannel("A"))
    return im.convert("RGB")


def resize_square(rgb: Image.Image, size: int, policy: str = "center_crop") -> Image.Image:
    """An RGB image -> ``size x size`` by ``policy`` (see the module docstring)."""
    bicubic = Image.Resampling.BICUBIC
    if policy == "center_crop":
        return ImageOps.fit(rgb, (size, size), bicubic)
    if policy == "squash":
        return rgb if rgb.size == (size, size) else rgb.resize((size, size), bicubic)
    if policy == "pad":
        return ImageOps.pad(rgb, (size, size), bicubic, color=PAD_COLOUR)
    raise ValueError(f"unknown resize policy {policy!r} (one of {', '.join(RESIZE_POLICIES)})")


def decode_image(source: str | Path | BinaryIO, size: int, resize: str = "center_crop") -> np.ndarray:
    """Decode one image file (a path or an open binary file) to uint8 RGB ``[size,size,3]``."""
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {resize!r} (one of {', '.join(RESIZE_POLICIES)})")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(source) as im:
            im.draft("RGB", (size * 2, size * 2))  # JPEG only: decode big photos at reduced scale
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            rgb = _to_rgb(im)
    except FileNotFoundError:
        raise ValueError("file not found") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large ({exc})") from None
    except Image.UnidentifiedImageError:
        raise ValueError("not a readable image (unknown or unsupported format)") from None
    except Exception as exc:  # PIL raises many types for broken files; its texts may name a buffer
        detail = re.sub(r"\s*<[^>]* at 0x[0-9a-fA-F]+>", "", str(exc)).strip()
        raise ValueError(f"not a readable image ({type(exc).__name__}{': ' + detail if detail else ''})") from None
    return np.asarray(resize_square(rgb, size, resize), dtype=np.uint8)
