"""One cache of loaded processors per process: a model version is loaded (and its weights' digest
checked) once, then every batch for the same recipe, device and tile reuses it."""

from __future__ import annotations

import threading
from typing import Any

from archive_db.derivatives import Recipe
from archive_db.models import ModelVersion
from flows.settings import Settings

_loaded: dict[tuple, tuple[Any, dict]] = {}
_lock = threading.Lock()


def processor(settings: Settings, row: ModelVersion, recipe: Recipe, build) -> tuple[Any, dict]:
    """The processor ``build(settings, row, recipe, device)`` makes (and the model's card), once per
    model version, recipe, device, dtype and tile in this process."""
    from restoration.engine import resolve_device

    device = resolve_device(settings.device.device)
    key = (row.id, row.weights_sha256, recipe.hash, str(device), settings.device.dtype, settings.restore.tile)
    with _lock:
        if key not in _loaded:
            _loaded[key] = build(settings, row, recipe, device)
        return _loaded[key]
