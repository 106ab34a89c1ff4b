"""Scan files for tests, good and bad, made in memory from a bundled clean image."""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms


@lru_cache(maxsize=1)
def clean() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((256, 256))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def jpeg(size=(256, 256), **kw) -> bytes:
    return encode(clean().resize(size), "JPEG", quality=90, **kw)


def png() -> bytes:
    return encode(clean(), "PNG")


def exif_jpeg(orientation: int | None = None, description: str | None = None, size=(200, 100)) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Epson"  # Make
    exif[0x0110] = "Perfection V850"  # Model
    exif[0x0132] = "1931:07:14 09:30:00"  # DateTime
    if orientation:
        exif[0x0112] = orientation
    if description:
        exif[0x010E] = description  # ImageDescription
    return encode(clean().resize(size), "JPEG", exif=exif, dpi=(600, 600))


def malformed_exif_jpeg() -> bytes:
    """A JPEG whose APP1 EXIF segment points its IFD far past the end of the data."""
    body = jpeg()
    tiff = b"II*\x00" + struct.pack("<I", 0x7FFFFFF0) + b"\x00" * 16
    segment = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment
    return body[:2] + app1 + body[2:]


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A tiny PNG that declares a huge size in its header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def cmyk_jpeg() -> bytes:
    return encode(clean().convert("CMYK"), "JPEG", quality=90)


def gray16_tiff() -> bytes:
    ramp = np.linspace(0, 65535, 64 * 48, dtype=np.uint16).reshape(48, 64)
    return encode(Image.fromarray(ramp), "TIFF")


def rgb16_tiff() -> bytes:
    import tifffile

    arr = (np.asarray(clean().resize((64, 48)), dtype=np.uint16) * 257).astype(np.uint16)
    out = io.BytesIO()
    tifffile.imwrite(out, arr, photometric="rgb", resolution=(1200, 1200), resolutionunit="INCH")
    return out.getvalue()


def palette_png_transparent() -> bytes:
    img = clean().resize((64, 64)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return encode(img, "PNG", transparency=0)


def multipage_tiff() -> bytes:
    pages = [clean().resize(s) for s in ((120, 80), (80, 120), (60, 60))]
    return encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])


def animated_gif() -> bytes:
    frames = [clean().resize((64, 64)).rotate(a) for a in (0, 90, 180, 270)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def icc_jpeg() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return encode(clean(), "JPEG", icc_profile=profile.tobytes())


def webp() -> bytes:
    return encode(clean(), "WEBP", quality=80)


def one_pixel_png() -> bytes:
    return encode(Image.new("RGB", (1, 1), (120, 80, 40)), "PNG")


def panorama_jpeg() -> bytes:
    return encode(clean().resize((20000, 200)), "JPEG", quality=80)


def bad_inputs() -> dict[str, bytes]:
    """Every awkward input the issue lists, keyed by the name it is stored under."""
    return {
        "zero-byte.jpg": b"",
        "truncated.jpg": truncated(jpeg()),
        "truncated.png": truncated(png()),
        "text-named.jpg": b"This is a README, not a photograph.\n" * 20,
        "bomb.png": bomb_png(),
        "cmyk.jpg": cmyk_jpeg(),
        "gray16.tif": gray16_tiff(),
        "rgb16.tif": rgb16_tiff(),
        "palette-transparent.png": palette_png_transparent(),
        "multipage.tif": multipage_tiff(),
        "animated.gif": animated_gif(),
        "malformed-exif.jpg": malformed_exif_jpeg(),
        "enormous-exif.jpg": exif_jpeg(description="x" * 60_000),
        "rotated.jpg": exif_jpeg(orientation=6),
        "icc.jpg": icc_jpeg(),
        "photo.webp": webp(),
        "one-pixel.png": one_pixel_png(),
        "panorama.jpg": panorama_jpeg(),
        "Album 1/Ölgemälde – café no. 3.jpg": jpeg((300, 200)),
        "copies/original.jpg": jpeg((180, 120)),
        "copies/same bytes again.jpg": jpeg((180, 120)),
    }
