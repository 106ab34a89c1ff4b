"""Where the web catalogue's images come from. The app never takes a path or a URI from a request:
routes name catalogue rows by id, and the app asks a ``MediaSource`` for the URIs those rows
record. The command that serves the catalogue supplies the source (``flows.media``), which
reads only from the configured stores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from archive_db.models import Derivative, Item


class MediaMissing(Exception):
    """The catalogue names a file the stores do not have (or will not give)."""


@dataclass(frozen=True)
class Cut:
    """One IIIF image request, checked (``web.iiif``): a region of the full image, the output size,
    then a mirror, a turn (a multiple of 90), a quality and a format."""

    x: int
    y: int
    w: int
    h: int
    out_w: int
    out_h: int
    mirror: bool = False
    turn: int = 0
    quality: str = "default"
    format: str = "jpg"


class Pyramid(Protocol):
    width: int
    height: int

    def scale_factors(self) -> list[int]: ...

    def render(self, cut: Cut) -> bytes: ...


class MediaSource(Protocol):
    def thumbnail(self, item: Item) -> bytes: ...

    def preview(self, item: Item, px: int) -> bytes:
        """The master as a JPEG whose long side is at most ``px`` (browsers cannot show TIFFs)."""

    def derivative_preview(self, derivative: Derivative) -> bytes:
        """The version's JPEG access copy."""

    def master(self, item: Item) -> tuple[bytes, str]:
        """The master's bytes, as scanned, and their media type."""

    def derivative_file(self, derivative: Derivative) -> tuple[bytes, str]: ...

    def derivative_sidecar(self, derivative: Derivative) -> tuple[bytes, str]:
        """The version's metadata.json sidecar."""

    def derivative_mask(self, derivative: Derivative) -> bytes:
        """The damage mask PNG the version was written with (listed in its sidecar), checked."""

    def pyramid(self, row: Item | Derivative, orientation: int | None) -> Pyramid:
        """The tiled pyramid of a master or a version, upright, made on first use."""


MEDIA_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".webp": "image/webp",
    ".json": "application/json",
}


def media_type(name: str) -> str:
    dot = name.rfind(".")
    return (
        MEDIA_TYPES.get(name[dot:].lower(), "application/octet-stream")
        if dot >= 0
        else "application/octet-stream"
    )


class MaskRefused(Exception):
    """An uploaded mask the catalogue cannot take (not an image, not the master's size): a 400."""


class MaskStore(Protocol):
    """Where a curator's corrected damage mask goes (``flows.media.StoreMasks``): recorded as the
    item's current mask, an immutable, versioned derivative, with an event under ``user``."""

    def store(self, item: Item, data: bytes, source: str, user: str) -> Derivative:
        """Raises ``MaskRefused`` with a message for the curator."""
