"""Calendar arithmetic and the as-of: month ends, leap days, and never the wall clock."""

from datetime import date, datetime, timezone

import pytest

from lethe.periods import Period, add_period, resolve_as_of, subtract_period, to_utc_naive


@pytest.mark.parametrize(
    "start, period, expected",
    [
        ("2024-02-29 00:00:00", "3 years", "2027-02-28 00:00:00"),  # leap day, clamped
        ("2024-02-29 13:45:10", "4 years", "2028-02-29 13:45:10"),  # leap day to leap day
        ("2025-01-31 00:00:00", "13 months", "2026-02-28 00:00:00"),  # month end, clamped
        ("2027-01-31 23:59:59", "13 months", "2028-02-29 23:59:59"),  # into a leap February
        ("2025-03-31 08:00:00", "1 month", "2025-04-30 08:00:00"),
        ("2025-12-31 00:00:00", "2 months", "2026-02-28 00:00:00"),
        ("2025-11-28 12:00:00", "90 days", "2026-02-26 12:00:00"),
        ("2026-11-26 00:00:00", "0 days", "2026-11-26 00:00:00"),
        ("2021-11-26 00:00:00", "5 years", "2026-11-26 00:00:00"),
        ("2025-12-31 23:59:59", "12 months", "2026-12-31 23:59:59"),
    ],
)
def test_add_period_clamps_to_month_end(start, period, expected):
    assert add_period(datetime.fromisoformat(start), Period.parse(period)) == datetime.fromisoformat(expected)


def test_period_parse_and_text():
    assert Period.parse("3 years") == Period(months=36)
    assert Period.parse("13 months") == Period(months=13)
    assert Period.parse("90 days") == Period(days=90)
    assert str(Period.parse("3 years")) == "3 years"
    assert str(Period.parse("13 months")) == "13 months"
    assert str(Period.parse("12 months")) == "12 months"
    assert str(Period.parse("5 years")) == "5 years"
    assert str(Period.parse("0 days")) == "0 days"
    for bad in ("3 weeks", "-1 days", "three years", ""):
        with pytest.raises(ValueError):
            Period.parse(bad)


def test_subtract_period_is_a_lower_bound_helper():
    assert subtract_period(datetime(2026, 2, 28), Period(months=13)) == datetime(2025, 1, 28)
    assert subtract_period(datetime(2026, 11, 26), Period(days=90)) == datetime(2026, 8, 28)


def test_as_of_param_wins_and_a_date_means_midnight_utc():
    end = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)
    assert resolve_as_of("2026-02-28", end, end, end) == datetime(2026, 2, 28)
    assert resolve_as_of("2026-02-28T10:00:00+01:00", end, None, None) == datetime(2026, 2, 28, 9)


def test_as_of_falls_back_to_the_runs_dates_not_the_wall_clock():
    end = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)
    logical = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
    after = datetime(2026, 11, 26, 2, 7, tzinfo=timezone.utc)
    assert resolve_as_of(None, end, logical, after) == datetime(2026, 11, 26, 2, 0)
    assert resolve_as_of("", None, logical, after) == datetime(2026, 11, 25, 2, 0)
    assert resolve_as_of(None, None, None, after) == datetime(2026, 11, 26, 2, 7)
    with pytest.raises(ValueError):
        resolve_as_of(None, None, None, None)


def test_to_utc_naive():
    assert to_utc_naive(date(2024, 2, 29)) == datetime(2024, 2, 29)
    assert to_utc_naive("2024-02-29T23:30:00Z") == datetime(2024, 2, 29, 23, 30)
    assert to_utc_naive(datetime(2024, 3, 1, 0, 30, tzinfo=timezone.utc)) == datetime(2024, 3, 1, 0, 30)
