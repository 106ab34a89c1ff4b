"""Reprocessing a collection with a newer model version, the comparison report, and moving the
``current`` mark between versions (promotion, rollback) as recorded events.

New versions go beside the old ones and are not current until a person promotes them; a rollback
makes the versions current again that were current before the promotion. Nothing is deleted.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw
from prefect import flow
from prefect.artifacts import create_markdown_artifact

from archive_db import curation, ledger
from archive_db.derivatives import items_needing, made_beside_current, stale_items
from archive_db.models import REPROCESSING, Agent, Derivative, Item, ModelVersion
from flows.db import collection_named, ensure_schema, sessions_for, writing
from flows.derive.dispatch import DeriveSummary, dispatch
from flows.derive.operations import takes_masks
from flows.imaging.io import read_image
from flows.model_versions import agent_of, resolve
from flows.report import artifact_key
from flows.restore import KIND, prepare
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


@dataclass
class ReprocessReport:
    summary: DeriveSummary
    changes: list[Change] = field(default_factory=list)
    report_prefix: str = ""

    def headline(self) -> str:
        if not self.changes:
            return self.summary.headline()
        mean = float(np.mean([c.mean_abs_change for c in self.changes]))
        return (
            f"{self.summary.headline()} Mean absolute change against the previous versions: "
            f"{mean:.4f}; report in {self.report_prefix}/."
        )

    def markdown(self) -> str:
        lines = [self.summary.markdown(), "## Change against the previous version", ""]
        lines += ["| item | key | from | to | mean abs change |", "|---|---|---|---|---|"]
        for c in sorted(self.changes, key=lambda c: -c.mean_abs_change)[:20]:
            lines.append(
                f"| {c.item_id} | `{c.key}` | v{c.previous_version} | v{c.new_version} | {c.mean_abs_change:.4f} |"
            )
        lines += [
            "",
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
) -> ReprocessReport:
    """Restore the stale items of ``collection`` with ``model`` (new versions beside the old), then
    compare the new versions with the current ones and write the report to the output store.

    With ``style`` instead, restyle the items whose current styled version is stale: made by an
    older version of the style's model, or from a parent that is no longer current."""
    settings = settings or Settings()
    if style is not None:
        from flows.stylize import plan

        p = plan(settings, collection, style, strength, source, stale_only=True)
        coll_id, row, recipe, todo, model = p.collection_id, p.row, p.recipe, p.todo, style
    else:
        coll_id, row, recipe = prepare(settings, collection, model, kind)
        with sessions_for(settings.db.url)() as session:
            stale = set(stale_items(session, coll_id, kind, row))
            todo = [
                r
                for r in items_needing(session, coll_id, kind, recipe.hash, with_masks=takes_masks(row))
                if r[0] in stale
            ]
    summary = dispatch(settings, "reprocess", collection, coll_id, model, row, recipe, todo, pool)
    report = ReprocessReport(summary, report_prefix=reprocess_report_prefix(collection, summary.run_id))
    pairs = _pairs(settings, [r[0] for r in todo], recipe.kind, summary.run_id)
    if pairs:
        report.changes = _compare(settings, pairs)
        _record(settings, row, summary.run_id, report.changes)
        _write_report(settings, report, pairs, sample)
    create_markdown_artifact(
        key=artifact_key("reprocess", collection), markdown=report.markdown(), description=report.headline()
    )
    return report


def _pairs(
    settings: Settings, item_ids: list[int], kind: str, run_id: int
) -> list[tuple[Item, Derivative, Derivative]]:
    """(item, current version, new version) for the items this run has made a version of."""
    if not item_ids:
        return []
    with sessions_for(settings.db.url)() as session:
        pairs = made_beside_current(session, item_ids, kind, run_id)
        session.expunge_all()
    return pairs


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


def _write_report(settings: Settings, report: ReprocessReport, pairs, sample: int) -> None:
    output = open_store(settings.store.output, settings.store, create=True)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["item_id", "key", "previous_version", "new_version", "mean_abs_change"])
    for c in report.changes:
        writer.writerow([c.item_id, c.key, c.previous_version, c.new_version, f"{c.mean_abs_change:.6f}"])
    output.put(f"{report.report_prefix}/changes.csv", table.getvalue().encode(), "text/csv")
    output.put(f"{report.report_prefix}/report.md", report.markdown().encode(), "text/markdown")
    ranked = sorted(zip(report.changes, pairs, strict=True), key=lambda cp: -cp[0].mean_abs_change)[:sample]
    if ranked:
        sheet = contact_sheet(settings, [(c, p) for c, p in ranked])
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
        agent = ledger.get_or_create_agent(session, "model", row.name, row.version)
        move = curation.promote_model if action == "promotion" else curation.rollback_model
        return move(session, coll.id, kind, row, agent)
