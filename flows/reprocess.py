"""Reprocessing a collection with a newer model version, the comparison report, and moving the
``current`` mark between versions (promotion, rollback) as recorded events.

New versions go beside the old ones and are not current until a person promotes them; a rollback
makes the versions current again that were current before the promotion. Nothing is deleted.
"""

from __future__ import annotations

import csv
import heapq
import io
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from archive_db import curation, ledger
from archive_db.derivatives import id_windows, made_beside_current
from archive_db.models import REPROCESSING, Agent, ModelVersion
from flows.db import collection_named, ensure_schema, sessions_for, writing
from flows.derive.dispatch import DeriveSummary, dispatch
from flows.imaging.io import read_image
from flows.model_versions import agent_of, resolve
from flows.report import artifact_key
from flows.restore import KIND, id_bounds, prepare, work_pages
from flows.settings import Settings
from flows.storage.layout import reprocess_report_prefix
from flows.storage.store import cached_store, open_store, read_all

CELL = 256  # contact-sheet cell height


@dataclass
class Change:
    item_id: int
    key: str
    previous_version: int
    new_version: int
    mean_abs_change: float  # in [0, 1]: mean over pixels and channels of |new - previous|


TOP = 20  # the largest changes a report keeps in memory and lists; every one is in changes.csv


@dataclass
class ReprocessReport:
    summary: DeriveSummary
    changes: list[Change] = field(default_factory=list)  # the largest (at most TOP), largest first
    report_prefix: str = ""
    compared: int = 0  # items whose new version was compared with the current one
    total_change: float = 0.0  # the sum of their mean absolute changes
    sheet_rows: list = field(default_factory=list, repr=False)  # (change, pair) of the contact sheet

    def headline(self) -> str:
        if not self.compared:
            return self.summary.headline()
        return (
            f"{self.summary.headline()} Mean absolute change against the previous versions: "
            f"{self.total_change / self.compared:.4f}; report in {self.report_prefix}/."
        )

    def markdown(self) -> str:
        lines = [self.summary.markdown(), "## Change against the previous version", ""]
        lines += ["| item | key | from | to | mean abs change |", "|---|---|---|---|---|"]
        for c in self.changes:
            lines.append(
                f"| {c.item_id} | `{c.key}` | v{c.previous_version} | v{c.new_version} | {c.mean_abs_change:.4f} |"
            )
        lines += [
            "",
            f"Every change: `{self.report_prefix}/changes.csv`. "
            f"Contact sheet (original, previous, new): `{self.report_prefix}/contact-sheet.jpg`",
            "",
        ]
        return "\n".join(lines)


@flow(name="reprocess-collection", validate_parameters=False)
def reprocess_collection(
    collection: str,
    model: str | None = None,
    pool: str | None = None,
    kind: str = KIND,
    sample: int = 6,
    settings: Settings | None = None,
    style: str | None = None,
    strength: float = 1.0,
    source: str = "restored",
    scale: int | None = None,
) -> ReprocessReport:
    """Restore the stale items of ``collection`` with ``model`` (new versions beside the old), then
    compare the new versions with the current ones and write the report to the output store.

    With ``style`` instead, restyle the items whose current styled version is stale: made by an
    older version of the style's model, or from a parent that is no longer current. With
    ``scale``, enlarge again the stale enlargements of that factor the same way (``model``: the
    enlarger, by default the production one)."""
    settings = settings or Settings()
    if style is not None:
        from flows.stylize import plan

        p = plan(settings, collection, style, strength, source, stale_only=True)
        coll_id, row, recipe, pages, model = p.collection_id, p.row, p.recipe, p.pages(), style
    elif scale is not None:
        from flows.upscale import plan as enlargement_plan

        p = enlargement_plan(settings, collection, scale, source, model, stale_only=True)
        coll_id, row, recipe, pages = p.collection_id, p.row, p.recipe, p.pages()
        model = f"{row.name}@{row.version}"
    else:
        coll_id, row, recipe = prepare(settings, collection, model, kind)
        pages = work_pages(settings, coll_id, row, recipe, stale_only=True)
    summary = dispatch(settings, "reprocess", collection, coll_id, model, row, recipe, pages, pool)
    report = ReprocessReport(summary, report_prefix=reprocess_report_prefix(collection, summary.run_id))
    if _compare_all(settings, report, coll_id, recipe.kind, row, sample):
        _write_report(settings, report, sample)
    create_markdown_artifact(
        key=artifact_key("reprocess", collection), markdown=report.markdown(), description=report.headline()
    )
    return report


def _compare_all(
    settings: Settings, report: ReprocessReport, coll_id: int, kind: str, row: ModelVersion, sample: int
) -> bool:
    """Compare each new version this run made with the current one, a window of item ids at a time:
    events recorded and rows written to the report's changes.csv as they go; the report keeps the
    count, the sum and the largest changes (with their items, for the contact sheet)."""
    run_id = report.summary.run_id
    keep = max(TOP, sample)
    top: list[tuple[float, int, Change, tuple]] = []  # a min-heap of the largest changes
    with tempfile.TemporaryFile("w+", newline="") as table:
        writer = csv.writer(table)
        writer.writerow(["item_id", "key", "previous_version", "new_version", "mean_abs_change"])

        def window(after_id: int, until_id: int) -> list[tuple]:
            with sessions_for(settings.db.url)() as session:
                pairs = made_beside_current(session, coll_id, kind, run_id, after_id, until_id)
                session.expunge_all()
            return pairs

        bounds = lambda: id_bounds(settings, coll_id)  # noqa: E731
        for pairs in id_windows(window, bounds, settings.restore.select_page):
            changes = _compare(settings, pairs)
            _record(settings, row, run_id, changes)
            for c, pair in zip(changes, pairs, strict=True):
                writer.writerow(
                    [c.item_id, c.key, c.previous_version, c.new_version, f"{c.mean_abs_change:.6f}"]
                )
                report.compared += 1
                report.total_change += c.mean_abs_change
                entry = (c.mean_abs_change, -c.item_id, c, pair)
                if len(top) < keep:
                    heapq.heappush(top, entry)
                elif entry[:2] > top[0][:2]:
                    heapq.heapreplace(top, entry)
        if not report.compared:
            return False
        ranked = sorted(top, key=lambda e: e[:2], reverse=True)
        report.changes = [c for _, _, c, _ in ranked[:TOP]]
        report.sheet_rows = [(c, pair) for _, _, c, pair in ranked[:sample]]
        table.seek(0)
        output = open_store(settings.store.output, settings.store, create=True)
        output.put(f"{report.report_prefix}/changes.csv", table.read().encode(), "text/csv")
    return True


def _pixels(settings: Settings, storage_uri: str) -> np.ndarray:
    """A derivative's image as float32 in [0, 1], HxWxC."""
    output = open_store(settings.store.output, settings.store)
    loaded = read_image(read_all(output, storage_uri.removeprefix(output.uri + "/")))
    px = np.asarray(loaded.pixels)
    scale = 65535.0 if px.dtype == np.uint16 else 255.0
    px = px.astype(np.float32) / scale
    return px[..., None] if px.ndim == 2 else px


def _compare(settings: Settings, pairs) -> list[Change]:
    def one(pair) -> Change:
        item, old, new = pair
        a, b = _pixels(settings, old.storage_uri), _pixels(settings, new.storage_uri)
        return Change(item.id, item.source_key, old.version, new.version, float(np.abs(a - b).mean()))

    with ThreadPoolExecutor(settings.restore.threads) as pool:
        return list(pool.map(one, pairs))


def _record(settings: Settings, row: ModelVersion, run_id: int, changes: list[Change]) -> None:
    agent_id = agent_of(settings, row)
    with writing(settings.db.url) as session:
        for c in changes:
            ledger.add_event(
                session,
                REPROCESSING,
                session.get(Agent, agent_id),
                "success",
                {
                    "from_version": c.previous_version,
                    "to_version": c.new_version,
                    "mean_abs_change": round(c.mean_abs_change, 6),
                },
                item_id=c.item_id,
                run_id=run_id,
            )


def _write_report(settings: Settings, report: ReprocessReport, sample: int) -> None:
    output = open_store(settings.store.output, settings.store, create=True)
    output.put(f"{report.report_prefix}/report.md", report.markdown().encode(), "text/markdown")
    if report.sheet_rows:
        sheet = contact_sheet(settings, report.sheet_rows)
        output.put(f"{report.report_prefix}/contact-sheet.jpg", sheet, "image/jpeg")


def contact_sheet(settings: Settings, rows) -> bytes:
    """One row per item: the master, the previous version and the new one, labelled."""

    def cell(px: np.ndarray) -> Image.Image:
        img = Image.fromarray((np.clip(px, 0, 1) * 255 + 0.5).astype(np.uint8).squeeze())
        img = img.convert("RGB")
        img.thumbnail((CELL * 2, CELL), Image.Resampling.LANCZOS)
        return img

    strips = []
    for change, (item, old, new) in rows:
        master = read_image(read_all(cached_store(item.source_uri, settings.store, 2), item.source_key))
        m = np.asarray(master.pixels)
        m = m.astype(np.float32) / (65535.0 if m.dtype == np.uint16 else 255.0)
        cells = [cell(m), cell(_pixels(settings, old.storage_uri)), cell(_pixels(settings, new.storage_uri))]
        width = sum(c.width for c in cells) + 40
        strip = Image.new("RGB", (width, CELL + 24), "white")
        x = 10
        for c in cells:
            strip.paste(c, (x, 22))
            x += c.width + 10
        label = (
            f"{item.source_key}  |  master, v{change.previous_version}, v{change.new_version}"
            f"  |  mean abs change {change.mean_abs_change:.4f}"
        )
        ImageDraw.Draw(strip).text((10, 5), label, fill="black")
        strips.append(strip)
    sheet = Image.new("RGB", (max(s.width for s in strips), sum(s.height for s in strips)), "white")
    y = 0
    for s in strips:
        sheet.paste(s, (0, y))
        y += s.height
    buf = io.BytesIO()
    sheet.save(buf, "JPEG", quality=88)
    return buf.getvalue()


# -- which version is current ---------------------------------------------------------------------


def promote(settings: Settings, collection: str, model: str, kind: str = KIND) -> int:
    """Make the versions ``model`` made current, for every item of the collection; returns how
    many changed. Each change is a ``promotion`` event naming the version it replaced."""
    return _move(settings, collection, model, kind, "promotion")


def rollback(settings: Settings, collection: str, model: str, kind: str = KIND) -> int:
    """Where ``model``'s version is current, make current again the version it replaced at its
    promotion (or, never promoted, the latest earlier version); ``rollback`` events."""
    return _move(settings, collection, model, kind, "rollback")


def _move(settings: Settings, collection: str, model: str, kind: str, action: str) -> int:
    ensure_schema(settings.db.url, create=False)
    with writing(settings.db.url) as session:
        coll = collection_named(session, collection)
        row = resolve(session, model)
        if row.task == "upscale":  # an enlarger makes one kind of version: its factor's
            from flows.upscale import kind_of, model_scale

            kind = kind_of(model_scale(row))
        agent = ledger.get_or_create_agent(session, "model", row.name, row.version)
        move = curation.promote_model if action == "promotion" else curation.rollback_model
        return move(session, coll.id, kind, row, agent)
