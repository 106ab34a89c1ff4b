"""The ``restore-batch`` flow, the deployment entry point every operation's batches run as: fetch
and decode in threads while the model runs, then encode, write and record each item on its own (a
failed item does not stop the batch)."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from prefect import flow

from archive_db import queries
from archive_db.derivatives import Recipe
from flows.db import sessions_for
from flows.derive.inputs import WorkItem
from flows.derive.operations import Operation, operation, takes_masks
from flows.derive.processors import processor
from flows.derive.writer import SEED, Writer
from flows.errors import ArchiveError, ConfigError
from flows.imaging.io import Loaded, read_image
from flows.model_versions import resolve
from flows.settings import Settings
from flows.storage.store import cached_store, open_store, read_all


class FixityError(ArchiveError):
    """A master's bytes no longer match the sha256 the catalogue recorded at ingest."""


@flow(name="restore-batch", validate_parameters=False)
def restore_batch(
    item_ids: list[int], recipe: dict[str, Any], run_id: int | None = None, settings: Settings | None = None
) -> dict[str, int]:
    """Restore a batch of items with one recipe: fetch and decode in threads while the model runs,
    then encode, write and record each item on its own; a failed item does not stop the batch."""
    import torch

    from restoration.decode import gpu_jpeg_available

    settings = settings or Settings()
    rec = Recipe(**recipe)
    op = operation(rec.operation)
    output = open_store(settings.store.output, settings.store, create=True)  # once per batch
    sessions = sessions_for(settings.db.url)
    with sessions() as session:
        row = resolve(session, rec.model)
        if row.weights_sha256 != rec.weights_sha256:
            raise ConfigError(
                f"{rec.model} has weights {row.weights_sha256[:12]}…, the recipe asks for "
                f"{rec.weights_sha256[:12]}…"
            )
        work = _work_of(session, item_ids, rec, output.uri, op, takes_masks(row))
    engine, card = processor(settings, row, rec, op.build)
    torch.manual_seed(SEED)
    gpu = engine.device if gpu_jpeg_available(engine.device) else None
    counts = {"restored": 0, "failed": 0, "skipped": len(item_ids) - len(work)}
    threads = settings.restore.threads
    # Items are written in threads, and each item's files are encoded at once in a pool as large
    # as the worker's cores. On a GPU that overlaps the model. On a CPU it would only take cores
    # from the model (measured: the model ran 39% slower beside it), so a group's writes finish
    # before the next group starts.
    overlap = engine.device.type != "cpu"
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="decode") as decode,
        ThreadPoolExecutor(threads, thread_name_prefix="write") as write,
        ThreadPoolExecutor(worker_cores(), thread_name_prefix="encode") as encoder,
    ):
        writer = Writer(settings, output, rec, row, card, engine, run_id, encoder)
        for w in work:
            w.loaded = decode.submit(_fetch_decode, settings, w, gpu)
        pending: list[Future] = []
        for group in _groups(work):
            ready: list[tuple[WorkItem, Loaded]] = []
            for w in group:
                try:
                    ready.append((w, _fits(settings, rec, w.loaded.result())))
                except Exception as exc:
                    writer.fail(w, exc)
                    counts["failed"] += 1
            if not ready:
                continue
            started = time.perf_counter()
            try:
                masks = [
                    w.mask_pixels for w, _ in ready
                ]  # only a restore's items have any (styles take none)
                supplied = {"masks": masks} if any(m is not None for m in masks) else {}
                results = engine.process([loaded.pixels for _, loaded in ready], **supplied)
            except Exception as exc:  # the model failed on this group: each item is told why
                for w, _ in ready:
                    writer.fail(w, exc)
                counts["failed"] += len(ready)
                continue
            seconds = (time.perf_counter() - started) / len(ready)
            pending += [
                write.submit(writer.write, w, loaded, result, seconds)
                for (w, loaded), result in zip(ready, results, strict=True)
            ]
            if not overlap:
                for f in pending:
                    counts[f.result()] += 1
                pending = []
        for f in pending:
            counts[f.result()] += 1
    return counts


def _fits(settings: Settings, rec: Recipe, loaded: Loaded) -> Loaded:
    """An enlargement over the archive's pixel limit is refused, item by item: no reader of the
    archive (previews, IIIF tiles, restoration) would open it."""
    scale = rec.params.get("scale", 1)
    h, w = loaded.pixels.shape[:2]
    if scale > 1 and h * w * scale * scale > settings.ingest.max_pixels:
        raise ValueError(
            f"an x{scale} enlargement of {w}x{h} would be {h * w * scale * scale:,} pixels, over the "
            f"archive's pixel limit of {settings.ingest.max_pixels:,} (ARCHIVE_INGEST__MAX_PIXELS)"
        )
    return loaded


def worker_cores() -> int:
    """The cores this process may run on (a container's or a scheduler's share, not the machine's)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _work_of(
    session, item_ids: list[int], rec: Recipe, output_uri: str, op: Operation, with_masks: bool = False
) -> list[WorkItem]:
    """The batch's items that still lack the recipe's version (re-running a batch is a no-op), each
    with what the operation makes it from or with."""
    todo = op.todo(session, item_ids, rec, output_uri, with_masks)
    rows = queries.masters_to_read(session, list(todo))
    return [WorkItem(*r, input=todo[r[0]][0], mask=todo[r[0]][1]) for r in rows]


def _groups(work: list[WorkItem], size: int = 8):
    """Consecutive items in groups the engine restores together (tiles of equal size share batches)."""
    for start in range(0, len(work), size):
        yield work[start : start + size]


def _fetch_decode(settings: Settings, w: WorkItem, gpu) -> Loaded:
    parent = w.input is not None and w.input.parent_id is not None
    uri, key, sha = (w.input.uri, w.input.key, w.input.sha256) if parent else (w.source_uri, w.key, w.sha256)
    data = read_all(cached_store(uri, settings.store, settings.restore.threads), key)
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha:
        what = (
            f"derivative {w.input.parent_id} changed since it was written"
            if parent
            else "master changed since ingest"
        )
        raise FixityError(f"{what}: sha256 {digest[:16]}… is not the catalogued {sha[:16]}…")
    if w.mask is not None:
        from flows.imaging.io import read_mask

        drawn = read_all(cached_store(w.mask.uri, settings.store, settings.restore.threads), w.mask.key)
        if hashlib.sha256(drawn).hexdigest() != w.mask.sha256:
            raise FixityError(f"mask {w.mask.parent_id} changed since it was recorded")
        w.mask_pixels = read_mask(drawn)
    return read_image(data, gpu, settings.ingest.max_pixels)
