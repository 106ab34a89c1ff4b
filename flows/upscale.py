"""Enlarging a collection: each item's current restored version (or its master) made ``scale``
times larger by a super-resolution model, written as kind ``upscaled:x<scale>`` through the same
batches, workers and immutable versions as restoration and styling (``flows.derive``), with the
parent derivative in the catalogue and the sidecar, the DPI scaled so that the enlargement prints
at the original's physical size, and the IPTC disclosure that a trained model made its finest
detail.

The model is the production enlarger of that scale (``task`` upscale), or one named with
``--model``: one the project trained (``archive train upscale``), or a Real-ESRGAN checkpoint a
user imported (``archive models import``). As with styles, a version's recipe hash also names its
parent, so enlarging again after a newer restored version became current makes a new version.
"""

from __future__ import annotations

from prefect import flow

from archive_db.derivatives import Recipe
from archive_db.models import ModelVersion
from flows.db import collection_named, sessions_for
from flows.derive.dispatch import DeriveSummary, dispatch
from flows.errors import ConfigError, NotFound
from flows.settings import Settings
from flows.stylize import SOURCES, StylePlan

SCALES = (2, 4)


def kind_of(scale: int) -> str:
    return f"upscaled:x{scale}"


def model_scale(row: ModelVersion) -> int:
    """What a registered enlarger's card says it enlarges by."""
    from restoration.recipe import scale_of

    return scale_of(row.architecture, row.config)


def enlarger_for(session, scale: int, model: str | None) -> ModelVersion:
    """The model version ``model`` names (it must enlarge by ``scale``), or the production
    enlarger of that scale."""
    from flows.model_versions import resolve

    if model:
        row = resolve(session, model)
        if row.task != "upscale":
            raise ConfigError(f"{row.name}@{row.version} is a {row.task} model, not an enlarger")
        if model_scale(row) != scale:
            raise ConfigError(f"{row.name}@{row.version} enlarges x{model_scale(row)}, not x{scale}")
        return row
    from archive_db import queries

    found = [
        m
        for m in queries.model_versions(session, "upscale")
        if m.status == "production" and model_scale(m) == scale
    ]
    if not found:
        raise NotFound(f"no production enlarger x{scale} (see `archive models list`, or pass --model)")
    if len(found) > 1:
        names = ", ".join(f"{m.name}@{m.version}" for m in found)
        raise ConfigError(f"several production enlargers x{scale} ({names}): pass --model")
    return found[0]


def prepare(
    settings: Settings, collection: str, scale: int, source: str = "restored", model: str | None = None
) -> tuple[int, ModelVersion, Recipe]:
    """The collection's id, the enlarger and the recipe; a bad name or scale is a ConfigError."""
    from flows.model_versions import ready

    if scale not in SCALES:
        raise ConfigError(f"--scale must be one of {', '.join(map(str, SCALES))}, not {scale}")
    if source not in SOURCES:
        raise ConfigError(f"--from must be one of {', '.join(SOURCES)}")
    ready(settings)
    with sessions_for(settings.db.url)() as session:
        coll = collection_named(session, collection)
        row = enlarger_for(session, scale, model)
        session.expunge(row)
    recipe = Recipe(
        "upscale",
        kind_of(scale),
        f"{row.name}@{row.version}",
        row.weights_sha256,
        {"scale": scale, "from": source},
    )
    return coll.id, row, recipe


def plan(
    settings: Settings,
    collection: str,
    scale: int,
    source: str = "restored",
    model: str | None = None,
    limit: int | None = None,
    stale_only: bool = False,
) -> StylePlan:
    """The items to enlarge: those whose current source has no enlargement of this recipe yet;
    with ``stale_only`` (a reprocess), only those whose current enlargement is stale."""
    coll_id, row, recipe = prepare(settings, collection, scale, source, model)
    return StylePlan(coll_id, row, recipe, settings, settings.restore.select_page, limit, stale_only)


@flow(name="upscale-collection", validate_parameters=False)
def upscale_collection(
    collection: str,
    scale: int = 2,
    source: str = "restored",
    model: str | None = None,
    limit: int | None = None,
    pool: str | None = None,
    settings: Settings | None = None,
) -> DeriveSummary:
    """Enlarge every item of ``collection`` whose current source lacks this recipe's version."""
    settings = settings or Settings()
    p = plan(settings, collection, scale, source, model, limit)
    ref = f"{p.row.name}@{p.row.version}"
    summary = dispatch(
        settings, "upscale", collection, p.collection_id, ref, p.row, p.recipe, p.pages(), pool
    )
    summary.without_source = p.without_source
    return summary
