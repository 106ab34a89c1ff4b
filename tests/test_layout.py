"""The code's layout rules (ARCHITECTURE.md, "Inside flows/"), checked the way a reviewer would."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sql_lives_in_archive_db_not_in_flows():
    """Queries and writes are archive_db's: flows/ calls them and builds no SQL of its own."""
    offenders = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted((ROOT / "flows").rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bselect\(|from sqlalchemy import .*\b(select|insert|update|delete)\b", line)
    ]
    assert sorted((ROOT / "flows").rglob("*.py")), "flows/ not found"
    assert offenders == []
