"""Every key of the output store's layout (ARCHITECTURE.md), in one place:

derivatives/<collection>/<item id>/<kind>/v<N>/   one immutable version: image, access copy,
                                                  mask, metadata.json (written last)
access/<collection>/<item id>/thumb.jpg           the master's thumbnail
models/<name>/<version>/                          a registered checkpoint and its card
reports/<collection>/reprocess-run<run id>/       a reprocessing run's comparison report
"""

from __future__ import annotations

DERIVATIVES = "derivatives"


def version_prefix(collection: str, item_id: int, kind: str, version: int) -> str:
    """The folder of one derivative version."""
    return f"{DERIVATIVES}/{collection}/{item_id}/{kind}/v{version}"


def collection_derivatives(collection: str) -> str:
    """The folder every version of a collection's items lies under."""
    return f"{DERIVATIVES}/{collection}/"


def version_folder_of(key: str) -> tuple[str, int] | None:
    """(version folder, item id) of a key under ``derivatives/``; None for a key that is not in one."""
    parts = key.split("/")
    if len(parts) >= 6 and parts[0] == DERIVATIVES and parts[2].isdigit():
        return "/".join(parts[:5]), int(parts[2])
    return None


def split_storage_uri(storage_uri: str) -> tuple[str, str]:
    """A recorded derivative file's URI as (the store's URI, the key inside it)."""
    store_uri, _, rest = storage_uri.rpartition(f"/{DERIVATIVES}/")
    return store_uri, f"{DERIVATIVES}/{rest}"


def thumbnail_key(collection: str, item_id: int) -> str:
    return f"access/{collection}/{item_id}/thumb.jpg"


def model_prefix(name: str, version: str) -> str:
    return f"models/{name}/{version}"


def reprocess_report_prefix(collection: str, run_id: int | None) -> str:
    return f"reports/{collection}/reprocess-run{run_id}"
