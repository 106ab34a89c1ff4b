"""The dispatcher: batch the items a recipe has not made yet by pixel budget, run each batch
in-process or as a run of the ``restore-batch`` deployment on a work pool, and count the outcome.

The catalogue is the record of what happened: the dispatcher counts a batch's outcome from the
events its worker committed, so a batch run on a remote worker needs no result storage, and a
worker that died is seen as the items it left undone.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect.artifacts import create_markdown_artifact

from archive_db import ledger, queries
from archive_db.derivatives import Recipe
from archive_db.models import ModelVersion
from flows.db import heartbeat, sessions_for, writing
from flows.derive.operations import operation
from flows.derive.worker import restore_batch
from flows.errors import ConfigError
from flows.progress import reporter
from flows.report import artifact_key
from flows.settings import Settings
from flows.versions import code_version


@dataclass
class DeriveSummary:
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
    operation: str = ""  # the recipe's (flows.derive.operations)
    without_source: int = 0  # styling: items with no current version of the source kind

    def counts(self) -> dict[str, int]:
        return {
            k: getattr(self, k)
            for k in ("selected", "batches", "restored", "failed", "not_done", "made_elsewhere", "pixels")
        }

    def headline(self) -> str:
        verb = operation(self.operation).verb
        if self.selected == 0:
            return (
                f"Nothing to {self.operation}: every item of '{self.collection}' already has {self.model}'s output"
                + (
                    f" ({self.without_source} without a restored version to work from)."
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
        """The counts as a table shows them: what was made named by the operation's verb."""
        made = operation(self.operation).verb.lower() if self.operation else "restored"
        counts = [(made if k == "restored" else k, f"{v:,}") for k, v in self.counts().items()]
        return counts + [("seconds", f"{self.seconds:.2f}")]

    def markdown(self) -> str:
        lines = [
            f"# {operation(self.operation).event.capitalize() if self.operation else 'Restoration'} of "
            f"`{self.collection}`",
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


def dispatch(
    settings: Settings,
    flow_name: str,
    collection: str,
    coll_id: int,
    ref: str,
    row: ModelVersion,
    recipe: Recipe,
    pages: Iterable[list[tuple]],
    pool: str | None,
) -> DeriveSummary:
    """Batch the ``pages`` of work (windows of (id, key, sha256, width, height) rows by item id, read as
    the batches go, so a million-item collection is never in memory at once) by pixel budget, run
    the batches in-process or on ``pool``, gather the outcome from the catalogue, record the run."""
    started = time.perf_counter()
    summary = DeriveSummary(collection, f"{row.name}@{row.version}", recipe.hash, operation=recipe.operation)
    summary.run_id = _begin(settings, flow_name, coll_id, recipe, ref, pool)
    progress = reporter()
    progress.start(f"{flow_name} {collection}", None)
    in_flight: dict[int, tuple[str, int]] = {}  # item id -> (key, pixels) of the batches not gathered

    def batches() -> Iterator[list[int]]:
        for page in pages:
            summary.selected += len(page)
            progress.grow(len(page))
            for r in page:
                in_flight[r[0]] = (r[1], (r[3] or 0) * (r[4] or 0))
            for ids in plan_batches(page, settings.restore.batch_pixels, settings.restore.batch_items):
                summary.batches += 1
                yield ids

    def gather(ids: list[int]) -> None:
        outcome = batch_outcome(settings, summary.run_id, ids, recipe)
        rows = {i: in_flight.pop(i) for i in ids}  # (key, pixels)
        summary.restored += len(outcome["restored"])
        summary.pixels += sum(rows[i][1] for i in outcome["restored"])
        summary.failed += len(outcome["failed"])
        summary.made_elsewhere += len(outcome["skipped"])
        summary.problems += [
            (rows[i][0], reason) for i, reason in [*outcome["failed"].items(), *outcome["skipped"].items()]
        ]
        undone = [
            i
            for i in ids
            if i not in outcome["restored"] and i not in outcome["failed"] and i not in outcome["skipped"]
        ]
        summary.not_done += len(undone)
        summary.problems += [
            (rows[i][0], "not done: the batch's worker ended without recording it") for i in undone
        ]
        progress.advance(len(ids))

    status = "failed"
    try:
        with heartbeat(settings.db.url, summary.run_id):  # so a run elsewhere can tell if this one dies
            if pool is None:
                for ids in batches():
                    restore_batch(ids, asdict(recipe), summary.run_id, settings)
                    gather(ids)
            else:
                _on_pool(settings, pool, batches(), asdict(recipe), summary.run_id, gather)
        status = "completed" if summary.failed == summary.not_done == 0 else "partial"
    finally:
        summary.seconds = round(time.perf_counter() - started, 3)
        with writing(settings.db.url) as session:
            ledger.finish_run(session, summary.run_id, status, summary.counts(), {"seconds": summary.seconds})
    create_markdown_artifact(
        key=artifact_key(flow_name, collection), markdown=summary.markdown(), description=summary.headline()
    )
    return summary


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
    settings: Settings, pool: str, batches: Iterator[list[int]], recipe: dict, run_id: int, gather
) -> None:
    """Each batch as a run of the restore-batch deployment; at most ``batches_in_flight`` at once,
    the next batch taken from ``batches`` (and so the next page selected) only as one ends."""
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

    width = settings.restore.batches_in_flight
    with ThreadPoolExecutor(width, thread_name_prefix="dispatch") as workers:
        running = {workers.submit(one, ids) for ids in itertools.islice(batches, width)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for done in finished:
                gather(done.result())
                running |= {workers.submit(one, ids) for ids in itertools.islice(batches, 1)}


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
        events = queries.run_events(session, run_id, operation(recipe.operation).event, ids)
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
