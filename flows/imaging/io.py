"""Reading and writing image files for restoration without losing mode or bit depth."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from flows.imaging.inspect import tiff_bits


@dataclass
class Loaded:
    pixels: Any  # HxW or HxWxC numpy array, uint8 or uint16; or a uint8 tensor decoded on a GPU
    format: str
    mode: str  # Pillow's mode, or "RGB;16" for 16-bit colour read with tifffile
    info: dict[str, Any] = field(default_factory=dict)  # icc_profile, dpi


def scaled_dpi(dpi, scale: int):
    """An enlargement's resolution: ``scale`` times the DPI, so it prints at the original's size."""
    return tuple(float(d) * scale for d in dpi) if dpi and scale != 1 else dpi


def pixel_limit() -> int:
    """The catalogue's one pixel limit (``ARCHIVE_INGEST__MAX_PIXELS``): what ingest accepts,
    restoration, styles and previews must read, whatever Pillow's own default (179 MP)."""
    from flows.settings import Settings

    return Settings().ingest.max_pixels


def read_image(source: Path | bytes, gpu: Any = None, max_pixels: int | None = None) -> Loaded:
    """Decode a file (a path, or its bytes) to an array; 16-bit colour TIFFs (which Pillow reads
    as 8-bit) via tifffile. With ``gpu`` (a CUDA torch.device where nvJPEG works), grey and RGB
    JPEGs decode there. Images over ``max_pixels`` (default :func:`pixel_limit`) are refused
    before decoding."""

    def opened():
        return source if isinstance(source, Path) else io.BytesIO(source)

    limit = max_pixels or pixel_limit()
    Image.MAX_IMAGE_PIXELS = None  # Pillow's process-wide default gives way to the catalogue's limit
    with Image.open(opened()) as img:
        if img.width * img.height > limit:
            raise ValueError(
                f"{img.width}x{img.height} = {img.width * img.height:,} pixels is over the limit of "
                f"{limit:,} (ARCHIVE_INGEST__MAX_PIXELS); not decoded"
            )
        info = {k: img.info[k] for k in ("icc_profile", "dpi") if k in img.info}
        fmt, mode = img.format, img.mode
        if gpu is not None and fmt == "JPEG" and mode in ("L", "RGB"):
            from restoration.decode import decode_jpeg_on

            data = source.read_bytes() if isinstance(source, Path) else source
            return Loaded(decode_jpeg_on(data, mode == "L", gpu), fmt, mode, info)
        if fmt == "PNG" and mode in ("RGB", "RGBA") and _png_bit_depth(opened()) == 16:
            return Loaded(_png16_pixels(source), fmt, mode + ";16", info)  # Pillow would give 8 bits
        img.load()
        if fmt == "TIFF" and mode in ("RGB", "RGBA") and tiff_bits(img) == 16:
            import tifffile

            return Loaded(tifffile.imread(opened()), fmt, mode + ";16", info)
        if mode in ("I;16", "I;16B", "I;16L"):
            return Loaded(np.asarray(img, dtype=np.uint16), fmt, "I;16", info)
        if mode in ("L", "RGB", "RGBA"):
            return Loaded(np.asarray(img), fmt, mode, info)
        target = "RGBA" if ("transparency" in img.info or mode in ("LA", "PA", "RGBa")) else "RGB"
        return Loaded(np.asarray(img.convert(target)), fmt, target, info)


def _png_bit_depth(fh) -> int:
    """The bit depth in a PNG's IHDR chunk (byte 24: after the signature, length, type, size)."""
    head = fh.read(25) if hasattr(fh, "read") else fh.open("rb").read(25)
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 0


def _png16_pixels(source: Path | bytes) -> np.ndarray:
    """A 16-bit RGB or RGBA PNG at its full depth, as RGB(A) uint16 (OpenCV decodes it losslessly)."""
    import cv2

    data = source.read_bytes() if isinstance(source, Path) else source
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.ndim != 3:
        raise ValueError("a 16-bit colour PNG that OpenCV cannot decode at 16 bits")
    return np.ascontiguousarray(
        cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    )


def write_image(path: Path, pixels: np.ndarray, like: Loaded, scale: int = 1) -> None:
    """Write ``pixels`` in the original's format and mode, with its ICC profile and DPI (``scale``
    times it for an enlargement ``scale`` times larger, so it prints at the original's size)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale != 1 and like.info.get("dpi"):
        like = replace(like, info=like.info | {"dpi": scaled_dpi(like.info["dpi"], scale)})
    if pixels.dtype == np.uint16 and pixels.ndim == 3 and like.format == "PNG":
        path.write_bytes(
            png16(pixels, like.info.get("dpi"))
        )  # a 16-bit colour PNG (or a grey one styled in colour)
        return
    if like.mode.endswith(";16") and pixels.ndim == 3:
        import tifffile

        tifffile.imwrite(
            path,
            pixels,
            photometric="rgb",
            iccprofile=like.info.get("icc_profile"),
            resolution=like.info.get("dpi"),
            resolutionunit="INCH" if like.info.get("dpi") else None,
        )
        return
    img = Image.fromarray(pixels)
    kwargs = {k: v for k, v in like.info.items() if v}
    fmt = like.format or "PNG"
    if fmt == "JPEG":
        kwargs["quality"] = 95
    img.save(path, fmt, **kwargs)


def read_mask(source: Path | bytes) -> np.ndarray:
    """A curator's mask file as [H, W] uint8 (white = damaged): grey, or colour (its brightest channel), or
    the alpha of an RGBA file where its colour is empty (a layer painted over a transparent one)."""
    with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as img:
        arr = np.asarray(img.convert("RGBA") if img.mode in ("RGBA", "LA", "P") else img.convert("RGB"))
    if arr.shape[2] == 4 and not arr[..., :3].any():
        return arr[..., 3]
    return arr[..., :3].max(axis=2)


def mask_levels(mask: np.ndarray) -> np.ndarray:
    """A damage mask as uint8 0..255: the engine's own (uint8) as it is, a float one (0..1) rounded."""
    if mask.dtype == np.uint8:
        return mask
    return (np.clip(mask, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask_levels(mask), "L").save(path, "PNG")


def png16(pixels: np.ndarray, dpi: tuple | None = None) -> bytes:
    """A 16-bit RGB or RGBA PNG, which Pillow cannot write: big-endian samples, no row filters
    (PNG 1.2, sections 4.1 and 11.2), with a pHYs chunk for the DPI."""
    import struct
    import zlib

    h, w, c = pixels.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter byte 0 per row
    header = struct.pack(">IIBBBBB", w, h, 16, 6 if c == 4 else 2, 0, 0, 0)
    parts = [b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header)]
    if dpi:
        parts.append(chunk(b"pHYs", struct.pack(">IIB", round(dpi[0] / 0.0254), round(dpi[1] / 0.0254), 1)))
    parts += [chunk(b"IDAT", zlib.compress(raw, 6)), chunk(b"IEND", b"")]
    return b"".join(parts)
