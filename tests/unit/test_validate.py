import io

import numpy as np
import pytest
from PIL import Image

from vitpipeline.config import ValidationSpec
from vitpipeline.rules.validate import OK, decode


def encoded(mode, size=(20, 16), fmt="PNG", **kw):
    im = Image.new("RGB", size, (200, 30, 60)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode, fmt", [("L", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("CMYK", "JPEG"), ("I;16", "PNG"), ("LA", "PNG")]
)
def test_non_rgb_is_converted_to_three_channels(mode, fmt):
    d = decode(encoded(mode, fmt=fmt), ValidationSpec())
    assert d.reason == OK
    assert d.image.shape == (16, 20, 3) and d.image.dtype == np.uint8
    assert d.mode == mode


def test_transparent_pixels_become_white():
    im = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    d = decode(buf.getvalue(), ValidationSpec())
    assert (d.image == 255).all()


def test_drop_mode_quarantines_non_rgb():
    d = decode(encoded("L"), ValidationSpec(non_rgb="drop"))
    assert d.image is None and "non-RGB image (L) dropped" in d.reason
    assert decode(encoded("RGB"), ValidationSpec(non_rgb="drop")).ok


@pytest.mark.parametrize(
    "data, words",
    [
        (b"not an image at all", "not a decodable image"),
        (encoded("RGB", fmt="JPEG")[:200], "corrupt image"),
        (encoded("RGB", size=(4, 40)), "too small: 4x40"),
        (b"", "not a decodable image"),
    ],
)
def test_bad_files_are_quarantined_with_a_reason(data, words):
    d = decode(data, ValidationSpec())
    assert not d.ok and d.image is None and words in d.reason


def test_pixel_limit():
    d = decode(encoded("RGB", size=(100, 100)), ValidationSpec(max_pixels=5000))
    assert d.reason == "too large: 100x100 pixels"
