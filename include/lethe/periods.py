"""Calendar periods and the as-of instant every decision is made from.

Periods are calendar periods: years and months move the calendar date and clamp to the last day
of the target month (3 years after 2024-02-29 is 2027-02-28; 13 months after 2025-01-31 is
2026-02-28), then days are added. The time of day is kept. This is the arithmetic PostgreSQL
and MariaDB apply to ``timestamp + interval``, so SQL and Python agree.

All instants are naive datetimes in UTC.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone

from pydantic import BaseModel, ConfigDict, model_validator

_PERIOD_RE = re.compile(r"^\s*(\d+)\s*(year|years|month|months|day|days)\s*$")


class Period(BaseModel):
    """A calendar period: ``months`` (years count as 12 months) then ``days``."""

    model_config = ConfigDict(frozen=True)

    months: int = 0
    days: int = 0

    @model_validator(mode="after")
    def _non_negative(self) -> "Period":
        if self.months < 0 or self.days < 0:
            raise ValueError("a period cannot be negative")
        return self

    @classmethod
    def parse(cls, text: str) -> "Period":
        """Parse ``"3 years"``, ``"13 months"``, ``"90 days"`` or ``"0 days"``."""
        match = _PERIOD_RE.match(str(text))
        if not match:
            raise ValueError(f"{text!r} is not a period like '3 years', '13 months' or '90 days'")
        amount, unit = int(match.group(1)), match.group(2)
        if unit.startswith("year"):
            return cls(months=12 * amount)
        if unit.startswith("month"):
            return cls(months=amount)
        return cls(days=amount)

    def __str__(self) -> str:
        parts = []
        if self.months:
            years, months = divmod(self.months, 12)
            # Whole years read as years from two on; 12 months stays "12 months", as policies say.
            if years >= 2 and not months:
                parts.append(f"{years} year{'s' * (years != 1)}")
            else:
                parts.append(f"{self.months} month{'s' * (self.months != 1)}")
        if self.days or not parts:
            parts.append(f"{self.days} day{'s' * (self.days != 1)}")
        return " ".join(parts)

    def __add__(self, other: "Period") -> "Period":
        return Period(months=self.months + other.months, days=self.days + other.days)


def add_months(moment: datetime, months: int) -> datetime:
    """Move ``moment`` by whole calendar months, clamping to the target month's last day."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def add_period(moment: datetime, period: Period) -> datetime:
    """``moment`` + ``period``: months first (clamped to month end), then days."""
    return add_months(moment, period.months) + timedelta(days=period.days)


def subtract_period(moment: datetime, period: Period) -> datetime:
    """``moment`` - ``period`` with the same clamping; only used for index-friendly bounds."""
    return add_months(moment - timedelta(days=period.days), -period.months)


def to_utc_naive(value: datetime | date | str) -> datetime:
    """Normalise a datetime, a date (00:00 UTC) or an ISO string to a naive UTC datetime."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty date")
        if len(text) == 10:
            value = date.fromisoformat(text)
        else:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise TypeError(f"cannot read {value!r} as a date")


def resolve_as_of(
    as_of_param: str | None,
    data_interval_end: datetime | None,
    logical_date: datetime | None,
    run_after: datetime | None,
) -> datetime:
    """The as-of instant of a run, never the wall clock.

    The ``as_of`` param wins (a bare date means 00:00 UTC); else the run's data interval end;
    else its logical date; else the time the run was scheduled for (``run_after``), which is
    fixed when the run is created, so a rerun of the same run decides the same.
    """
    for candidate in (as_of_param or None, data_interval_end, logical_date, run_after):
        if candidate:
            return to_utc_naive(candidate)
    raise ValueError("the run has no as-of: pass the as_of param")
