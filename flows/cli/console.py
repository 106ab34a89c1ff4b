"""Rich rendering for the CLI: progress bars and tables."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

# Piped output is read by people and scripts alike: do not squeeze tables into 80 columns.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


class RichReporter:
    """A progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not sys.stderr.isatty(),
        )
        self.task = None

    def __enter__(self) -> RichReporter:
        self.bar.start()
        # Until the flow reports, the wait is Prefect starting (seconds for an in-process server).
        self.task = self.bar.add_task("starting the Prefect engine", total=None)
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def start(self, description: str, total: int | None) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(description, total=total)

    def grow(self, n: int) -> None:
        if self.task is not None:
            total = next((t.total for t in self.bar.tasks if t.id == self.task), None)
            self.bar.update(self.task, total=(total or 0) + n)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.bar.advance(self.task, n)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, overflow="fold", no_wrap=i == 0)
    for row in rows:  # values come from scans and users: never read as Rich markup
        t.add_row(*("" if v is None else escape(str(v)) for v in row))
    return t


def summary_table(title: str, rows: list[tuple[str, str]]) -> Table:
    """A run summary's rows (measure, value) as a table."""
    return table(title, ["measure", "value"], [list(r) for r in rows])


def print_outcome(title: str, summary, without_source: str = "") -> int:
    """A derivative run's summary (``flows.derive.dispatch.DeriveSummary``): its table, the first
    failures, ``without_source`` (what items without a source version should do) where there are
    any, and the headline. Returns the exit status: 1 if any item failed or was not done."""
    out.print(summary_table(title, summary.rows()))
    for key, reason in summary.problems[:50]:
        out.print(f"  failed {key}: {reason}", markup=False, highlight=False)
    if summary.without_source:
        out.print(f"  {summary.without_source} item(s) {without_source}", markup=False, highlight=False)
    out.print(summary.headline(), markup=False, highlight=False)
    return 1 if summary.failed or summary.not_done else 0


def key_values(values: tuple[str, ...]) -> dict[str, str]:
    """``--param key=value`` pairs (typed and checked by what takes them)."""
    import click

    found = {}
    for value in values:
        key, eq, v = value.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{value!r} is not key=value", param_hint="--param")
        found[key] = v
    return found


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def each_file(inputs, verb: str, work) -> int:
    """Run ``work(path) -> output path`` on each input, one line each; a failure is reported in
    one line and the rest go on. Returns the exit status: 1 if any failed."""
    from pathlib import Path

    failed = 0
    for name in inputs:
        try:
            written = work(Path(name))
        except Exception as exc:  # one line per unreadable input; the rest go on
            failed += 1
            err.print(
                f"failed {name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                markup=False,
            )
            continue
        out.print(f"{verb} {name} -> {written}", markup=False, highlight=False)
    return 1 if failed else 0
