"""Validate a scan by decoding it fully, extract its technical metadata, make its thumbnail."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from flows.imaging.exif import capture_date, make_model, read_exif

MAX_PAGES_LISTED = 1000
MODE_BITS = {"1": 1, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


class Rejected(Exception):
    """The file cannot be catalogued as an image; the message is the quarantine reason."""


@dataclass
class Inspection:
    meta: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = None
    reason: str | None = None  # set when the file is quarantined

    @property
    def ok(self) -> bool:
        return self.reason is None


def inspect_image(fh: IO[bytes], size: int, max_pixels: int, thumb_px: int) -> Inspection:
    """Decode ``fh`` fully under ``max_pixels`` per frame; quarantine reasons are specific."""
    if size == 0:
        return Inspection(reason="empty file (0 bytes)")
    try:
        meta, img = _decode(fh, max_pixels, thumb_px)
    except Rejected as exc:
        return Inspection(reason=str(exc))
    fh.seek(0)
    meta |= _exif_fields(fh, meta["technical"])
    if img.info.get("exif") and not meta["exif"] and "exif_error" not in meta["technical"]:
        meta["technical"]["exif_error"] = (
            f"EXIF segment of {len(img.info['exif'])} bytes holds no readable tags"
        )
    if meta["format"] == "PNG":
        meta |= _png_depth(fh)
    try:
        thumb = make_thumbnail(img, thumb_px)
    except Exception as exc:  # a decodable image that cannot be shown is still catalogued
        meta["technical"]["thumbnail_error"] = f"{type(exc).__name__}: {exc}"
        thumb = None
    return Inspection(meta=meta, thumbnail=thumb)


def _decode(fh: IO[bytes], max_pixels: int, thumb_px: int) -> tuple[dict[str, Any], Image.Image]:
    # The pixel limit is checked here, per frame, from the header before any decoding;
    # Pillow's own process-wide limit is lifted so that it does not pre-empt ours.
    Image.MAX_IMAGE_PIXELS = None
    try:
        img = Image.open(fh)
    except UnidentifiedImageError:
        raise Rejected("not a recognised image format (Pillow cannot identify it)") from None
    except Exception as exc:
        raise Rejected(f"unreadable image header: {type(exc).__name__}: {exc}") from None
    try:
        n_frames = getattr(img, "n_frames", 1)
    except Exception as exc:  # counting frames walks every page header
        raise Rejected(f"cannot read the list of frames: {type(exc).__name__}: {exc}") from None
    pages, first = [], None
    for index in range(n_frames):
        try:
            img.seek(index)
            w, h = img.size
            if w * h > max_pixels:
                raise Rejected(
                    f"decompression bomb: frame {index + 1} declares {w}x{h} = {w * h:,} pixels, "
                    f"over the limit of {max_pixels:,}; not decoded"
                )
            if img.format == "JPEG" and n_frames == 1:
                # libjpeg still entropy-decodes every block (so truncation and corrupt data are
                # caught) but scales the inverse DCT down to what the thumbnail needs.
                scale = thumb_px / max(w, h)
                img.draft(img.mode, (max(1, int(w * scale)), max(1, int(h * scale))))
            img.load()
        except Rejected:
            raise
        except Exception as exc:
            where = f" (frame {index + 1} of {n_frames})" if n_frames > 1 else ""
            raise Rejected(f"decoding failed{where}: {type(exc).__name__}: {exc}") from None
        if index < MAX_PAGES_LISTED:
            pages.append({"index": index, "width": w, "height": h, "mode": img.mode})
        if first is None:
            first = img.copy() if n_frames > 1 else img
    if n_frames > 1:
        img.seek(0)
    return _basic_fields(img, first, n_frames, pages), first


def _basic_fields(img: Image.Image, first: Image.Image, n_frames: int, pages: list) -> dict[str, Any]:
    orientation = _orientation(img)
    w, h = pages[0]["width"], pages[0]["height"]  # as declared: a JPEG was decoded at reduced scale
    technical: dict[str, Any] = {"stored_size": [w, h], "frames": n_frames}
    if orientation in ROTATED:
        w, h = h, w
    if n_frames > 1:
        technical["pages"] = pages
        technical["animated"] = bool(getattr(img, "is_animated", False))
        technical["page_choice"] = (
            f"frame 1 of {n_frames} describes the item; every frame was decoded and is listed"
        )
    if "transparency" in img.info or first.mode in ("RGBA", "LA", "PA"):
        technical["transparency"] = True
    dpi_x, dpi_y = _dpi(img.info.get("dpi"))
    icc_desc = _icc_description(img.info.get("icc_profile"), technical)
    return {
        "format": img.format,
        "width": w,
        "height": h,
        "mode": first.mode,
        "bit_depth": (img.format == "TIFF" and tiff_bits(img)) or MODE_BITS.get(first.mode, 8),
        "dpi_x": dpi_x,
        "dpi_y": dpi_y,
        "icc_description": icc_desc,
        "orientation": orientation,
        "page_count": n_frames,
        "technical": technical,
    }


def _orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(0x0112)
    except Exception:
        return None
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def _dpi(dpi: Any) -> tuple[float | None, float | None]:
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        return None, None
    # Pillow reports 1 dpi when a TIFF's resolution has no unit; no scan is that coarse.
    ok = lambda v: round(v, 3) if 1 < v < 1e6 else None  # noqa: E731
    return ok(x), ok(y)


def _icc_description(icc: bytes | None, technical: dict[str, Any]) -> str | None:
    if not icc:
        return None
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except Exception as exc:
        technical["icc_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return None
    return desc.strip() or None


def _exif_fields(fh: IO[bytes], technical: dict[str, Any]) -> dict[str, Any]:
    exif, error = read_exif(fh)
    if error:
        technical["exif_error"] = error
    make, model = make_model(exif)
    return {"exif": exif or None, "capture_date": capture_date(exif), "make": make, "model": model}


def tiff_bits(img: Image.Image) -> int | None:
    """Bits per sample a TIFF declares (Pillow decodes 16-bit colour as 8-bit), or None."""
    bits = getattr(img, "tag_v2", {}).get(258)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return max(bits) if bits and all(isinstance(b, int) for b in bits) else None


def _png_depth(fh: IO[bytes]) -> dict[str, Any]:
    """Bit depth from a PNG's IHDR chunk (Pillow decodes 16-bit colour PNGs as 8-bit)."""
    fh.seek(0)
    head = fh.read(32)
    return {"bit_depth": head[24]} if len(head) >= 25 and head[12:16] == b"IHDR" else {}


def make_thumbnail(img: Image.Image, px: int) -> bytes:
    """A small sRGB JPEG access copy, oriented as the EXIF says, transparency flattened on white."""
    img = ImageOps.exif_transpose(img)
    img = to_rgb8(img)
    # Bicubic (antialiased) is a third cheaper than Lanczos and indistinguishable at this size.
    img.thumbnail((px, px), Image.Resampling.BICUBIC, reducing_gap=2.0)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def to_rgb8(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "CMYK" and img.info.get("icc_profile"):
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(img.info["icc_profile"]))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except Exception:
            pass  # fall back to Pillow's naive conversion below
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        canvas = Image.new("RGB", img.size, (255, 255, 255))
        canvas.paste(img, mask=img.getchannel("A"))
        return canvas
    return img.convert("RGB")
