"""Restoring a collection: select the items a recipe has not made yet, batch them by pixel budget,
run each batch in-process or as a run of the ``restore-batch`` deployment on a work pool, and write
every result as a new immutable version with its provenance (see flows/imaging/encode.py).

The catalogue is the record of what happened: the dispatcher counts a batch's outcome from the
derivative rows and failure events its worker committed, so a batch run on a remote worker needs
no result storage, and a worker that died is seen as the items it left undone.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from archive_db import ledger, queries
from archive_db.derivatives import (
    Recipe,
    current_masks,
    current_version_id,
    derivative_by_recipe,
    items_needing,
    made_hashes,
    make_current,
    masked_hash,
    next_version,
    version_lock,
)
from archive_db.engine import write_first
from archive_db.models import Agent, Derivative, ModelVersion
from flows.db import ensure_schema, sessions_for, writing
from flows.errors import ArchiveError, ConfigError, NotFound
from flows.imaging.encode import Encoded, History, access_copy, mask_png, preservation, sidecar
from flows.imaging.io import Loaded, read_image
from flows.model_versions import ensure_shipped, load, resolve
from flows.progress import reporter
from flows.report import artifact_key
from flows.settings import Settings
from flows.storage.store import ObjectStore, cached_store, open_store, read_all
from flows.stylize import Input, inputs_for, stylist
from flows.versions import code_version, software_versions

KIND = "restored"
EVENT_TYPES = {"restore": "restoration", "style": "style transfer"}
SEED = 0
AGENT = "photo-archive"


class FixityError(ArchiveError):
    """A master's bytes no longer match the sha256 the catalogue recorded at ingest."""


# -- the dispatcher ------------------------------------------------------------------------------


@dataclass
class RestoreSummary:
    collection: str
    model: str
    recipe_hash: str
    run_id: int | None = None
    selected: int = 0
    batches: int = 0
    restored: int = 0
    failed: int = 0
    not_done: int = 0  # a batch's worker ended without recording these (crashed, cancelled)
    made_elsewhere: int = 0  # skipped: a concurrent run made the same recipe's version meanwhile
    pixels: int = 0
    seconds: float = 0.0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (source key, reason)
    operation: str = "restore"  # or "style"
    without_source: int = 0  # styling: items with no current version of the source kind

    def counts(self) -> dict[str, int]:
        return {
            k: getattr(self, k)
            for k in ("selected", "batches", "restored", "failed", "not_done", "made_elsewhere", "pixels")
        }

    def headline(self) -> str:
        verb = "Styled" if self.operation == "style" else "Restored"
        if self.selected == 0:
            return (
                f"Nothing to {self.operation}: every item of '{self.collection}' already has {self.model}'s output"
                + (
                    f" ({self.without_source} without a restored version to style)."
                    if self.without_source
                    else "."
                )
            )
        return (
            f"{verb} {self.restored} of {self.selected} item(s) of '{self.collection}' with {self.model} "
            f"in {self.seconds:.1f} s ({self.failed} failed, {self.not_done} not done, "
            + (f"{self.made_elsewhere} made meanwhile by another run, " if self.made_elsewhere else "")
            + f"{self.pixels / 1e6 / max(self.seconds, 1e-9):.2f} MP/s)."
        )

    def rows(self) -> list[tuple[str, str]]:
        return [(k, f"{v:,}") for k, v in self.counts().items()] + [("seconds", f"{self.seconds:.2f}")]

    def markdown(self) -> str:
        lines = [
            f"# Restoration of `{self.collection}`",
            "",
            self.headline(),
            "",
            f"Recipe `{self.recipe_hash}`.",
            "",
        ]
        lines += ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in self.rows())]
        if self.problems:
            lines += ["", "## Failed, not done or skipped", "", "| key | reason |", "|---|---|"]
            lines += [f"| `{_md(k)}` | {_md(r)} |" for k, r in self.problems[:500]]
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def plan_batches(items: list[tuple], pixel_budget: int, max_items: int) -> list[list[int]]:
    """Group (id, key, sha256, width, height) rows into batches of at most ``pixel_budget`` pixels
    and ``max_items`` images, similar sizes together (a bigger image than the budget goes alone)."""
    ordered = sorted(items, key=lambda r: ((r[3] or 1) * (r[4] or 1), r[0]))
    batches: list[list[int]] = []
    current: list[int] = []
    pixels = 0
    for row in ordered:
        px = (row[3] or 1) * (row[4] or 1)
        if current and (pixels + px > pixel_budget or len(current) >= max_items):
            batches.append(current)
            current, pixels = [], 0
        current.append(row[0])
        pixels += px
    if current:
        batches.append(current)
    return batches


@flow(name="restore-collection", validate_parameters=False)
def restore_collection(
    collection: str,
    model: str = "restore@production",
    pool: str | None = None,
    kind: str = KIND,
    settings: Settings | None = None,
) -> RestoreSummary:
    """Restore every ingested item of ``collection`` that lacks ``model``'s output; see the module."""
    settings = settings or Settings()
    coll_id, row, recipe = prepare(settings, collection, model, kind)
    with sessions_for(settings.db.url)() as session:
        todo = items_needing(session, coll_id, kind, recipe.hash, with_masks=takes_masks(row))
    return dispatch(settings, "restore", collection, coll_id, model, row, recipe, todo, pool)


def preflight(settings: Settings, in_process: bool = True) -> None:
    """What a run needs, checked before Prefect starts, so that a mistake is one line and is
    found even when nothing needs restoring: the output store opens for writing; and for a run
    in this process, the device and dtype exist here (a pool's workers check their own)."""
    from restoration.engine import check_device

    try:
        open_store(settings.store.output, settings.store, create=True)
    except OSError as exc:
        raise ConfigError(f"output store {settings.store.output}: {exc.strerror or exc}") from None
    if in_process:
        try:
            check_device(settings.device.device, settings.device.dtype)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


def takes_masks(row: ModelVersion) -> bool:
    """Whether a model version restores with a curator's mask where an item has one (a staged
    pipeline: its inpainter fills the mask instead of what the detector found)."""
    return row.task == "restore" and row.architecture == "restore_pipeline"


def prepare(settings: Settings, collection: str, model: str, kind: str) -> tuple[int, ModelVersion, Recipe]:
    """The collection's id, the model version ``model`` resolves to, and the recipe."""
    ensure_schema(settings.db.url)
    ensure_shipped(settings)
    with sessions_for(settings.db.url)() as session:
        coll = queries.collection_by_name(session, collection)
        if coll is None:
            raise NotFound(f"no collection {collection!r} in the catalogue (see `archive collections`)")
        row = resolve(session, model)
        session.expunge(row)
        return coll.id, row, recipe_for(row, kind)


def dispatch(
    settings: Settings,
    flow_name: str,
    collection: str,
    coll_id: int,
    ref: str,
    row: ModelVersion,
    recipe: Recipe,
    todo: list[tuple],
    pool: str | None,
) -> RestoreSummary:
    """Batch ``todo`` by pixel budget, run the batches in-process or on ``pool``, gather the outcome
    from the catalogue, and record the run."""
    started = time.perf_counter()
    summary = RestoreSummary(
        collection, f"{row.name}@{row.version}", recipe.hash, selected=len(todo), operation=recipe.operation
    )
    summary.run_id = _begin(settings, flow_name, coll_id, recipe, ref, pool)
    batches = plan_batches(todo, settings.restore.batch_pixels, settings.restore.batch_items)
    summary.batches = len(batches)
    progress = reporter()
    progress.start(f"{flow_name} {collection}", len(todo))
    keys = {r[0]: r[1] for r in todo}
    pixels = {r[0]: (r[3] or 0) * (r[4] or 0) for r in todo}

    def gather(ids: list[int]) -> None:
        outcome = batch_outcome(settings, summary.run_id, ids, recipe)
        summary.restored += len(outcome["restored"])
        summary.pixels += sum(pixels[i] for i in outcome["restored"])
        summary.failed += len(outcome["failed"])
        summary.made_elsewhere += len(outcome["skipped"])
        summary.problems += [
            (keys[i], reason) for i, reason in [*outcome["failed"].items(), *outcome["skipped"].items()]
        ]
        undone = [
            i
            for i in ids
            if i not in outcome["restored"] and i not in outcome["failed"] and i not in outcome["skipped"]
        ]
        summary.not_done += len(undone)
        summary.problems += [
            (keys[i], "not done: the batch's worker ended without recording it") for i in undone
        ]
        progress.advance(len(ids))

    status = "failed"
    try:
        if pool is None:
            for ids in batches:
                restore_batch(ids, asdict(recipe), summary.run_id, settings)
                gather(ids)
        else:
            _on_pool(settings, pool, batches, asdict(recipe), summary.run_id, gather)
        status = "completed" if summary.failed == summary.not_done == 0 else "partial"
    finally:
        summary.seconds = round(time.perf_counter() - started, 3)
        with writing(settings.db.url) as session:
            ledger.finish_run(session, summary.run_id, status, summary.counts(), {"seconds": summary.seconds})
    create_markdown_artifact(
        key=artifact_key(flow_name, collection), markdown=summary.markdown(), description=summary.headline()
    )
    return summary


def recipe_for(row: ModelVersion, kind: str, params: dict[str, Any] | None = None) -> Recipe:
    return Recipe(
        "restore" if row.task == "restore" else "style",
        kind,
        f"{row.name}@{row.version}",
        row.weights_sha256,
        params or {},
    )


def _begin(
    settings: Settings, flow_name: str, collection_id: int, recipe: Recipe, ref: str, pool: str | None
) -> int:
    from prefect.runtime import flow_run

    params = {
        "recipe": asdict(recipe),
        "recipe_hash": recipe.hash,
        "model_ref": ref,
        "pool": pool,
        "output": settings.store.output,
        "restore": settings.restore.model_dump(),
    }
    with writing(settings.db.url) as session:
        run = ledger.start_run(
            session, flow_name, params, code_version(), collection_id, str(flow_run.id or "")
        )
        return run.id


def _on_pool(
    settings: Settings, pool: str, batches: list[list[int]], recipe: dict, run_id: int, gather
) -> None:
    """Each batch as a run of the restore-batch deployment; at most ``batches_in_flight`` at once."""
    from prefect.deployments import run_deployment

    _check_pool(settings.restore.deployment, pool)

    def one(ids: list[int]) -> list[int]:
        run_deployment(
            settings.restore.deployment,
            parameters={"item_ids": ids, "recipe": recipe, "run_id": run_id},
            timeout=None,
            as_subflow=True,
        )
        return ids

    with ThreadPoolExecutor(settings.restore.batches_in_flight, thread_name_prefix="dispatch") as workers:
        for done in [workers.submit(one, ids) for ids in batches]:
            gather(done.result())


def _check_pool(deployment: str, pool: str) -> None:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except Exception as exc:  # ObjectNotFound, or the API is unreachable
            raise ConfigError(f"deployment {deployment!r} is not available: {exc}") from None
    if found.work_pool_name != pool:
        raise ConfigError(
            f"deployment {deployment!r} runs on work pool {found.work_pool_name!r}, not {pool!r}"
        )


def batch_outcome(settings: Settings, run_id: int, ids: list[int], recipe: Recipe) -> dict[str, Any]:
    """What this run's own events say of a batch: the items it recorded a version of, those another
    run made meanwhile (skipped, with the reason), and the reasons of its failures. Not what the
    catalogue holds: a version made by a concurrent run is not this run's success."""
    with sessions_for(settings.db.url)() as session:
        events = queries.run_events(session, run_id, EVENT_TYPES[recipe.operation], ids)
    restored = {i for i, outcome, _ in events if outcome == "success"}
    skipped = {
        i: (d or {}).get("reason", "skipped")
        for i, outcome, d in events
        if outcome == "warning" and i not in restored
    }
    failed = {
        i: (d or {}).get("reason", "failed")
        for i, outcome, d in events
        if outcome == "failure" and i not in restored and i not in skipped
    }
    return {"restored": restored, "skipped": skipped, "failed": failed}


# -- the worker ----------------------------------------------------------------------------------


_engines: dict[tuple, tuple[Any, dict]] = {}
_engines_lock = threading.Lock()


def _engine(settings: Settings, row: ModelVersion):
    """One model per process and model version, loaded (and its digest checked) once."""
    from restoration.engine import EngineConfig, Restorer, resolve_device

    device = resolve_device(settings.device.device)
    key = (row.id, row.weights_sha256, str(device), settings.device.dtype, settings.restore.tile)
    with _engines_lock:
        if key not in _engines:
            model, card, _ = load(settings, f"{row.name}@{row.version}", device=str(device))
            config = EngineConfig(
                tile=settings.restore.tile,
                overlap=min(64, settings.restore.tile // 4 - 1),
                device=str(device),
                dtype=settings.device.dtype,
            )
            _engines[key] = (Restorer(model, config), card)
        return _engines[key]


@dataclass
class _Work:
    id: int
    collection: str
    source_uri: str
    key: str
    sha256: str
    orientation: int | None
    loaded: Future | None = None
    input: Input | None = None  # a style's parent derivative (None: the master)
    mask: Input | None = None  # a curator's mask to restore with (its recipe_hash: the version's)
    mask_pixels: Any = None  # decoded with the image


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
    sessions = sessions_for(settings.db.url)
    with sessions() as session:
        row = resolve(session, rec.model)
        if row.weights_sha256 != rec.weights_sha256:
            raise ConfigError(
                f"{rec.model} has weights {row.weights_sha256[:12]}…, the recipe asks for "
                f"{rec.weights_sha256[:12]}…"
            )
        work = _work_of(session, item_ids, rec, settings, takes_masks(row))
    engine, card = _engine(settings, row) if rec.operation == "restore" else stylist(settings, row, rec)
    torch.manual_seed(SEED)
    gpu = engine.device if gpu_jpeg_available(engine.device) else None
    output = open_store(settings.store.output, settings.store, create=True)
    writer = _Writer(settings, output, rec, row, card, engine, run_id)
    counts = {"restored": 0, "failed": 0, "skipped": len(item_ids) - len(work)}
    threads = settings.restore.threads
    # On a GPU the encoding and writing overlap the model in threads. On a CPU they would only
    # take cores from the model (measured: the model ran 39% slower beside them), so they run
    # in turn with it.
    write_threads = threads if engine.device.type != "cpu" else 0
    with (
        ThreadPoolExecutor(threads, thread_name_prefix="decode") as decode,
        _Executor(write_threads, thread_name_prefix="write") as write,
    ):
        for w in work:
            w.loaded = decode.submit(_fetch_decode, settings, w, gpu)
        pending: list[Future] = []
        for group in _groups(work):
            ready: list[tuple[_Work, Loaded]] = []
            for w in group:
                try:
                    ready.append((w, w.loaded.result()))
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
        for f in pending:
            counts[f.result()] += 1
    return counts


def execution_of(engine) -> dict[str, Any]:
    """How an engine ran (provenance, not part of the recipe): device, dtype, and tiles or bands."""
    config = getattr(engine, "config", None)
    out = {"device": str(engine.device), "dtype": str(engine.dtype).removeprefix("torch.")}
    if config is not None:
        out |= {"tile": config.tile, "overlap": config.overlap, "batch_tiles": engine.batch_tiles}
    else:
        out |= {"band": engine.band}
    return out


class _Executor(ThreadPoolExecutor):
    """A thread pool, or with no threads, one that runs each call at once in the caller."""

    def __init__(self, threads: int, thread_name_prefix: str = ""):
        self.inline = threads == 0
        super().__init__(max(threads, 1), thread_name_prefix=thread_name_prefix)

    def submit(self, fn, /, *args, **kwargs) -> Future:
        if not self.inline:
            return super().submit(fn, *args, **kwargs)
        done: Future = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            done.set_exception(exc)
        return done


def _work_of(
    session, item_ids: list[int], rec: Recipe, settings: Settings, with_masks: bool = False
) -> list[_Work]:
    """The batch's items that still lack the recipe's derivative (re-running a batch is a no-op);
    for a style, with the input each is made from; with masks, each item's curator's mask."""
    output_uri = open_store(settings.store.output, settings.store, create=True).uri
    masks: dict[int, Input] = {}
    if rec.operation == "style":  # inputs_for leaves out what is done (the hash names the parent)
        inputs = inputs_for(session, item_ids, rec, output_uri)
        item_ids, done = list(inputs), set()
    else:
        if with_masks:
            masks = {
                i: Input(
                    m.id,
                    output_uri,
                    m.storage_uri.removeprefix(output_uri + "/"),
                    m.sha256,
                    masked_hash(rec.hash, m.sha256),
                )
                for i, m in current_masks(session, item_ids).items()
            }
        made = made_hashes(session, item_ids, rec.kind)
        done = {i for i in item_ids if (i, masks[i].recipe_hash if i in masks else rec.hash) in made}
    rows = queries.masters_to_read(session, item_ids)
    work = [_Work(*r) for r in rows if r[0] not in done]
    for w in work:
        w.input = inputs[w.id] if rec.operation == "style" else None
        w.mask = masks.get(w.id)
    return work


def _groups(work: list[_Work], size: int = 8):
    """Consecutive items in groups the engine restores together (tiles of equal size share batches)."""
    for start in range(0, len(work), size):
        yield work[start : start + size]


def _fetch_decode(settings: Settings, w: _Work, gpu) -> Loaded:
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


class _Writer:
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
    ):
        from flows.model_versions import agent_of

        self.settings, self.output, self.rec, self.run_id = settings, output, rec, run_id
        self.sessions = sessions_for(settings.db.url)
        self.model = {
            "name": row.name,
            "version": row.version,
            "weights_sha256": row.weights_sha256,
            "architecture": row.architecture,
            "model_version_id": row.id,
        }
        self.execution = execution_of(engine)
        self.software = software_versions() | {"torch": __import__("torch").__version__}
        self.tool = f"{AGENT} {code_version()}"
        self.agent_id = agent_of(settings, row)

    def _event(
        self, session, outcome: str, item_id: int, detail: dict, derivative_id: int | None = None
    ) -> None:
        ledger.add_event(
            session,
            EVENT_TYPES[self.rec.operation],
            session.get(Agent, self.agent_id),
            outcome,
            detail,
            item_id=item_id,
            derivative_id=derivative_id,
            run_id=self.run_id,
        )

    def _hash(self, w: _Work) -> str:
        """The derivative's recipe hash: the recipe's, or for a style, the recipe's with the parent,
        or restored with a curator's mask, the recipe's with the mask."""
        return w.input.recipe_hash if w.input else w.mask.recipe_hash if w.mask else self.rec.hash

    def fail(self, w: _Work, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:500]
        with self.sessions.begin() as session:
            self._event(
                write_first(session), "failure", w.id, {"reason": reason, "recipe_hash": self._hash(w)}
            )

    def write(self, w: _Work, loaded: Loaded, result, seconds: float) -> str:
        """Write and record one item's version: "restored", "skipped" (another run made the same
        recipe's version meanwhile) or "failed" (with its event)."""
        try:
            return self._write(w, loaded, result, seconds)
        except Exception as exc:
            self.fail(w, exc)
            return "failed"

    def _write(self, w: _Work, loaded: Loaded, result, seconds: float) -> str:
        started = datetime.now(UTC)
        when = started.isoformat(timespec="seconds").replace("+00:00", "Z")
        made = f"{self.rec.operation} with {self.rec.model} (weights sha256 {self.rec.weights_sha256})"
        if w.input is not None:
            made = (
                f"style {self.rec.params['style']} with {self.rec.model} (sha256 {self.rec.weights_sha256}) from "
                + (
                    f"derivative {w.input.parent_id} (sha256 {w.input.sha256})"
                    if w.input.parent_id
                    else "the master"
                )
            )
        history = History(w.key, w.sha256, self._hash(w), self.tool, made, when, w.orientation)
        icc, dpi = loaded.info.get("icc_profile"), loaded.info.get("dpi")
        if result.image.ndim == 3 and result.image.shape[2] >= 3 and loaded.mode in ("L", "I;16"):
            icc = None  # a grey master styled in colour: its grey ICC profile would not fit
        stem = w.key.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "image"
        files = [
            preservation(result.image, stem, icc, dpi, history),
            access_copy(result.image, icc, dpi, history, self.settings.restore.access_px),
        ]
        if result.mask is not None:
            files.append(mask_png(result.mask))
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
            prefix = f"derivatives/{w.collection}/{w.id}/{self.rec.kind}/v{version}"
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
        w: _Work,
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
                if self.rec.operation == "restore"
                else {}
            ),
            "model": self.model,
            "parameters": self.rec.params,
            "seed": SEED,
            "execution": self.execution | {"model_seconds": round(seconds, 4)},
            "software": self.software,
            "code_version": code_version(),
            "run_id": self.run_id,
            "started_at": started.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
        }
