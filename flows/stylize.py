"""Styling a collection: a period style applied to each item's current restored version (or to
the master), written as kind ``style:<name>`` through the same batches, workers and immutable
versions as restoration (the shared engine in flows/derive/), with the parent derivative in the catalogue and the
sidecar.

A style is named as on the command line: a preset (``albumen``) or a learned style
(``learned:NAME@VERSION:STYLE``). Presets are registered in the model registry as
``preset:<name>@<version>`` (architecture ``preset``, "weights" digest the preset's identity),
so every derivative points at a model version and an agent, as learned ones do.

One recipe (style, strength, source, parameters) covers a collection; a derivative's own recipe
hash also names its parent, so styling again after a newer restored version became current
makes a new version (awaiting promotion) rather than colliding with the old one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prefect import flow

from archive_db import queries
from archive_db.derivatives import (
    Recipe,
    id_windows,
    recipe_hashes_made,
    stale_styled,
    style_candidate_rows,
)
from archive_db.models import ModelVersion
from flows.db import collection_named, sessions_for, writing
from flows.derive.dispatch import dispatch
from flows.derive.inputs import item_hash
from flows.errors import ConfigError
from flows.restore import id_bounds
from flows.settings import Settings

SOURCES = ("restored", "master")


@dataclass(frozen=True)
class StyleRef:
    """What ``--style`` names: a preset, or one style of a learned network."""

    preset: str | None = None
    model: str | None = None  # NAME@VERSION of a learned network
    style: str | None = None  # the style within it (None: the network's only style)

    @property
    def model_ref(self) -> str:
        from restoration.styles.presets import get_preset

        return f"preset:{self.preset}@{get_preset(self.preset).version}" if self.preset else self.model


def parse_style(text: str) -> StyleRef:
    """``albumen`` or ``learned:NAME@VERSION[:STYLE]``; unknown presets are an error."""
    from restoration.styles.presets import PRESETS

    if text.startswith("learned:"):
        model, _, style = text.removeprefix("learned:").partition(":")
        if "@" not in model or not model.split("@")[0] or not model.split("@")[1]:
            raise ConfigError(f"--style {text!r}: a learned style is learned:NAME@VERSION[:STYLE]")
        return StyleRef(model=model, style=style or None)
    if text not in PRESETS:
        raise ConfigError(
            f"unknown style {text!r}: presets are {', '.join(sorted(PRESETS))}; "
            "a learned one is learned:NAME@VERSION[:STYLE]"
        )
    return StyleRef(preset=text)


def learned_style(ref: StyleRef, card: dict[str, Any]) -> str:
    """The style within a learned network's card that ``ref`` names."""
    styles = card.get("styles") or []
    if ref.style is None:
        if len(styles) != 1:
            raise ConfigError(
                f"{ref.model} has styles {styles}: name one, "
                f"e.g. learned:{ref.model}:{styles[0] if styles else 'STYLE'}"
            )
        return styles[0]
    if ref.style not in styles:
        raise ConfigError(f"{ref.model} has no style {ref.style!r}; it has {styles}")
    return ref.style


# -- presets in the registry ---------------------------------------------------------------------


def ensure_presets(settings: Settings) -> None:
    """Register each preset version the code has (once): production unless that preset already
    has a production version. A registered version whose identity differs from the code's means
    a preset changed without a new version: refused, since old derivatives would lie."""
    from restoration.styles.presets import PRESETS

    with writing(settings.db.url) as session:
        rows = {(m.name, m.version): m for m in queries.model_versions(session, "style")}
        producing = {m.name for m in rows.values() if m.status == "production"}
        for p in PRESETS.values():
            name = f"preset:{p.name}"
            known = rows.get((name, p.version))
            if known is not None:
                if known.weights_sha256 != p.digest:
                    raise ConfigError(
                        f"preset {p.name} {p.version} differs from the registered one "
                        f"({known.weights_sha256[:12]}…): a changed preset needs a new version"
                    )
                continue
            session.add(
                ModelVersion(
                    name=name,
                    version=p.version,
                    task="style",
                    architecture="preset",
                    config={"preset": p.name, "defaults": p.defaults, "era": p.era},
                    weights_uri=f"builtin:restoration.styles.presets/{p.name}",
                    weights_sha256=p.digest,
                    metrics=None,
                    status="candidate" if name in producing else "production",
                )
            )


# -- the recipe and the work ---------------------------------------------------------------------


@dataclass
class StylePlan:
    """The items to make a version of from their current source (a style; an enlargement), selected
    a window of ids at a time as :meth:`pages` is read."""

    collection_id: int
    row: ModelVersion
    recipe: Recipe
    settings: Settings
    page: int  # ids selected at a time
    limit: int | None = None  # at most this many items
    stale_only: bool = False
    # items with no current source version to style, in the windows read (all of them, unless a
    # ``limit`` was reached first)
    without_source: int = 0

    def pages(self) -> Iterator[list[tuple]]:
        """(id, key, sha256, width, height) rows, as restore's dispatcher takes them, a window of
        ids at a time in item order: memory stays flat with the collection's size."""
        self.without_source, left = 0, self.limit
        bounds = lambda: id_bounds(self.settings, self.collection_id)  # noqa: E731
        for rows in id_windows(self._candidates, bounds, self.page):
            todo = self._todo(rows)
            if left is not None:
                todo, left = todo[:left], left - min(left, len(todo))
            if todo:
                yield todo
            if left == 0:
                return

    def _candidates(self, after_id: int, until_id: int) -> list[tuple]:
        with sessions_for(self.settings.db.url)() as session:
            return style_candidate_rows(
                session, self.source, self.collection_id, after_id=after_id, until_id=until_id
            )

    @property
    def source(self) -> str:
        return self.recipe.params.get("from", "restored")

    def _todo(self, rows: list[tuple]) -> list[tuple]:
        if self.source != "master":
            self.without_source += sum(r[5] is None for r in rows)
            rows = [r for r in rows if r[5] is not None]
        ids = [r[0] for r in rows]
        if not ids:
            return []
        with sessions_for(self.settings.db.url)() as session:
            done = recipe_hashes_made(session, self.recipe.kind, item_ids=ids)
            rows = [r for r in rows if (r[0], item_hash(self.recipe, r[5])) not in done]
            if self.stale_only:
                stale = stale_styled(
                    session, self.collection_id, self.recipe.kind, self.row, self.source, item_ids=ids
                )
                rows = [r for r in rows if r[0] in stale]
        return [r[:5] for r in rows]


def prepare(
    settings: Settings,
    collection: str,
    style: str,
    strength: float = 1.0,
    source: str = "restored",
    params: dict[str, Any] | None = None,
) -> tuple[int, ModelVersion, Recipe]:
    from flows.model_versions import load, ready, resolve

    if source not in SOURCES:
        raise ConfigError(f"--from must be one of {', '.join(SOURCES)}")
    if not 0 <= strength <= 1:
        raise ConfigError("--strength must be between 0 and 1")
    ref = parse_style(style)
    ready(settings)
    ensure_presets(settings)
    with sessions_for(settings.db.url)() as session:
        coll = collection_named(session, collection)
        row = resolve(session, ref.model_ref)
        session.expunge(row)
    if row.task != "style":
        raise ConfigError(f"{row.name}@{row.version} is a {row.task} model, not a style")
    if ref.preset:
        from restoration.styles.presets import get_preset

        label, merged = ref.preset, get_preset(ref.preset).params(params)
    else:
        from restoration.styles.runner import learned_params

        net, card, _ = load(settings, f"{row.name}@{row.version}")
        label = learned_style(ref, card)
        try:
            merged = learned_params(net, params)
        except ValueError as exc:
            raise ConfigError(f"{row.name}@{row.version}: {exc}") from None
    kind = f"style:{ref.preset}" if ref.preset else f"style:{row.name}.{label}"
    recipe = Recipe(
        "style",
        kind,
        f"{row.name}@{row.version}",
        row.weights_sha256,
        {"style": label, "strength": strength, "from": source, "params": merged},
    )
    return coll.id, row, recipe


def plan(
    settings: Settings,
    collection: str,
    style: str,
    strength: float = 1.0,
    source: str = "restored",
    params: dict[str, Any] | None = None,
    limit: int | None = None,
    stale_only: bool = False,
) -> StylePlan:
    """The items to style: those whose current source has no derivative of this recipe yet.
    With ``stale_only`` (a reprocess), only items that already have a current version of the
    kind, made by an older model version or from a parent that is no longer current."""
    coll_id, row, recipe = prepare(settings, collection, style, strength, source, params)
    return StylePlan(coll_id, row, recipe, settings, settings.restore.select_page, limit, stale_only)


# -- the flow ------------------------------------------------------------------------------------


@flow(name="stylize-collection", validate_parameters=False)
def stylize_collection(
    collection: str,
    style: str,
    strength: float = 1.0,
    source: str = "restored",
    params: dict[str, Any] | None = None,
    limit: int | None = None,
    pool: str | None = None,
    settings: Settings | None = None,
):
    """Style every item of ``collection`` whose current source lacks this recipe's version."""
    settings = settings or Settings()
    p = plan(settings, collection, style, strength, source, params, limit)
    summary = dispatch(
        settings, "stylize", collection, p.collection_id, style, p.row, p.recipe, p.pages(), pool
    )
    summary.without_source = p.without_source
    return summary
