"""Curators' corrected damage masks: stored for an item as an immutable, versioned derivative of
kind ``mask`` (white = damaged), used instead of the detector by the next restore of that item
with a staged model, whose recipe then names the mask's sha256."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from archive_db import ledger
from archive_db.derivatives import MASK_KIND, derivative_by_recipe, make_current, next_version, version_lock
from archive_db.models import Derivative, Item
from archive_db.queries import find_item
from flows.db import ensure_schema, sessions_for
from flows.errors import ConfigError, NotFound
from flows.settings import Settings
from flows.storage.layout import version_prefix
from flows.storage.store import open_store
from flows.versions import code_version

EVENT = "damage mask"


def store_mask(settings: Settings, item_ref: str, path: Path, user: str | None = None) -> Derivative:
    """Record ``path`` (any image the item's size; its brightest channel, white = damaged) as the
    item's current mask; the same mask again records nothing new."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return store_mask_bytes(settings, item_ref, data, path.name, user)


def store_mask_bytes(
    settings: Settings, item_ref: str, data: bytes, source: str, user: str | None = None
) -> Derivative:
    """``store_mask`` for a mask's bytes (an upload through the web catalogue), named ``source``."""
    import hashlib

    from PIL import Image, UnidentifiedImageError

    from flows.imaging.io import read_mask

    try:
        drawn = read_mask(data)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ConfigError(f"{source}: not a readable image ({exc})") from None
    binary = np.where(drawn > 127, 255, 0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(binary, "L").save(buffer, "PNG", optimize=True)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    ensure_schema(settings.db.url, create=False)
    output = open_store(settings.store.output, settings.store, create=True)
    sessions = sessions_for(settings.db.url)
    with sessions() as session:
        found = find_item(session, item_ref)
        if found is None:
            raise NotFound(f"no item matches {item_ref!r} (give an id, a sha256 prefix or COLLECTION/KEY)")
        item_id = found.id
    with sessions.begin() as session:
        version_lock(session, item_id, MASK_KIND)  # one writer of the item's masks at a time
        item = session.get(Item, item_id)
        if item.status == "quarantined" or not item.width:
            raise ConfigError(f"item {item.id} is quarantined ({item.quarantine_reason}): nothing to mask")
        # Drawn over the master's pixels as stored (before any EXIF rotation, as restoration sees them).
        stored = (item.height, item.width) if (item.orientation or 1) >= 5 else (item.width, item.height)
        if stored != (binary.shape[1], binary.shape[0]):
            raise ConfigError(
                f"{source} is {binary.shape[1]}x{binary.shape[0]}, the item's master {stored[0]}x{stored[1]}"
            )
        same = derivative_by_recipe(session, item.id, MASK_KIND, sha)
        if same is not None:
            if not same.is_current:
                make_current(session, same)
            session.expunge(same)
            return same
        version = next_version(session, item.id, MASK_KIND)
        key = f"{version_prefix(item.collection.name, item.id, MASK_KIND, version)}/mask.png"
        output.put(key, data, "image/png")
        row = Derivative(
            item_id=item.id,
            kind=MASK_KIND,
            version=version,
            recipe_hash=sha,
            model_version_id=None,
            recipe={
                "operation": "mask",
                "source": source,
                "marked": float((binary > 0).mean()),
                "by": user,
            },
            storage_uri=f"{output.uri}/{key}",
            sha256=sha,
            size=len(data),
        )
        session.add(row)
        session.flush()
        make_current(session, row)
        agent = (
            ledger.get_or_create_agent(session, "person", user)
            if user
            else ledger.get_or_create_agent(session, "software", "archive mask", code_version())
        )
        ledger.add_event(
            session,
            EVENT,
            agent,
            "success",
            {"version": version, "key": key, "sha256": sha, "marked": row.recipe["marked"]},
            item_id=item.id,
            derivative_id=row.id,
        )
        session.flush()
        session.expunge(row)
        return row
