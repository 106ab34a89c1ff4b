"""Restoring a collection: the items a recipe has not made yet, handed to the shared batch engine
(``flows.derive``), which writes every result as a new immutable version with its provenance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prefect import flow

from archive_db.derivatives import Recipe, id_windows, item_id_bounds, items_needing
from archive_db.models import ModelVersion
from flows.db import collection_named, sessions_for
from flows.derive.dispatch import DeriveSummary, dispatch
from flows.derive.operations import takes_masks
from flows.errors import ConfigError
from flows.model_versions import ready, resolve
from flows.settings import Settings
from flows.storage.store import open_store

KIND = "restored"


@flow(name="restore-collection", validate_parameters=False)
def restore_collection(
    collection: str,
    model: str = "restore@production",
    pool: str | None = None,
    kind: str = KIND,
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
) -> DeriveSummary:
    """Restore every ingested item of ``collection`` that lacks ``model``'s output with ``params``
    (tone, strength: ``restoration.recipe.restore_params``); see the module."""
    settings = settings or Settings()
    coll_id, row, recipe = prepare(settings, collection, model, kind, params)
    pages = work_pages(settings, coll_id, row, recipe)
    return dispatch(settings, "restore", collection, coll_id, model, row, recipe, pages, pool)


def work_pages(
    settings: Settings, coll_id: int, row: ModelVersion, recipe: Recipe, stale_only: bool = False
) -> Iterator[list[tuple]]:
    """The items lacking ``recipe``'s version, a window of ``select_page`` ids at a time (with
    ``stale_only``, only those whose current version an older version of the model made): memory
    stays flat with the collection's size."""

    def window(after_id: int, until_id: int) -> list[tuple]:
        with sessions_for(settings.db.url)() as session:
            return items_needing(
                session,
                coll_id,
                recipe.kind,
                recipe.hash,
                after_id=after_id,
                until_id=until_id,
                with_masks=takes_masks(row),
                stale_of=row if stale_only else None,
            )

    return id_windows(window, lambda: id_bounds(settings, coll_id), settings.restore.select_page)


def id_bounds(settings: Settings, coll_id: int) -> tuple[int | None, int | None]:
    """A collection's first and last item ids (where a run's windows of ids begin and end)."""
    with sessions_for(settings.db.url)() as session:
        return item_id_bounds(session, coll_id)


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


def prepare(
    settings: Settings, collection: str, model: str, kind: str, params: dict[str, Any] | None = None
) -> tuple[int, ModelVersion, Recipe]:
    """The collection's id, the model version ``model`` resolves to, and the recipe (with its
    parameters checked: a bad one is a ConfigError)."""
    from restoration.recipe import restore_params

    ready(settings)
    with sessions_for(settings.db.url)() as session:
        coll = collection_named(session, collection)
        row = resolve(session, model)
        session.expunge(row)
    if row.task != "restore":
        raise ConfigError(f"{row.name}@{row.version} is a {row.task} model, not a restorer")
    try:
        checked = restore_params(row.architecture, params)
    except ValueError as exc:
        raise ConfigError(f"--param: {exc}") from None
    return coll.id, row, recipe_for(row, kind, checked)


def recipe_for(row: ModelVersion, kind: str, params: dict[str, Any] | None = None) -> Recipe:
    return Recipe(
        row.task,  # the operation: a model version's task names it (restore, style)
        kind,
        f"{row.name}@{row.version}",
        row.weights_sha256,
        params or {},
    )
