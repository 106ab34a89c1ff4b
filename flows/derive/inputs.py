"""What one derivative is made from: the work item (its master) and, per operation, the input it
is made from (a style's parent version) or a curator's mask it is made with (a restore's)."""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from archive_db.derivatives import (
    Recipe,
    current_masks,
    made_hashes,
    masked_hash,
    recipe_hashes_made,
    style_candidates,
)
from flows.errors import ConfigError


@dataclass
class Input:
    """A file a version is made from or with: a parent derivative's (or the master), or a mask."""

    parent_id: int | None  # the derivative it is (None: the master)
    uri: str  # the store holding it
    key: str
    sha256: str
    recipe_hash: str  # the version's own recipe hash (the recipe's, with the parent or the mask)


@dataclass
class WorkItem:
    """One item of a batch: its master, and what the operation makes its version from or with."""

    id: int
    collection: str
    source_uri: str
    key: str
    sha256: str
    orientation: int | None
    input: Input | None = None  # a style's parent derivative (None: the master)
    mask: Input | None = None  # a curator's mask to restore with
    loaded: Future | None = None  # the decode in flight
    mask_pixels: Any = None  # decoded with the image

    @property
    def recipe_hash(self) -> str | None:
        """The version's recipe hash where it is not the recipe's own (None: it is)."""
        found = self.input or self.mask
        return found.recipe_hash if found else None


def item_hash(recipe: Recipe, parent_id: int | None) -> str:
    """A styled derivative's recipe hash: the collection's recipe and the parent it was made from."""
    return hashlib.sha256(
        f"{recipe.hash}:{parent_id if parent_id is not None else 'master'}".encode()
    ).hexdigest()


Todo = dict[int, tuple[Input | None, Input | None]]  # item id -> (input, mask), for the items still to do


def restore_todo(session, item_ids: list[int], recipe: Recipe, output_uri: str, with_masks: bool) -> Todo:
    """The items still lacking the recipe's version; with masks, each item's current curator's
    mask (the version made with it has its own hash)."""
    masks: dict[int, Input] = {}
    if with_masks:
        masks = {
            i: Input(
                m.id,
                output_uri,
                m.storage_uri.removeprefix(output_uri + "/"),
                m.sha256,
                masked_hash(recipe.hash, m.sha256),
            )
            for i, m in current_masks(session, item_ids).items()
        }
    made = made_hashes(session, item_ids, recipe.kind)
    return {
        i: (None, masks.get(i))
        for i in item_ids
        if (i, masks[i].recipe_hash if i in masks else recipe.hash) not in made
    }


def style_todo(
    session, item_ids: list[int], recipe: Recipe, output_uri: str, with_masks: bool = False
) -> Todo:
    """Per item still to do: its input. Items whose current source moved on since the batch was
    planned are styled from the new current source (the hash follows)."""
    rows, _ = style_candidates(session, recipe.params.get("from", "restored"), item_ids=item_ids)
    done = recipe_hashes_made(session, recipe.kind, item_ids=item_ids)
    found: Todo = {}
    for item_id, key, sha, _w, _h, parent_id, parent_uri, parent_sha in rows:
        h = item_hash(recipe, parent_id)
        if (item_id, h) in done:
            continue
        if parent_id is None:
            found[item_id] = (Input(None, "", key, sha, h), None)
        elif not parent_uri.startswith(output_uri + "/"):
            raise ConfigError(f"derivative {parent_id} lies outside the output store {output_uri}")
        else:
            found[item_id] = (
                Input(parent_id, output_uri, parent_uri.removeprefix(output_uri + "/"), parent_sha, h),
                None,
            )
    return found
