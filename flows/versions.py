"""Software versions, recorded as agents and in every run: provenance needs them."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE = "photo-archive"


@lru_cache(maxsize=64)
def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    base = version_of(PACKAGE)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{base}+g{sha}" if sha else base


def software_versions() -> dict[str, str]:
    deps = ("pillow", "exifread", "sqlalchemy", "prefect", "numpy", "boto3")
    return {"python": platform.python_version(), PACKAGE: code_version()} | {
        d: version_of(d) for d in deps
    }
