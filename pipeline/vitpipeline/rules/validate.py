"""Decoding images safely: a bad file is quarantined with its reason, never a crash.

Checked by decoding, not by array shape (an `ndim == 3` test lets RGBA, CMYK and palette
images through and rejects nothing that fails to decode).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import ValidationSpec

OK = "ok"


@dataclass(frozen=True)
class Decoded:
    image: np.ndarray | None  # HxWx3 uint8 RGB when usable
    reason: str  # "ok", or why the file was quarantined
    mode: str  # the file's own colour mode, e.g. "L", "RGBA", "CMYK"

    @property
    def ok(self) -> bool:
        return self.reason == OK


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # Transparent pixels become white, not the black that a plain convert gives.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    return im.convert("RGB")


def decode(data: bytes, spec: ValidationSpec, view=None, draft: tuple[int, int] | None = None) -> Decoded:
    """Decode and check one file. `view` maps the RGB PIL image to the array kept (default:
    the image itself); `draft` lets a large JPEG decode at a reduced scale no smaller than
    that (width, height), which is what JPEG's DCT gives for free."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            mode = im.mode
            width, height = im.size
            if width * height > spec.max_pixels:
                return Decoded(None, f"too large: {width}x{height} pixels", mode)
            if min(width, height) < spec.min_side:
                return Decoded(None, f"too small: {width}x{height} (validation.minSide {spec.min_side})", mode)
            if draft is not None and im.format == "JPEG" and mode in ("RGB", "L"):
                im.draft(mode, (max(draft), max(draft)))
            im.load()
            im = ImageOps.exif_transpose(im)  # a quarter turn keeps the shorter side checked above
            if mode != "RGB":
                if spec.non_rgb == "drop":
                    return Decoded(None, f"non-RGB image ({mode}) dropped: validation.nonRgb is drop", mode)
                im = _to_rgb(im)
            return Decoded(view(im) if view else np.asarray(im, dtype=np.uint8), OK, mode)
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        return Decoded(None, f"not a decodable image: {type(err).__name__}", "")
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        return Decoded(None, f"corrupt image: {err}", "")
