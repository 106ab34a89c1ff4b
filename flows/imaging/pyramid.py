"""Tiled pyramids of masters and versions for the IIIF Image API: made once per file with libvips
(the ``pyvips-binary`` wheel ships it), kept as pyramidal TIFFs (256-pixel JPEG tiles, each level
half the last), and cut from, so a deep-zoom tile of a 100-megapixel scan decodes a few tiles of
the level nearest its scale, never the whole scan.

A pyramid shows the picture upright (the EXIF orientation applied) in 8-bit sRGB or grey, alpha
flattened on white: what a viewer shows, not the preservation file (which stays as scanned)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from archive_db.web.media import Cut

TILE = 256

# EXIF orientation -> the turns that show the picture upright
_UPRIGHT = {
    2: ("fliphor",),
    3: ("rot180",),
    4: ("flipver",),
    5: ("rot90", "fliphor"),
    6: ("rot90",),
    7: ("rot270", "fliphor"),
    8: ("rot270",),
}


SAVE = {
    "tile": True,
    "tile_width": TILE,
    "tile_height": TILE,
    "pyramid": True,
    "compression": "jpeg",
    "Q": 90,
}


def _viewable(img, orientation: int | None):
    """An image as a viewer shows it: 8-bit sRGB or grey, alpha flattened on white, upright."""
    grey = img.bands in (1, 2)
    img = img.colourspace("b-w" if grey else "srgb")  # CMYK, 16-bit and the like, as 8-bit viewing
    if img.hasalpha():
        img = img.flatten(background=[255] * (img.bands - 1))
    if img.format != "uchar":
        img = img.cast("uchar")
    for turn in _UPRIGHT.get(orientation or 1, ()):
        img = getattr(img, turn)()
    return img


def from_pixels(pixels: np.ndarray, orientation: int | None, xmp: bytes | None = None) -> bytes:
    """The pyramid (pyramidal TIFF bytes) of a version's pixels ([H, W] or [H, W, C], uint8 or
    uint16): written with the version and recorded in its sidecar."""
    import pyvips

    array = np.ascontiguousarray(pixels if pixels.ndim == 3 else pixels[..., None])
    h, w, bands = array.shape
    fmt = "ushort" if array.dtype == np.uint16 else "uchar"
    img = pyvips.Image.new_from_memory(array.tobytes(), w, h, bands, fmt)
    grey = bands in (1, 2)
    kind = ("grey16" if grey else "rgb16") if fmt == "ushort" else ("b-w" if grey else "srgb")
    img = _viewable(img.copy(interpretation=kind), orientation)
    if xmp is None:
        return img.tiffsave_buffer(**SAVE, strip=True)
    img = img.copy()
    img.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)  # the version's history and disclosure
    return img.tiffsave_buffer(**SAVE)


def build(data: bytes, orientation: int | None, path: Path) -> None:
    """Write the pyramid of an image file's bytes to ``path``."""
    import pyvips

    img = _viewable(pyvips.Image.new_from_buffer(data, "", access="sequential"), orientation)
    save(path, lambda tmp: img.tiffsave(tmp, **SAVE, strip=True))


def save(path: Path, write) -> None:
    """Call ``write(a temporary path)``, then move the file to ``path``: a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tif.partial")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Pyramid:
    def __init__(self, path: Path):
        import pyvips

        self.path = path
        first = pyvips.Image.new_from_file(str(path), access="random")
        self.width, self.height = first.width, first.height
        self.levels = first.get("n-pages") if first.get_typeof("n-pages") else 1

    def scale_factors(self) -> list[int]:
        return [2**k for k in range(self.levels)]

    def render(self, cut: Cut) -> bytes:
        import pyvips

        scale = min(cut.w / cut.out_w, cut.h / cut.out_h)
        level = max(0, min(self.levels - 1, int(math.floor(math.log2(scale))) if scale >= 1 else 0))
        page = pyvips.Image.new_from_file(str(self.path), page=level, access="random")
        sx, sy = page.width / self.width, page.height / self.height
        left, top = min(int(cut.x * sx), page.width - 1), min(int(cut.y * sy), page.height - 1)
        width = max(1, min(page.width - left, round(cut.w * sx)))
        height = max(1, min(page.height - top, round(cut.h * sy)))
        img = page.crop(left, top, width, height)
        if (img.width, img.height) != (cut.out_w, cut.out_h):
            img = img.resize(cut.out_w / img.width, vscale=cut.out_h / img.height, kernel="lanczos3")
            if (img.width, img.height) != (cut.out_w, cut.out_h):  # rounding: make it exact
                img = img.gravity("north-west", cut.out_w, cut.out_h, extend="copy")
        if cut.mirror:
            img = img.fliphor()
        if cut.turn:
            img = getattr(img, f"rot{cut.turn}")()
        if cut.quality in ("gray", "bitonal") and img.bands >= 3:
            img = img.colourspace("b-w")
        if cut.quality == "bitonal":
            img = (img > 127).ifthenelse(255, 0).cast("uchar")
        if cut.format == "png":
            return img.pngsave_buffer(compression=6)
        if cut.format == "webp":
            return img.webpsave_buffer(Q=85)
        return img.jpegsave_buffer(Q=85, strip=True)
