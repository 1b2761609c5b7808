"""Rules over a folder of daily web server access logs: L1 truncates IP addresses, L2 deletes files.

The folder is the path of an ``fs`` connection (``RunContext.folder_for``). Only regular files
whose name matches the inventory's ``file_pattern`` are ever looked at; the pattern's ``date``
group (``YYYYMMDD``) is the file's date, taken as 00:00 UTC, and its ``gz`` group says the file
is gzip-compressed. Everything else in the folder (the live ``access.log``, other logs, symlinks,
Lethe's own temporary files) is never touched.

**Deadlines** (calendar periods, :mod:`lethe.periods`): ``truncate_ip`` (L1) is due when
date + period <= as-of; ``delete_file`` (L2) likewise with its own period. The policy's trigger
for L1 is the log line's time; a daily file holds the lines of the day in its name, so its date
is its earliest line time and a file rewritten once its date is due is late for none of its
lines (where rotation names a file after the day it was rotated, its lines are from the day
before: configure the period one day shorter). A file due for a ``delete_file`` rule of the
same source is left to that rule: L1 never rewrites a file that L2 deletes in the same run (both
decide from the same as-of), so the two rules' work lists are disjoint and an L1 rename can never
bring back a file L2 has just deleted. **Overdue** (``overdue_before``): files still holding
what the rule removes after its ``overdue_period`` (the period plus the night that should have
acted), counted at the start of the run; for L1 this includes files left to L2.

**Rewrite** (L1), one file at a time, streamed: the file is read (``gzip`` when compressed),
every line goes through :class:`lethe.weblogs.anonymizer.IpMasker` (anonip 1.1.0 semantics;
lines without an address are kept byte for byte) into ``.<name>.lethe-tmp`` in the same folder
(a name the pattern never matches), compressed again when the original was; the temporary file
is fsynced, given the original's mode bits (and owner, when allowed), and renamed over the
original, then the folder is fsynced. A crash leaves the old file or the new one, never part of
one; a left-over temporary file is removed by the next run.

**Record, two-phase**: the audit store is another database than the folder, so each rewrite
appends an ``ip_truncate_intent`` entry (file name, SHA-256 before and after, counts) before the
rename and an ``ip_truncated`` entry after it. A file counts as anonymised when its current
SHA-256 is the after-hash of an ``ip_truncated`` entry for its name; when it is only the
after-hash of an intent (a crash between rename and record), the missing ``ip_truncated``
entry is written by the next run (``records_recovered``). A file that has an ``ip_truncated``
entry but another hash was changed since: it is anonymised again and reported as
``changed_since_anonymised``. To spare re-reading large files every night, the ``ip_truncated``
entry also keeps the file's stat fingerprint (device, inode, size, mtime and ctime in ns); when
all of these are unchanged the file is known unchanged without hashing (any write changes the
ctime, which cannot be set back). Deletion (L2) is recorded the same way
(``file_delete_intent``, then ``file_deleted``).

**Checks** (:mod:`lethe.sources.weblogs.validation`): before the rule, a file whose name holds
no real date or a future one, or (L1) a gzip file it would rewrite that does not decompress to
its end, is quarantined: not touched this run, not counted as remaining, reported by name.

A **dry run** reads each due file through the masker to count what would change, writes
nothing to the folder and records ``would_...`` entries (``dry_run`` set) that no later run
takes for work done.

Audit entries name the file by a keyed hash (``keyed_hash(key, "file", name)``); their details
hold the file name, dates, counts and hashes: never an address or a line of the log.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Iterable

from sqlalchemy import false

from lethe import files
from lethe.audit import AuditEntry, audit_table
from lethe.errors import ConfigError, FileChangedError, FolderMissing
from lethe.files import CHUNK_SIZE, HashingReader, HashingWriter, atomic_rewrite, fingerprint, sha256_file
from lethe.intent import TwoStep
from lethe.periods import Period, add_period
from lethe.sources.base import MappedAction, RuleResult, register
from lethe.sources.weblogs import validation
from lethe.sources.weblogs.models import LogFolderSource, LogRule
from lethe.subjects import keyed_hash
from lethe.weblogs.anonymizer import AnonymiseStats, IpMasker, anonymise_stream

log = logging.getLogger("lethe")

GZIP_LEVEL = 6  # what gzip(1) and logrotate use by default
TEMP_SUFFIX = ".lethe-tmp"

TRUNCATE = TwoStep(intent="ip_truncate_intent", done="ip_truncated")
DELETE = TwoStep(intent="file_delete_intent", done="file_deleted")
INTENT_TRUNCATE, DONE_TRUNCATE = TRUNCATE.actions
INTENT_DELETE, DONE_DELETE = DELETE.actions
RECORD_ACTIONS = (*TRUNCATE.actions, *DELETE.actions)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class LogFile:
    name: str
    path: Path
    date: datetime  # the day in the name, 00:00 UTC
    gz: bool


def temp_name(name: str) -> str:
    """The temporary file a rewrite of ``name`` writes (hidden, never matched by the pattern)."""
    return f".{name}{TEMP_SUFFIX}"


def log_file(folder: Path, name: str, pattern: re.Pattern[str]) -> LogFile | None:
    """The log file ``name`` in ``folder``: None unless it is a regular file (not a symlink)
    whose name matches the pattern and holds a real date."""
    match = pattern.match(name)
    if not match or "/" in name or name in (".", ".."):
        return None
    path = folder / name
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(mode):
        log.warning("%s: not a regular file (a symlink, a folder...): never touched", name)
        return None
    day = validation.file_date(match)
    if day is None:
        log.warning("%s: the name holds no valid date: never touched", name)
        return None
    groups = match.groupdict()
    gz = bool(groups["gz"]) if "gz" in groups else name.endswith(".gz")
    return LogFile(name, path, day, gz)


def list_log_files(folder: Path, pattern: re.Pattern[str]) -> list[LogFile]:
    """Regular files whose name matches the pattern and names a real date, oldest first."""
    found = [log_file(folder, name, pattern) for name in os.listdir(folder) if pattern.match(name)]
    return sorted((f for f in found if f is not None), key=lambda f: (f.date, f.name))


def _anonymise_file(
    src_path: Path, gz: bool, out_raw, masker: IpMasker, name: str, gzip_mtime: int
) -> tuple[AnonymiseStats, str, str, int]:
    """Stream ``src_path`` through the masker into ``out_raw`` (None: count only).

    Returns the counts, the SHA-256 of the file read and of the bytes written, and the size written.
    """
    with open(src_path, "rb") as raw_in:
        reader = HashingReader(raw_in)
        writer = HashingWriter(out_raw)
        if gz:
            with (
                gzip.GzipFile(fileobj=reader, mode="rb") as src,
                gzip.GzipFile(
                    filename=name, mode="wb", fileobj=writer, compresslevel=GZIP_LEVEL, mtime=gzip_mtime
                ) as dst,
            ):
                stats = anonymise_stream(src, dst, masker, chunk_size=CHUNK_SIZE)
        else:
            stats = anonymise_stream(reader, writer, masker, chunk_size=CHUNK_SIZE)
        reader.drain()
    return stats, reader.digest.hexdigest(), writer.digest.hexdigest(), writer.size


# --------------------------------------------------------------------------- the audit records


@dataclass
class FileRecords:
    """What the audit trail says was done to one file name (real runs only, in chain order)."""

    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (action, details)

    @classmethod
    def empty(cls) -> "FileRecords":
        return cls()

    def of(self, action: str) -> list[dict[str, Any]]:
        return [details for a, details in self.entries if a == action]

    @property
    def truncated(self) -> list[dict[str, Any]]:
        return self.of(DONE_TRUNCATE)

    @property
    def truncate_intents(self) -> list[dict[str, Any]]:
        return self.of(INTENT_TRUNCATE)

    def pending_truncations(self) -> list[dict[str, Any]]:
        """Rewrites renamed into place (maybe) whose done entry is missing, by the hash they wrote."""
        return list(TRUNCATE.open_intents(self.entries, key=lambda d: d.get("sha256_after")).values())

    def pending_deletions(self) -> list[dict[str, Any]]:
        return list(DELETE.open_intents(self.entries, key=lambda d: d.get("sha256")).values())


@dataclass
class TruncationState:
    """Whether a file's current content is the anonymised content recorded for its name."""

    state: str  # "done", "recover" (rename happened, record missing), "changed", "new"
    sha256: str | None = None  # None when the stat fingerprint sufficed
    intent: dict[str, Any] | None = None

    @property
    def anonymised(self) -> bool:
        return self.state in ("done", "recover")


def truncation_state(file: LogFile, records: FileRecords) -> TruncationState:
    current = fingerprint(file.path)
    for done in records.truncated:
        if done.get("fingerprint") == current:
            return TruncationState("done", done.get("sha256_after"))
    sha = sha256_file(file.path)
    if any(done.get("sha256_after") == sha for done in records.truncated):
        return TruncationState("done", sha)
    for intent in records.pending_truncations():
        if intent.get("sha256_after") == sha:
            return TruncationState("recover", sha, intent)
    return TruncationState("changed" if records.truncated else "new", sha)


# --------------------------------------------------------------------------- the actions


class LogFolderRule(MappedAction):
    """Shared plumbing of the log-folder actions: files, deadlines, audit records."""

    source_kind = "log_folder"
    source: LogFolderSource
    rule: LogRule
    # Whether the rule reads the files' contents (then its gzip files are checked first).
    reads_files: ClassVar[bool] = False

    def __init__(self, ctx, policy_rule):
        super().__init__(ctx, policy_rule)
        try:
            self.pattern = re.compile(self.source.file_pattern)
        except re.error as exc:
            raise ConfigError(f"source {self.source.source}: file_pattern is not a regular expression: {exc}") from None

    # ------------------------------------------------------------------ plumbing

    @property
    def folder(self) -> Path:
        return self.connection

    def check(self) -> None:
        if "date" not in self.pattern.groupindex:
            raise ConfigError(f"source {self.source.source}: file_pattern needs a (?P<date>YYYYMMDD) group")
        folder = self.folder
        if not folder.is_dir():
            raise FolderMissing(
                f"source {self.source.source}: folder of connection {self.source.connection_id!r} "
                f"is not a directory: {folder}. Nothing was changed."
            )

    def check_summary(self) -> str:
        return f"log folder {self.folder} exists ({len(self.files())} log file(s) match the pattern)"

    def files(self) -> list[LogFile]:
        return list_log_files(self.folder, self.pattern)

    # ------------------------------------------------------------------ the checks (validation.py)

    def checked(self) -> tuple[validation.Listing, list[str]]:
        """The folder's listing, checked, and the names of the files the rule still acts on."""
        raise NotImplementedError

    def before_suite(self):
        return validation.before_suite(self, self.checked()[0])

    def after_suite(self):
        return validation.after_suite(self, *self.checked())

    def quarantine_samples(self, reasons: dict[str, int]) -> dict[str, list[str]]:
        return validation.quarantine_samples(self, reasons)

    def file(self, name: str) -> LogFile | None:
        """One work item's file, looked up again (it may have gone since the listing)."""
        if not isinstance(name, str) or not self.pattern.match(name) or "/" in name or name in (".", ".."):
            raise ValueError("not a log file name of this source")
        return log_file(self.folder, name, self.pattern)

    def due(self, file: LogFile, period: Period) -> bool:
        return add_period(file.date, period) <= self.ctx.as_of

    def deletion_periods(self) -> list[Period]:
        """Periods of the source's delete_file rules (a file due for one is left to it)."""
        return [self.ctx.policy.rule(r.rule).period for r in self.source.rules if r.action == "delete_file"]

    def due_for_deletion(self, file: LogFile) -> bool:
        return any(self.due(file, period) for period in self.deletion_periods())

    def subject(self, name: str) -> str:
        return keyed_hash(self.ctx.key, "file", name)

    def records(
        self, names: Iterable[str] | None = None, actions: Iterable[str] = RECORD_ACTIONS
    ) -> dict[str, FileRecords]:
        """The real (not dry-run) file records of this source, by file name."""
        conditions = [
            audit_table.c.source == self.source.source,
            audit_table.c.action.in_(list(actions)),
            audit_table.c.dry_run == false(),
        ]
        by_key: dict[str, str] | None = None
        if names is not None:
            by_key = {self.subject(n): n for n in names}
            conditions.append(audit_table.c.subject_key.in_(sorted(by_key)))
        found: dict[str, FileRecords] = {}
        for row in self.ctx.audit.entries(*conditions):
            details = json.loads(row["details"])
            name = details.get("file")
            if not name or (by_key is not None and by_key.get(row["subject_key"]) != name):
                continue
            found.setdefault(name, FileRecords.empty()).entries.append((row["action"], details))
        return found

    def entry(self, action: str, name: str, details: dict[str, Any]) -> AuditEntry:
        """One file's audit entry: keyed by a hash of its name; names, counts and hashes only."""
        return self.audit_entry(action, self.subject(name), 1, {"file": name, **details})

    def entry_for(self, name: str):
        """The entry maker of one file, for a two-step record (:mod:`lethe.intent`)."""
        return lambda action, details: self.entry(action, name, details)

    summary_fields = ("eligible", "deleted", "anonymised", "overdue_before", "quarantined", "quarantine", "before")

    @staticmethod
    def _item(file: LogFile, **more: Any) -> dict[str, Any]:
        return {"name": file.name, "date": file.date.date().isoformat(), **more}


@register
class TruncateIp(LogFolderRule):
    """L1: rewrite each due log file with every client address truncated (anonip semantics)."""

    name = "truncate_ip"
    done_actions = (DONE_TRUNCATE,)
    reads_files = True

    def masker(self) -> IpMasker:
        return IpMasker(ipv4_mask=self.rule.ipv4_mask, ipv6_mask=self.rule.ipv6_mask)

    def _survey(self) -> dict[str, Any]:
        """Every file due for this rule, sorted into what happens to it (reads, never writes).

        The files it would rewrite are checked first: those failing a check are quarantined
        (``listing``), neither rewritten nor counted as to do or overdue."""
        due = [f for f in self.files() if self.due(f, self.policy_rule.period)]
        records = self.records(f.name for f in due) if due else {}
        survey: dict[str, Any] = {
            "todo": [],
            "done": [],
            "recover": [],
            "left_for_deletion": [],
        }
        overdue = []
        for file in due:
            try:
                state = truncation_state(file, records.get(file.name, FileRecords.empty()))
            except FileNotFoundError:
                continue  # deleted since the listing (L2 runs beside L1)
            if not state.anonymised and self.due(file, self.policy_rule.overdue_period):
                overdue.append(file.name)
            if self.due_for_deletion(file):
                if not state.anonymised:
                    survey["left_for_deletion"].append(file)
                continue
            if state.state == "recover":
                survey["recover"].append((file, state))
            elif state.anonymised:
                survey["done"].append(file)
            else:
                survey["todo"].append((file, state))
        found = survey["listing"] = validation.listing(self, [f for f, _ in survey["todo"]])
        survey["todo"] = [(f, s) for f, s in survey["todo"] if f.name not in found.quarantine]
        survey["overdue"] = sum(name not in found.quarantine for name in overdue)
        survey["changed"] = sum(s.state == "changed" for _, s in survey["todo"])
        return survey

    def checked(self) -> tuple[validation.Listing, list[str]]:
        survey = self._survey()
        return survey["listing"], [f.name for f, _ in survey["todo"]]

    def scan(self) -> RuleResult:
        result = self.new_result()
        survey = self._survey()
        result.eligible = len(survey["todo"])
        result.overdue_before = survey["overdue"]
        result.extra = {
            "files_skipped_done": len(survey["done"]) + len(survey["recover"]),
            "changed_since_anonymised": survey["changed"],
            "files_left_for_deletion": len(survey["left_for_deletion"]),
        }
        validation.report_quarantine(self, result, survey["listing"])
        return result

    def work_items(self) -> list[dict[str, Any]]:
        return [self._item(f, changed_since_anonymised=s.state == "changed") for f, s in self._survey()["todo"]]

    def verify(self) -> int:
        return len(self._survey()["todo"])

    def enforce_item(self, item: dict[str, Any]) -> dict[str, Any]:
        file = self.file(item["name"])
        out: dict[str, Any] = {
            "name": item["name"],
            "lines": 0,
            "addresses_truncated": 0,
            "unparseable_lines": 0,
            "changed_since_anonymised": False,
        }
        if file is None:
            log.warning(
                "%s %s: the file is gone (deleted since the listing): nothing to do", self.policy_rule.id, item["name"]
            )
            return {**out, "outcome": "missing"}
        if not self.due(file, self.policy_rule.period) or self.due_for_deletion(file):
            log.warning(
                "%s %s: not this rule's to rewrite as of %s: left unchanged",
                self.policy_rule.id,
                file.name,
                self.ctx.as_of.isoformat(),
            )
            return {**out, "outcome": "not_due"}
        records = self.records([file.name]).get(file.name, FileRecords.empty())
        state = truncation_state(file, records)
        if state.state == "recover":
            if not self.ctx.dry_run:
                self._record_recovered(file, state)
            return {**out, "outcome": "skipped_done", "recovered": not self.ctx.dry_run}
        if state.anonymised:
            log.info(
                "%s %s: already anonymised (hash matches the audit record): skipped", self.policy_rule.id, file.name
            )
            return {**out, "outcome": "skipped_done"}
        out["changed_since_anonymised"] = state.state == "changed"
        if self.ctx.dry_run:
            stats, before, _after, _size = _anonymise_file(file.path, file.gz, None, self.masker(), file.name, 0)
            details = self._details(file, stats, before, None)
            self.ctx.audit.append([self.entry("would_" + DONE_TRUNCATE, file.name, details)])
            outcome = "would_anonymise"
        else:
            stats = self.rewrite(file, changed=out["changed_since_anonymised"])
            outcome = "anonymised"
        log.info(
            "%s %s: %s%d lines, %d addresses truncated, %d unparseable lines kept unchanged%s%s",
            self.policy_rule.id,
            file.name,
            "" if outcome == "anonymised" else "would anonymise: ",
            stats.lines,
            stats.addresses_truncated,
            stats.unparseable_lines,
            " (changed since it was anonymised)" if out["changed_since_anonymised"] else "",
            " - dry run, nothing changed" if self.ctx.dry_run else "",
        )
        return {
            **out,
            "outcome": outcome,
            "lines": stats.lines,
            "addresses_truncated": stats.addresses_truncated,
            "unparseable_lines": stats.unparseable_lines,
        }

    def _details(
        self, file: LogFile, stats: AnonymiseStats, before: str, after: str | None, **more: Any
    ) -> dict[str, Any]:
        details = {
            "date": file.date.date().isoformat(),
            "gzip": file.gz,
            "lines": stats.lines,
            "addresses_truncated": stats.addresses_truncated,
            "unparseable_lines": stats.unparseable_lines,
            "sha256_before": before,
            "ipv4_mask": self.rule.ipv4_mask,
            "ipv6_mask": self.rule.ipv6_mask,
        }
        if after is not None:
            details["sha256_after"] = after
        details.update(more)
        return details

    def rewrite(self, file: LogFile, *, changed: bool = False) -> AnonymiseStats:
        """Anonymise one file in place, atomically, with the two-phase audit record."""
        tmp = file.path.with_name(temp_name(file.name))
        if self.pattern.match(tmp.name):
            raise ConfigError(
                f"source {self.source.source}: file_pattern matches the temporary name "
                f"{tmp.name!r}; refusing to write it"
            )
        before_stat = os.stat(file.path, follow_symlinks=False)
        with atomic_rewrite(file.path, tmp) as new:
            stats, before, after, size = _anonymise_file(
                file.path, file.gz, new.raw, self.masker(), file.name, int(before_stat.st_mtime)
            )
            new.close(before_stat.st_mode & 0o7777, owner=(before_stat.st_uid, before_stat.st_gid))
            now = os.stat(file.path, follow_symlinks=False)
            if (now.st_ino, now.st_size, now.st_mtime_ns) != (
                before_stat.st_ino,
                before_stat.st_size,
                before_stat.st_mtime_ns,
            ):
                raise FileChangedError(
                    f"{file.name} changed while it was being anonymised; left as it is (the next attempt redoes it)"
                )
            details = self._details(
                file,
                stats,
                before,
                after,
                bytes_before=before_stat.st_size,
                bytes_after=size,
                changed_since_anonymised=changed,
            )
            TRUNCATE.begin(self.ctx.audit, self.entry_for(file.name), details)
            new.replace()
        TRUNCATE.finish(self.ctx.audit, self.entry_for(file.name), {**details, "fingerprint": fingerprint(file.path)})
        return stats

    def _record_recovered(self, file: LogFile, state: TruncationState) -> None:
        details = {k: v for k, v in (state.intent or {}).items() if k != "file"}
        TRUNCATE.recover(self.ctx.audit, self.entry_for(file.name), {**details, "fingerprint": fingerprint(file.path)})
        log.warning(
            "%s %s: the file was anonymised by a run that stopped before recording it: record completed",
            self.policy_rule.id,
            file.name,
        )

    def combine(self, scanned: RuleResult, item_results: list[dict[str, Any]]) -> RuleResult:
        result = RuleResult.from_dict(scanned.to_dict())
        extra = dict(result.extra)
        processed = [r for r in item_results if r.get("outcome") in ("anonymised", "would_anonymise")]
        result.anonymised = len(processed)
        extra["files_skipped_done"] = extra.get("files_skipped_done", 0) + sum(
            r.get("outcome") == "skipped_done" for r in item_results
        )
        for key in ("lines", "addresses_truncated", "unparseable_lines"):
            extra[key] = sum(int(r.get(key) or 0) for r in processed)
        extra["changed_since_anonymised"] = sum(bool(r.get("changed_since_anonymised")) for r in processed)
        missing = sum(r.get("outcome") == "missing" for r in item_results)
        if missing:
            extra["files_gone_before_processing"] = missing
        if not self.ctx.dry_run:
            recovered = sum(bool(r.get("recovered")) for r in item_results)
            survey = self._survey()
            for file, state in survey["recover"]:
                self._record_recovered(file, state)
                recovered += 1
            if recovered:
                extra["records_recovered"] = recovered
            stale = self._remove_stale_temp_files()
            if stale:
                extra["stale_temp_files_removed"] = stale
        result.extra = extra
        self.ctx.audit.append([self.summary_entry(result)])
        return result

    def _remove_stale_temp_files(self) -> int:
        """Temporary files a killed rewrite left (every rewrite of this rule has finished by now)."""
        removed = 0
        with os.scandir(self.folder) as entries:
            for entry in entries:
                name = entry.name
                if (
                    name.startswith(".")
                    and name.endswith(TEMP_SUFFIX)
                    and self.pattern.match(name[1 : -len(TEMP_SUFFIX)])
                    and entry.is_file(follow_symlinks=False)
                ):
                    removed += files.unlink_quietly(Path(entry.path))
        return removed


@register
class DeleteFile(LogFolderRule):
    """L2: delete each log file whose date + period is past (anonymised or not)."""

    name = "delete_file"
    done_actions = (DONE_DELETE,)

    def _due(self) -> tuple[list[LogFile], validation.Listing]:
        """The files due for deletion, quarantined ones apart, and the checked listing."""
        found = validation.listing(self)
        due = [f for f in self.files() if self.due(f, self.policy_rule.period) and f.name not in found.quarantine]
        return due, found

    def due_files(self) -> list[LogFile]:
        return self._due()[0]

    def checked(self) -> tuple[validation.Listing, list[str]]:
        due, found = self._due()
        return found, [f.name for f in due]

    def scan(self) -> RuleResult:
        result = self.new_result()
        due, found = self._due()
        result.eligible = len(due)
        result.overdue_before = sum(self.due(f, self.policy_rule.overdue_period) for f in due)
        result.extra = {"bytes_due": sum(files.size_of(f.path) for f in due)}
        validation.report_quarantine(self, result, found)
        return result

    def work_items(self) -> list[dict[str, Any]]:
        return [self._item(f) for f in self.due_files()]

    def verify(self) -> int:
        return len(self.due_files())

    def enforce_item(self, item: dict[str, Any]) -> dict[str, Any]:
        file = self.file(item["name"])
        if file is None:
            return {"name": item["name"], "outcome": "missing", "bytes": 0}
        if not self.due(file, self.policy_rule.period):
            log.warning(
                "%s %s: not due as of %s: left unchanged", self.policy_rule.id, file.name, self.ctx.as_of.isoformat()
            )
            return {"name": file.name, "outcome": "not_due", "bytes": 0}
        try:
            size = file.path.stat().st_size
            sha = sha256_file(file.path)
        except FileNotFoundError:
            return {"name": file.name, "outcome": "missing", "bytes": 0}
        records = self.records([file.name], (INTENT_TRUNCATE, DONE_TRUNCATE)).get(file.name, FileRecords.empty())
        anonymised = sha in {d.get("sha256_after") for d in records.truncated + records.truncate_intents}
        details = {
            "date": file.date.date().isoformat(),
            "gzip": file.gz,
            "bytes": size,
            "sha256": sha,
            "was_anonymised": anonymised,
        }
        if self.ctx.dry_run:
            self.ctx.audit.append([self.entry("would_" + DONE_DELETE, file.name, details)])
            log.info("%s %s: would delete (%d bytes) - dry run, nothing changed", self.policy_rule.id, file.name, size)
            return {"name": file.name, "outcome": "would_delete", "bytes": size}

        def delete() -> None:
            files.unlink_quietly(file.path.with_name(temp_name(file.name)))
            files.remove_durably(file.path)  # gone meanwhile: the outcome is the same

        DELETE.perform(self.ctx.audit, self.entry_for(file.name), details, delete)
        log.info(
            "%s %s: deleted (%d bytes%s)",
            self.policy_rule.id,
            file.name,
            size,
            ", IP addresses had been truncated" if anonymised else "",
        )
        return {"name": file.name, "outcome": "deleted", "bytes": size}

    def combine(self, scanned: RuleResult, item_results: list[dict[str, Any]]) -> RuleResult:
        result = RuleResult.from_dict(scanned.to_dict())
        extra = dict(result.extra)
        done = [r for r in item_results if r.get("outcome") in ("deleted", "would_delete")]
        result.deleted = len(done)
        extra["bytes_deleted"] = sum(int(r.get("bytes") or 0) for r in done)
        missing = sum(r.get("outcome") == "missing" for r in item_results)
        if missing:
            extra["files_gone_before_processing"] = missing
        if not self.ctx.dry_run:
            recovered = self._recover_deletions()
            if recovered:
                extra["records_recovered"] = recovered
        result.extra = extra
        self.ctx.audit.append([self.summary_entry(result)])
        return result

    def _recover_deletions(self) -> int:
        """Deletions whose record a crash cut short: the file is gone, so complete the record."""
        present = {f.name for f in self.files()}
        recovered = 0
        for name, records in self.records(actions=(INTENT_DELETE, DONE_DELETE)).items():
            if name in present:
                continue  # still there: due files are deleted (and recorded) by this rule's items
            for intent in records.pending_deletions():
                details = {k: v for k, v in intent.items() if k != "file"}
                DELETE.recover(self.ctx.audit, self.entry_for(name), details)
                recovered += 1
        return recovered
