"""Run summaries: one dataclass, shown as a Rich table in the CLI and as a Prefect artifact."""

from __future__ import annotations

from dataclasses import dataclass, field

COUNTS = ("listed", "new", "unchanged", "duplicate", "quarantined", "changed", "errors")


@dataclass
class IngestSummary:
    collection: str
    source: str
    run_id: int | None = None
    listed: int = 0
    new: int = 0
    unchanged: int = 0
    duplicate: int = 0
    quarantined: int = 0
    changed: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (key, kind, reason)

    def add(self, other: IngestSummary) -> None:
        for name in (*COUNTS[1:], "bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in (*COUNTS, "bytes")}

    @property
    def nothing_new(self) -> bool:
        return self.new == self.duplicate == self.quarantined == self.changed == self.errors == 0

    def headline(self) -> str:
        if self.nothing_new:
            return (
                f"Nothing to ingest: all {self.listed} objects in {self.source} "
                f"are already catalogued in '{self.collection}'."
            )
        return (
            f"Ingested {self.new} new item(s) into '{self.collection}' from {self.source} "
            f"in {self.seconds:.1f} s ({self.quarantined} quarantined, {self.duplicate} duplicate, "
            f"{self.unchanged} unchanged)."
        )

    def rows(self) -> list[tuple[str, str]]:
        values = [(name, str(getattr(self, name))) for name in COUNTS]
        return [*values, ("bytes", f"{self.bytes:,}"), ("seconds", f"{self.seconds:.2f}")]

    def markdown(self) -> str:
        lines = [f"# Ingest of `{self.collection}`", "", self.headline(), ""]
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {name} | {value} |" for name, value in self.rows()]
        if self.problems:
            lines += ["", "## Quarantined, changed or failed", "", "| key | what | reason |", "|---|---|---|"]
            lines += [f"| `{_md(k)}` | {kind} | {_md(r)} |" for k, kind, r in self.problems[:500]]
        return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def artifact_key(kind: str, collection: str) -> str:
    """A Prefect artifact key (lower case, digits and dashes) for a run over ``collection``."""
    return f"{kind}-{collection.lower().replace('_', '-').replace('.', '-')}"
