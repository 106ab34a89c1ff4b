"""EXIF via exifread, normalised to JSON-safe values that cannot blow up the catalogue."""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache
from typing import IO, Any

import exifread

MAX_VALUE_CHARS = 1024
MAX_LIST = 64
SKIP_PREFIXES = ("Thumbnail", "JPEGThumbnail", "MakerNote")
DATE_TAGS = ("EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime")
_DATE = re.compile(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")


def read_exif(fh: IO[bytes]) -> tuple[dict[str, Any], str | None]:
    """Return (tags, error). Malformed EXIF never raises: the error is returned instead."""
    _quiet_exifread()
    try:
        tags = exifread.process_file(fh, details=False, strict=False)
    except Exception as exc:  # exifread raises many kinds on malformed input
        return {}, f"EXIF unreadable: {type(exc).__name__}: {exc}"[:300]
    out: dict[str, Any] = {}
    for name, tag in tags.items():
        if name.startswith(SKIP_PREFIXES) or name.split(" ", 1)[-1].startswith(SKIP_PREFIXES):
            continue
        out[_clean_text(name, 128)] = _normalise(tag)
    return out, None


@lru_cache(maxsize=1)
def _quiet_exifread() -> None:
    # exifread logs a warning for every file without EXIF; the absence is recorded, not logged.
    # Once only: setLevel clears every logger's cache, which is slow when done per file.
    logging.getLogger("exifread").setLevel(logging.ERROR)


def _normalise(tag: Any) -> Any:
    values = getattr(tag, "values", tag)
    printable = getattr(tag, "printable", None)
    if isinstance(values, bytes | bytearray):
        return printable if printable and len(values) <= MAX_VALUE_CHARS else f"<{len(values)} bytes>"
    if isinstance(values, str):
        return _clean_text(values, MAX_VALUE_CHARS)
    if isinstance(values, list):
        if len(values) > MAX_LIST:
            return f"<{len(values)} values>"
        items = [_scalar(v) for v in values]
        return items[0] if len(items) == 1 else items
    return _scalar(values)


def _scalar(v: Any) -> Any:
    if isinstance(v, bool | int | str):
        return _clean_text(v, MAX_VALUE_CHARS) if isinstance(v, str) else v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else None
    num, den = getattr(v, "numerator", None), getattr(v, "denominator", None)
    if num is not None and den is not None:
        return float(Fraction(num, den)) if den else None
    return _clean_text(str(v), MAX_VALUE_CHARS)


def _clean_text(s: str, limit: int) -> str:
    s = "".join(ch for ch in s if ch.isprintable() or ch in "\t\n").strip().strip("\x00")
    return s if len(s) <= limit else s[:limit] + f"… <{len(s) - limit} more chars>"


def capture_date(exif: dict[str, Any]) -> str | None:
    """ISO-8601 capture time (local, as recorded) from the first usable EXIF date tag."""
    for tag in DATE_TAGS:
        m = _DATE.match(str(exif.get(tag, "")))
        if m and m.group(1) != "0000":
            y, mo, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
            if 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61:
                return f"{y:04d}-{mo:02d}-{d:02d}" + (f"T{h:02d}:{mi:02d}:{s:02d}" if m.group(4) else "")
    return None


def make_model(exif: dict[str, Any]) -> tuple[str | None, str | None]:
    make, model = exif.get("Image Make"), exif.get("Image Model")
    return (str(make)[:200] if make else None), (str(model)[:200] if model else None)
