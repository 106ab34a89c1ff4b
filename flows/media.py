"""The web catalogue's images, read from the configured stores: thumbnails and derivatives from
the output store, masters from the source they were ingested from. Only URIs the catalogue
records are read, and every key still passes the store's own checks (no '..', no absolute
paths). Masters are shown as JPEG previews (browsers cannot show 16-bit TIFFs), kept in a small
in-memory cache. A curator's corrected damage mask, uploaded there, goes through ``StoreMasks``
into the output store, as ``archive mask`` stores one."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from archive_db.models import Derivative, Item
from archive_db.web.media import MaskRefused, MediaMissing, media_type
from flows.errors import ArchiveError, ConfigError
from flows.imaging.io import read_image
from flows.settings import Settings
from flows.storage.store import cached_store, read_all

PREVIEWS_CACHED = 64


class StoreMedia:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._previews: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.pyramids = Path(settings.web.iiif_cache or Path(tempfile.gettempdir()) / "photo-archive-iiif")
        self._opened: OrderedDict[Path, object] = OrderedDict()  # pyramids opened, newest last
        self._build_lock = threading.Lock()  # one pyramid made at a time (each decodes a whole file)

    def _read(self, uri: str, key: str) -> bytes:
        try:
            return read_all(cached_store(uri, self.settings.store, 8), key)
        except (ArchiveError, OSError) as exc:
            raise MediaMissing(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None

    def _output_key(self, uri: str) -> str:
        root = self.settings.store.output.rstrip("/") + "/"
        output = cached_store(self.settings.store.output, self.settings.store, 8)
        for prefix in (output.uri.rstrip("/") + "/", root):
            if uri.startswith(prefix):
                return uri[len(prefix) :]
        raise MediaMissing("the file is not in the configured output store")

    def thumbnail(self, item: Item) -> bytes:
        if not item.thumbnail_key:
            raise MediaMissing("the item has no thumbnail (quarantined before one was made?)")
        return self._read(self.settings.store.output, item.thumbnail_key)

    def master(self, item: Item) -> tuple[bytes, str]:
        return self._read(item.source_uri, item.source_key), media_type(item.source_key)

    def preview(self, item: Item, px: int) -> bytes:
        key = (item.sha256, px)
        with self._lock:
            if key in self._previews:
                self._previews.move_to_end(key)
                return self._previews[key]
        data, _ = self.master(item)
        jpeg = _jpeg_preview(data, px, item.orientation)
        with self._lock:
            self._previews[key] = jpeg
            while len(self._previews) > PREVIEWS_CACHED:
                self._previews.popitem(last=False)
        return jpeg

    def derivative_preview(self, derivative: Derivative) -> bytes:
        folder = self._output_key(derivative.storage_uri).rsplit("/", 1)[0]
        return self._read(self.settings.store.output, f"{folder}/access.jpg")

    def derivative_file(self, derivative: Derivative) -> tuple[bytes, str]:
        key = self._output_key(derivative.storage_uri)
        return self._read(self.settings.store.output, key), media_type(key)

    def derivative_sidecar(self, derivative: Derivative) -> tuple[bytes, str]:
        folder = self._output_key(derivative.storage_uri).rsplit("/", 1)[0]
        return self._read(self.settings.store.output, f"{folder}/metadata.json"), "application/json"

    def derivative_mask(self, derivative: Derivative) -> bytes:
        data = self._listed(derivative, "mask.png")
        if data is None:
            raise MediaMissing(f"derivative {derivative.id} was written without a mask.png")
        return data

    def _listed(self, derivative: Derivative, name: str) -> bytes | None:
        """A file written beside the version and listed in its sidecar, checked against the sha256
        recorded there; None where the sidecar lists no such file."""
        sidecar, _ = self.derivative_sidecar(derivative)
        try:
            listed = json.loads(sidecar)["derivative"]["files"].get(name)
        except (ValueError, KeyError, TypeError):
            raise MediaMissing(f"the sidecar of derivative {derivative.id} cannot be read") from None
        if listed is None:
            return None
        folder = self._output_key(derivative.storage_uri).rsplit("/", 1)[0]
        data = self._read(self.settings.store.output, f"{folder}/{name}")
        if hashlib.sha256(data).hexdigest() != listed["sha256"]:
            raise MediaMissing(f"the {name} of derivative {derivative.id} does not match its sidecar")
        return data

    def _recorded_pyramid(self, derivative: Derivative, path: Path) -> bool:
        """Copy the pyramid written with a version (listed in its sidecar) into the cache, checked
        against its recorded sha256; False if the version has none (older versions, and a curator's
        mask, which has no sidecar: its pyramid is made from the mask itself)."""
        from archive_db.derivatives import MASK_KIND
        from flows.imaging.pyramid import save

        data = None if derivative.kind == MASK_KIND else self._listed(derivative, "pyramid.tif")
        if data is None:
            return False
        save(path, lambda tmp: Path(tmp).write_bytes(data))
        return True

    def pyramid(self, row: Item | Derivative, orientation: int | None):
        """The row's file as a tiled pyramid in the local cache, made from the store on first use
        (by one thread; others wait for it). Keyed by the file's sha256: a file and its pyramid
        never change, and the same bytes anywhere share one."""
        from flows.imaging.pyramid import Pyramid, build

        path = self.pyramids / f"{row.sha256}-o{orientation or 1}.tif"
        with self._lock:  # a viewer asks for dozens of tiles at once: the opened pyramid is kept
            if path in self._opened:
                self._opened.move_to_end(path)
                return self._opened[path]
        with self._build_lock:
            if not path.exists() and not (isinstance(row, Derivative) and self._recorded_pyramid(row, path)):
                data, _ = self.master(row) if isinstance(row, Item) else self.derivative_file(row)
                try:
                    build(data, orientation, path)
                except Exception as exc:  # libvips could not read it: like a missing file
                    raise MediaMissing(f"no pyramid can be made: {str(exc).splitlines()[0][:200]}") from None
        pyramid = Pyramid(path)
        with self._lock:
            self._opened[path] = pyramid
            while len(self._opened) > PREVIEWS_CACHED:
                self._opened.popitem(last=False)
        return pyramid


# EXIF orientation -> the turn that shows the picture upright (the access copies keep the tag,
# which browsers obey, so the preview of the master must be turned the same way).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _jpeg_preview(data: bytes, px: int, orientation: int | None = None) -> bytes:
    """Any master the pipeline reads, as an upright 8-bit JPEG no larger than ``px``."""
    try:
        loaded = read_image(data)
    except Exception as exc:
        raise MediaMissing(f"the master cannot be decoded: {type(exc).__name__}") from None
    pixels = np.asarray(loaded.pixels)
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    img = Image.fromarray(pixels)
    img = img.convert("RGB") if img.mode not in ("RGB", "L") else img
    if orientation in _UPRIGHT:
        img = img.transpose(_UPRIGHT[orientation])
    img.thumbnail((px, px), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


class StoreMasks:
    """The web catalogue's ``MaskStore``: ``flows.masks.store_mask_bytes`` for an uploaded mask."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def store(self, item: Item, data: bytes, source: str, user: str) -> Derivative:
        from flows.masks import store_mask_bytes

        try:
            return store_mask_bytes(self.settings, str(item.id), data, source, user)
        except ConfigError as exc:
            raise MaskRefused(str(exc)) from None
