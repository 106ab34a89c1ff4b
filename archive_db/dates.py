"""Dates as archives write them ("c. 1925", "1890s", "1920-29", "early 20th century", "May 1936")
normalised to a range of years, for date searches and the decade facet. The text is kept as
written; a date this cannot read gets no range rather than a guessed one."""

from __future__ import annotations

import re

CIRCA_YEARS = 5  # "c. 1925" -> 1920..1930

_CIRCA = re.compile(r"^(?:circa|ca\.?|c\.?|about|approx\.?)\s*", re.I)
_UNCERTAIN = re.compile(r"\?$")
_YEAR = r"(1[0-9]{3}|20[0-9]{2})"
_RANGE = re.compile(rf"^{_YEAR}\s*(?:-|–|—|to|\.\.)\s*([0-9]{{2,4}})$", re.I)
_DECADE = re.compile(rf"^(?:(early|mid|late)[- ])?{_YEAR[:-1]}0)'?s$", re.I)
_CENTURY = re.compile(r"^(?:(early|mid|late)[- ])?([0-9]{1,2})(?:st|nd|rd|th) century$", re.I)
_ANY_YEAR = re.compile(rf"(?<![0-9]){_YEAR}(?![0-9])")


def normalise_date(text: str | None) -> tuple[int | None, int | None]:
    """The (first, last) year a written date covers, or (None, None) if it cannot be read."""
    if not text or not text.strip():
        return None, None
    s = _UNCERTAIN.sub("", text.strip()).strip()
    circa = bool(_CIRCA.match(s))
    s = _CIRCA.sub("", s).strip()
    if m := _RANGE.match(s):
        first, last = int(m.group(1)), m.group(2)
        last = int(last) if len(last) == 4 else int(m.group(1)[: 4 - len(last)] + last)
        return (first, last) if last >= first else (None, None)
    if m := _DECADE.match(s):
        start = int(m.group(2))
        return _part(m.group(1), start, 10)
    if m := _CENTURY.match(s):
        start = (int(m.group(2)) - 1) * 100
        return _part(m.group(1), start, 100)
    years = [int(y) for y in _ANY_YEAR.findall(s)]
    if len(years) == 1 and _only_date_words(s):
        year = years[0]
        return (year - CIRCA_YEARS, year + CIRCA_YEARS) if circa else (year, year)
    return None, None


def _part(which: str | None, start: int, span: int) -> tuple[int, int]:
    """The whole span, or its early/mid/late third."""
    third = span // 3
    if not which:
        return start, start + span - 1
    offset = {"early": 0, "mid": third, "late": span - third - 1}[which.lower()]
    return start + offset, start + offset + third


_DATE_WORDS = re.compile(
    r"^[0-9\s,./-]*(?:(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|spring|summer|autumn|fall|winter)"
    r"[a-z]*\.?[0-9\s,./-]*)?$",
    re.I,
)


def _only_date_words(s: str) -> bool:
    """'1936', 'May 1936', '12 May 1936', '1936-05-12': a year with a month or day, nothing else."""
    return bool(_DATE_WORDS.match(s))


def parse_year_range(text: str) -> tuple[int | None, int | None]:
    """A search filter: '1920..1929', '1920..', '..1950', '1925' or '1920s'."""
    s = text.strip()
    if ".." in s:
        lo, _, hi = s.partition("..")
        return _year_or_none(lo), _year_or_none(hi)
    first, last = normalise_date(s)
    if first is None:
        raise ValueError(f"not a year range: {text!r} (use 1920..1929, 1920.., ..1950, 1925 or 1920s)")
    return first, last


def _year_or_none(s: str) -> int | None:
    s = s.strip()
    if not s:
        return None
    if not s.isdigit():
        raise ValueError(f"not a year: {s!r}")
    return int(s)
