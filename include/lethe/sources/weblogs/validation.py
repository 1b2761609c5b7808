"""The checks around a log-folder rule (L1 ``truncate_ip``, L2 ``delete_file``), on a listing.

**The listing** (:func:`listing`): one row per regular file of the folder whose name matches the
inventory's ``file_pattern`` (the files the rule can touch): its name, the date in the name (None
when it is no real date), whether it is gzip-compressed and, for the gzip files the rule would
read tonight, whether they decompress to their end. Names, dates and flags only: no file
contents, no address ever goes into it, and it stays in the task (GX's results hold counts).

**Before the rule** (:func:`before_suite`), a Great Expectations suite on the listing, one
expectation per :class:`Reason` a file is quarantined for:

* ``date_unparseable``: the name matches but holds no real date (``access.log-20261399``);
* ``date_in_future``: its date is after the as-of plus ``validation.future_tolerance`` (a clock
  or a rename gone wrong, not a deadline far away);
* ``gzip_corrupt`` (L1 only): a gzip file L1 would rewrite tonight does not open or decompress to
  its end (cut short, not gzip). It is streamed to the end once (memory flat) and only for the
  files L1 would rewrite this run: files already anonymised, not yet due or left to L2 are not
  read. L2 deletes whole files and never reads them, so it does not check them: a damaged file
  past its deletion date is deleted all the same.

A quarantined file is left alone by the rule this run (not in its work items, not counted as
remaining) and reported. The rule's exclusion and the suite's counts come from the same rows and
the same :class:`Reason`: each pairs its GX expectation with the same test on one row. A file
with no real date or a future one is never due anyway; the checks make it visible instead of
silently never touched. ``Suite.tables`` is ``{"files": rows}``, the share's denominator.

**After the rule** (:func:`after_suite`): every listed file with its state now, and the
expectation that none is ``remaining`` (due for the rule, neither done nor quarantined); its
unexpected count is the number of files still to do.

**Samples**: a file has no data subject, so :func:`quarantine_samples` gives none (the report's
samples are subject keys). The quarantined files' names, not personal data, are in the rule's
result (``extra["quarantined_files"]``, a few per reason) and in the scan's task log.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import stat
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from lethe.files import CHUNK_SIZE
from lethe.periods import add_period
from lethe.validation import AFTER, BEFORE, SAMPLE, Expect, FrameData, Suite

log = logging.getLogger("lethe")

TABLE = "files"  # what the share of quarantined rows is a share of
FILE, DATE, GZIP, OPENS, STATE = "file", "date", "gzip", "gzip_opens", "state"
COLUMNS = (FILE, DATE, GZIP, OPENS)
REMAINING, QUARANTINED, SETTLED = "remaining", "quarantined", "settled"


def file_date(match: re.Match[str]) -> datetime | None:
    """The date group of a matching name, 00:00 UTC; None when it is no real date."""
    try:
        return datetime.strptime(match.group("date"), "%Y%m%d")
    except ValueError:
        return None


def gzip_opens(path: Path) -> bool | None:
    """Whether a gzip file opens and decompresses to its end, read as the rewrite reads it
    (streamed, a chunk at a time). None: it is gone (deleted since the listing)."""
    try:
        with gzip.open(path, "rb") as handle:
            while handle.read(CHUNK_SIZE):
                pass
    except FileNotFoundError:
        return None
    except (gzip.BadGzipFile, EOFError, zlib.error):
        return False
    return True


def future_limit(action) -> datetime:
    """The latest file date that is not in the future: the as-of plus the tolerance."""
    return add_period(action.ctx.as_of, action.ctx.policy.validation.future_tolerance)


@dataclass(frozen=True)
class Reason:
    """Why a file is quarantined: the expectation on the listing, and ``fails``, the same test
    on one row of it (what the rule keeps out)."""

    expect: Expect
    fails: Callable[[dict[str, Any]], bool]

    @property
    def name(self) -> str:
        return self.expect.reason or ""


def reasons(action) -> list[Reason]:
    """The checks of ``action``'s files (see the module's docs)."""
    limit = future_limit(action)
    found = [
        Reason(
            Expect(
                "ExpectColumnValuesToNotBeNull",
                {"column": DATE},
                reason="date_unparseable",
                table=TABLE,
                fix="rename the files whose name holds no real date (YYYYMMDD) to the day of their lines",
            ),
            lambda row: row[DATE] is None,
        ),
        Reason(
            Expect(
                "ExpectColumnValuesToBeBetween",
                {"column": DATE, "max_value": limit},
                reason="date_in_future",
                table=TABLE,
                fix="correct the names dated in the future (or the clock of the server that rotates the logs)",
            ),
            lambda row: row[DATE] is not None and row[DATE] > limit,
        ),
    ]
    if action.reads_files:
        found.append(
            Reason(
                Expect(
                    "ExpectColumnValuesToBeInSet",
                    {"column": OPENS, "value_set": [True]},
                    reason="gzip_corrupt",
                    table=TABLE,
                    fix="restore the damaged gzip files from a backup, or compress again what of them can be "
                    "read; the rule rewrites them on its next run",
                ),
                lambda row: row[OPENS] is False,
            )
        )
    return found


@dataclass
class Listing:
    """The folder's files as the checks see them; ``quarantine``: file name -> its first reason."""

    rows: list[dict[str, Any]]
    quarantine: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Quarantined files per reason."""
        found: dict[str, int] = {}
        for reason in self.quarantine.values():
            found[reason] = found.get(reason, 0) + 1
        return found

    def names(self, limit: int = SAMPLE) -> dict[str, list[str]]:
        """A few quarantined file names per reason (names are not personal data)."""
        found: dict[str, list[str]] = {}
        for name, reason in sorted(self.quarantine.items()):
            if len(found.setdefault(reason, [])) < limit:
                found[reason].append(name)
        return found


def listing(action, read: Iterable[Any] = ()) -> Listing:
    """Every regular file matching the pattern, checked; ``read``: the files (``LogFile``) the
    rule would read tonight, whose gzip stream is checked to the end."""
    folder, pattern = action.folder, action.pattern
    to_read = {f.name for f in read if f.gz}
    rows = []
    for name in sorted(os.listdir(folder)):
        match = pattern.match(name)
        if not match:
            continue
        path = folder / name
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue  # symlinks, folders: never touched, not the rule's data
        except FileNotFoundError:
            continue
        groups = match.groupdict()
        gz = bool(groups["gz"]) if "gz" in groups else name.endswith(".gz")
        rows.append(
            {FILE: name, DATE: file_date(match), GZIP: gz, OPENS: gzip_opens(path) if name in to_read else None}
        )
    checks = reasons(action)
    quarantine = {}
    for row in rows:
        failing = next((reason.name for reason in checks if reason.fails(row)), None)
        if failing:
            quarantine[row[FILE]] = failing
    return Listing(rows, quarantine)


def before_suite(action, found: Listing) -> Suite:
    """The checks before a log-folder rule acts, on ``found`` (see the module's docs)."""
    return Suite(
        name=f"{action.policy_rule.id}.{BEFORE}",
        data=FrameData(TABLE, found.rows, COLUMNS),
        expectations=[reason.expect for reason in reasons(action)],
        tables={TABLE: len(found.rows)},
    )


def after_suite(action, found: Listing, remaining: Iterable[str]) -> Suite:
    """The check after a log-folder rule: no file ``remaining`` (due for it, neither done nor
    quarantined). Every listed file is a row, with its state."""
    left = set(remaining)
    rows = [
        {
            FILE: row[FILE],
            STATE: REMAINING if row[FILE] in left else QUARANTINED if row[FILE] in found.quarantine else SETTLED,
        }
        for row in found.rows
    ]
    rule_id = action.policy_rule.id
    return Suite(
        name=f"{rule_id}.{AFTER}",
        data=FrameData(TABLE, rows, (FILE, STATE)),
        expectations=[
            Expect(
                "ExpectColumnValuesToNotBeInSet",
                {
                    "column": STATE,
                    "value_set": [REMAINING],
                    "description": f"no file due under {rule_id} at the as-of remains (quarantined files apart)",
                },
                fix=f"files due under {rule_id} remain: see the rule's enforce task log",
            )
        ],
    )


def quarantine_samples(action, reasons: dict[str, int]) -> dict[str, list[str]]:
    """None: a file has no data subject (its names are in the rule's result instead)."""
    return {}


def report_quarantine(action, result, found: Listing) -> None:
    """Put ``found``'s quarantine into a scan's result and the task log (names, reasons)."""
    result.quarantined = len(found.quarantine)
    result.quarantine = found.counts()
    if found.quarantine:
        result.extra["quarantined_files"] = found.names()
    fixes = {reason.name: reason.expect.fix for reason in reasons(action)}
    for name, reason in sorted(found.quarantine.items()):
        log.warning(
            "%s %s: quarantined (%s), not touched this run: %s", action.policy_rule.id, name, reason, fixes[reason]
        )
