"""Encode, put and record one immutable version with its sidecar; safe from several threads."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from typing import Any

from archive_db import ledger
from archive_db.derivatives import (
    Recipe,
    current_version_id,
    derivative_by_recipe,
    make_current,
    next_version,
    version_lock,
)
from archive_db.disclosure import disclosure_of
from archive_db.engine import write_first
from archive_db.models import Agent, Derivative, ModelVersion
from flows.db import sessions_for
from flows.derive.inputs import WorkItem
from flows.derive.operations import operation
from flows.imaging.encode import (
    Encoded,
    History,
    access_copy,
    mask_png,
    preservation,
    pyramid,
    sidecar,
)
from flows.imaging.io import Loaded, scaled_dpi
from flows.settings import Settings
from flows.storage.layout import version_prefix
from flows.storage.store import ObjectStore
from flows.versions import code_version, software_versions

AGENT = "photo-archive"
SEED = 0  # every operation runs seeded; the sidecar records it


def encode_all(jobs: list[Callable[[], Encoded]], pool: Executor | None = None) -> list[Encoded]:
    """Run encoding jobs, in ``pool`` at once where there is one; the files are the same."""
    if pool is None:
        return [job() for job in jobs]
    return [f.result() for f in [pool.submit(job) for job in jobs]]


def execution_of(engine) -> dict[str, Any]:
    """How an engine ran (provenance, not part of the recipe): device, dtype, and tiles or bands."""
    config = getattr(engine, "config", None)
    out = {"device": str(engine.device), "dtype": str(engine.dtype).removeprefix("torch.")}
    if config is not None:
        out |= {"tile": config.tile, "overlap": config.overlap, "batch_tiles": engine.batch_tiles}
    else:
        out |= {"band": engine.band}
    return out


class Writer:
    """Encodes, writes and records one item's version; safe to call from several threads."""

    def __init__(
        self,
        settings: Settings,
        output: ObjectStore,
        rec: Recipe,
        row: ModelVersion,
        card: dict,
        engine,
        run_id,
        encoder: Executor | None = None,
    ):
        """``encoder``: a pool the files of a version are encoded in at once (zlib and libjpeg
        release the GIL); without one they are encoded in turn, to the same bytes."""
        from flows.model_versions import agent_of

        self.settings, self.output, self.rec, self.run_id, self.encoder = (
            settings,
            output,
            rec,
            run_id,
            encoder,
        )
        self.op = operation(rec.operation)
        self.sessions = sessions_for(settings.db.url)
        self.model = {
            "name": row.name,
            "version": row.version,
            "weights_sha256": row.weights_sha256,
            "architecture": row.architecture,
            "model_version_id": row.id,
        }
        self.execution = execution_of(engine)
        self.disclosure = disclosure_of(row.task, row.architecture)
        self.software = software_versions() | {"torch": __import__("torch").__version__}
        self.tool = f"{AGENT} {code_version()}"
        self.agent_id = agent_of(settings, row)

    def _event(
        self, session, outcome: str, item_id: int, detail: dict, derivative_id: int | None = None
    ) -> None:
        ledger.add_event(
            session,
            self.op.event,
            session.get(Agent, self.agent_id),
            outcome,
            detail,
            item_id=item_id,
            derivative_id=derivative_id,
            run_id=self.run_id,
        )

    def _hash(self, w: WorkItem) -> str:
        """The version's recipe hash: the recipe's, or for a style, the recipe's with the parent,
        or restored with a curator's mask, the recipe's with the mask."""
        return w.recipe_hash or self.rec.hash

    def fail(self, w: WorkItem, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        with self.sessions.begin() as session:
            self._event(
                write_first(session), "failure", w.id, {"reason": reason, "recipe_hash": self._hash(w)}
            )

    def write(self, w: WorkItem, loaded: Loaded, result, seconds: float) -> str:
        """Write and record one item's version: "restored", "skipped" (another run made the same
        recipe's version meanwhile) or "failed" (with its event)."""
        try:
            return self._write(w, loaded, result, seconds)
        except Exception as exc:
            self.fail(w, exc)
            return "failed"

    def _write(self, w: WorkItem, loaded: Loaded, result, seconds: float) -> str:
        started = datetime.now(UTC)
        when = started.isoformat(timespec="seconds").replace("+00:00", "Z")
        made = self.op.made(self.rec, w)
        history = History(
            w.key, w.sha256, self._hash(w), self.tool, made, when, w.orientation, self.disclosure.uri
        )
        icc, dpi = (
            loaded.info.get("icc_profile"),
            scaled_dpi(loaded.info.get("dpi"), self.rec.params.get("scale", 1)),
        )
        if result.image.ndim == 3 and result.image.shape[2] >= 3 and loaded.mode in ("L", "I;16"):
            icc = None  # a grey master styled in colour: its grey ICC profile would not fit
        stem = w.key.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "image"
        jobs = [
            partial(preservation, result.image, stem, icc, dpi, history),
            partial(access_copy, result.image, icc, dpi, history, self.settings.restore.access_px),
        ]
        if result.mask is not None:
            jobs.append(partial(mask_png, result.mask, history))
        jobs.append(partial(pyramid, result.image, w.orientation, history))  # for IIIF deep zoom
        files = [f for f in encode_all(jobs, self.encoder) if f is not None]
        # One writer at a time per item and kind, across processes, from choosing the version to
        # recording it: a concurrent run of the same work waits, then finds the version made.
        with self.sessions.begin() as session:
            version_lock(session, w.id, self.rec.kind)
            made_meanwhile = derivative_by_recipe(session, w.id, self.rec.kind, self._hash(w))
            if made_meanwhile is not None:
                self._event(
                    session,
                    "warning",
                    w.id,
                    {
                        "reason": f"skipped: version {made_meanwhile.version} was made meanwhile "
                        f"by run {made_meanwhile.run_id}",
                        "recipe_hash": self._hash(w),
                    },
                    made_meanwhile.id,
                )
                return "skipped"
            version = next_version(session, w.id, self.rec.kind)
            prefix = version_prefix(w.collection, w.id, self.rec.kind, version)
            for leftover in list(self.output.list(prefix + "/")):  # a killed attempt's, never recorded
                self.output.delete(leftover.key)
            meta = self._sidecar(w, loaded, version, prefix, files, started, seconds)
            if result.derived:  # per-image values the recipe derived (a style's print curve)
                meta["derived"] = result.derived
            for f in [*files, sidecar(meta)]:  # the sidecar last: its presence means the version is whole
                self.output.put(f"{prefix}/{f.name}", f.data, f.content_type)
            image = files[0]
            row = Derivative(
                item_id=w.id,
                kind=self.rec.kind,
                version=version,
                recipe_hash=self._hash(w),
                parent_id=w.input.parent_id if w.input else None,
                recipe=meta["recipe"] | {"execution": self.execution},
                model_version_id=self.model["model_version_id"],
                storage_uri=f"{self.output.uri}/{prefix}/{image.name}",
                sha256=image.sha256,
                size=len(image.data),
                run_id=self.run_id,
                is_current=False,
            )
            session.add(row)
            session.flush()
            if (
                current_version_id(session, w.id, self.rec.kind) is None
            ):  # the first version is current at once; later ones wait for promotion
                make_current(session, row)
            self._event(
                session,
                "success",
                w.id,
                {
                    "version": version,
                    "key": f"{prefix}/{image.name}",
                    "sha256": image.sha256,
                    "recipe_hash": self._hash(w),
                    "parent_id": row.parent_id,
                },
                row.id,
            )
        return "restored"

    def _sidecar(
        self,
        w: WorkItem,
        loaded: Loaded,
        version: int,
        prefix: str,
        files: list[Encoded],
        started: datetime,
        seconds: float,
    ) -> dict[str, Any]:
        parent = w.input is not None and w.input.parent_id is not None
        read = {"format": loaded.format, "mode": loaded.mode}
        return {
            "schema": "photo-archive/derivative/1",
            "master": {
                "item_id": w.id,
                "collection": w.collection,
                "source_uri": w.source_uri,
                "key": w.key,
                "sha256": w.sha256,
            }
            | ({} if parent else read),
            "parent": {
                "derivative_id": w.input.parent_id,
                "kind": self.rec.params.get("from"),
                "uri": w.input.uri,
                "key": w.input.key,
                "sha256": w.input.sha256,
            }
            | read
            if parent
            else None,
            "derivative": {
                "kind": self.rec.kind,
                "version": version,
                "prefix": prefix,
                "files": {
                    f.name: {"sha256": f.sha256, "size": len(f.data), "media_type": f.content_type}
                    for f in files
                },
            },
            "recipe": asdict(self.rec)
            | {"hash": self._hash(w), "collection_recipe_hash": self.rec.hash}
            | (
                {
                    "supplied_mask": {"derivative_id": w.mask.parent_id, "sha256": w.mask.sha256}
                    if w.mask
                    else None
                }
                if self.op.takes_masks
                else {}
            ),
            "model": self.model,
            "disclosure": self.disclosure.as_dict(),  # also in each file's XMP (DigitalSourceType)
            "parameters": self.rec.params,
            "seed": SEED,
            "execution": self.execution | {"model_seconds": round(seconds, 4)},
            "software": self.software,
            "code_version": code_version(),
            "run_id": self.run_id,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
        }
