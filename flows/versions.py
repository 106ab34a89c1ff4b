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
    """The package version, plus the git commit when running from a checkout, marked ``.dirty``
    when tracked files differ from that commit (a model trained from uncommitted code says so)."""
    return git_version(version_of(PACKAGE), Path(__file__).parent)


def git_version(base: str, where: Path) -> str:
    """``base+g<commit>[.dirty]`` for a git checkout at ``where`` (a PEP 440 local version), else ``base``."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=where, capture_output=True, text=True, timeout=5
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(sha) and bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{sha}{'.dirty' if dirty else ''}" if sha else base


def software_versions() -> dict[str, str]:
    deps = ("pillow", "exifread", "sqlalchemy", "prefect", "numpy", "boto3")
    return {"python": platform.python_version(), PACKAGE: code_version()} | {d: version_of(d) for d in deps}
