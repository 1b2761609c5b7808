"""Run reports: ``reports/<dag_id>/<run_id>/report.{json,html}`` and ``reports/latest``.

A report holds counts, rule ids, policy sections and table, database and file names only: no
personal data. ``reports/latest`` gathers the newest *real* run of every nightly DAG (by when the
run was written, never by its as-of), one entry per rule, and apart from them the newest dry run
of every DAG: a dry run never hides or mixes with what was really enforced.

Every report opens with a verdict (:func:`verdict`): whether every rule was kept, which rule broke
the policy or did not run, or, for a dry run, what a real run would have done.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from jinja2 import Environment, PackageLoader

from lethe.config import load_policy

COUNT_FIELDS = (
    "eligible",
    "deleted",
    "anonymised",
    "exempt_hold",
    "exempt_restriction",
    "overdue_before",
    "quarantined",
    "remaining_after",
)
# Optional keys of the run dict (``resolve_run``) a report carries over.
RUN_KEYS = ("source", "armed", "armed_since", "dry_run_reason", "first_armed_run")

# What a rule's counts count, from the policy rule's action.
UNITS = {
    "delete": "records",
    "anonymise": "records",
    "drop_database": "databases",
    "truncate_ip": "files",
    "delete_file": "files",
}
UNIT_ORDER = ("records", "databases", "files")
SINGULAR = {"records": "record", "databases": "database", "files": "file", "rows": "row"}
# Actions that keep the record and take the personal data out of it; the others remove it.
ANONYMISING = {"anonymise", "truncate_ip"}

HEADERS = {
    "eligible": ("eligible", "past the deadline and not exempt: what the run acts on"),
    "deleted": ("deleted", "deleted, dropped (databases) or deleted files"),
    "anonymised": ("anonymised", "anonymised records, or log files whose addresses were truncated"),
    "exempt_hold": ("kept: legal hold", "past the deadline but kept: a legal hold is in force"),
    "exempt_restriction": ("kept: restriction", "past the deadline but kept: the person asked for restriction"),
    "overdue_before": (
        "past deadline at the run's start (backlog)",
        "already past the deadline of the previous night's run when this run began",
    ),
    "quarantined": (
        "quarantined",
        "records the checks before the rule kept out of the run: they cannot be judged (see the reasons below)",
    ),
    "remaining_after": ("remaining after the run", "still past the deadline after the run: must be 0"),
}
DRY_HEADERS = {
    "deleted": ("would be deleted", "what a real run would delete (nothing was changed)"),
    "anonymised": ("would be anonymised", "what a real run would anonymise (nothing was changed)"),
    "remaining_after": ("still past deadline (nothing changed)", "a dry run changes nothing, so this stays"),
}

# The checks' verdicts and the quarantine reasons, in words.
VERDICTS = {
    "passed": "passed",
    "quarantined": "passed, rows quarantined",
    "stopped": "STOPPED the rule: too many rows fail",
    "failed": "FAILED: eligible records remain",
}
REASONS = {
    "key_missing": "no key",
    "key_duplicate": "duplicate key",
    "trigger_missing": "no date to count from",
    "trigger_unparseable": "date not a date",
    "trigger_in_future": "date in the future",
    "address_unnormalisable": "address not an e-mail address",
    "company_missing": "company missing",
    "parent_missing": "dependent rows whose parent is missing",
    "name_refused": "database name refused",
    "trial_dates_inverted": "trial ends before it starts",
    "database_duplicated": "database named by more than one sign-up",
    "contact_missing": "sign-up contact missing",
    "date_unparseable": "file date not a date",
    "date_in_future": "file date in the future",
    "gzip_corrupt": "gzip file damaged",
}

# Extra result keys in words; any other key is shown with its underscores as spaces.
EXTRA_LABELS = {
    "waiting": "waiting for another rule to act first",
    "kept_recorded": "kept (recorded)",
    "kept_converted": "kept: converted to a subscription",
    "kept_held": "kept: hold or restriction",
    "kept_at_drop": "kept at the last check before the drop",
    "not_yet_due": "not yet due",
    "next_due": "next due (UTC date)",
    "orphan_names": "orphans (named like a trial, no sign-up row: kept for a person to check)",
    "refused_names": "refused names (never dropped: fix the catalog row)",
    "missing_names": "missing (due, but no longer on the server)",
    "would_drop_names": "would drop",
    "would_drop": "would drop",
    "to_recover": "to record (dropped by an earlier, interrupted run)",
    "not_finished": "not finished",
}
# Extra keys counted in the rule's own unit.
EXTRA_IN_RULE_UNIT = {"waiting", "kept_recorded"}
LIST_LIMIT = 10

LEGEND = {
    False: [
        ("bad", "red", "broke the policy (something past its deadline remains) or did not run"),
        ("backlog", "amber", "backlog: already past its deadline when the run began; the run removed or anonymised it"),
        ("", "no colour", "kept on time: nothing was past its deadline at the start or remains"),
    ],
    True: [
        ("bad", "red", "did not run"),
        ("backlog", "amber", "backlog: already past its deadline now; a real run would remove it"),
        ("", "no colour", "nothing already past its deadline"),
    ],
}
BACKLOG_NOTE = (
    '"Past deadline at the run\'s start (backlog)" counts the records, databases or files that were '
    "already past their deadline when the run began: a missed or failed night, or a backlog from before Lethe "
    "enforced. "
)
FIRST_ARMED_LABEL = "first enforcing run: clearing the backlog"
DRY_SECTION = "Dry runs (nothing was changed)"


def reports_dir() -> Path:
    return Path(os.environ.get("LETHE_REPORTS_DIR") or Path.cwd() / "reports")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+:-]", "_", name)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- words and units


def unit_for(action: str | None) -> str:
    """What a rule's counts count (plural), from the policy rule's action."""
    return UNITS.get(action or "", "records")


def counted(n: int, unit: str) -> str:
    """``1 record``, ``3 records``."""
    return f"{n} {SINGULAR.get(unit, unit) if n == 1 else unit}"


def _unit(rule: dict[str, Any]) -> str:
    return rule.get("unit") or unit_for(rule.get("action"))


def _num(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _and(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _amount(totals: Counter) -> tuple[str, int]:
    """``12 records and 2 files``, and the total number of things."""
    parts = [counted(totals[u], u) for u in UNIT_ORDER if totals[u]]
    parts += [counted(n, u) for u, n in totals.items() if u not in UNIT_ORDER and n]
    return _and(parts), sum(totals.values())


def _verb(rules: list[dict[str, Any]]) -> str:
    kinds = {r.get("action") in ANONYMISING for r in rules}
    return "anonymised" if kinds == {True} else "removed" if kinds == {False} else "removed or anonymised"


def _sentence(text: str) -> str:
    text = (text or "").strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def words(value: Any, limit: int = LIST_LIMIT) -> str:
    """A value of a report in words: lists comma-separated (bounded), dicts as ``name n, ...``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        if not value:
            return "none"
        return ", ".join(f"{k} {words(v, limit)}" for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        items = [words(v, limit) for v in value]
        if not items:
            return "none"
        if len(items) > limit:
            items = items[:limit] + [f"and {len(items) - limit} more"]
        return ", ".join(items)
    return str(value)


def dry_run_reason_text(run: dict[str, Any]) -> tuple[str, str]:
    """Why a run was a dry run, in words, and the command that ends it ('' if none)."""
    if not run.get("dry_run"):
        return "", ""
    reason = run.get("dry_run_reason")
    if reason == "not_armed":
        source = run.get("source") or "<source>"
        return "dry run because the source is not armed yet: arm it with", f"lethe arm {source}"
    if reason == "requested":
        return "dry run requested (the run's dry_run param)", ""
    return "dry run", ""


# --------------------------------------------------------------------------- the verdict


class Verdict(NamedTuple):
    """The report's first line. ``level``: ``ok``, ``breach``, ``failed``; also ``dry`` (a dry
    run in which every rule ran) and ``none`` (no rule has run)."""

    text: str
    level: str


def _failed(rule: dict[str, Any]) -> bool:
    return rule.get("status") == "failed"


def broke_policy(rule: dict[str, Any]) -> bool:
    """On a real run: something past its deadline remains, or the rule did not end ok."""
    return rule.get("status", "ok") != "ok" or _num(rule.get("remaining_after")) > 0


def _problem(rule: dict[str, Any], dry_run: bool) -> str:
    rid, status = rule.get("rule", "?"), rule.get("status", "ok")
    error = (rule.get("error") or "").strip().rstrip(".")
    if status == "failed":
        return f"Rule {rid} did not run: {error or 'see the task logs'}."
    if dry_run:
        return f"Rule {rid} ended {status}" + (f": {error}." if error else ".")
    remaining = _num(rule.get("remaining_after"))
    if remaining:
        what = counted(remaining, _unit(rule))
        verb = "remains" if remaining == 1 else "remain"
        return (
            f"Rule {rid} broke the policy: {what} past {'its' if remaining == 1 else 'their'} "
            f"deadline {verb} after the run." + (f" {_sentence(error)}" if error else "")
        )
    return f"Rule {rid} broke the policy: it ended {status}" + (f": {error}." if error else ".")


def verdict(rules: Iterable[dict[str, Any]], *, dry_run: bool = False, first_armed_run: bool = False) -> Verdict:
    """Whether every rule was kept, in plain words, from a report's rule entries.

    A rule breaks the policy when, on a real run, ``remaining_after`` > 0 or its status is not
    ok. ``first_armed_run`` (or an entry's own ``first_armed_run``): the run is the source's first
    enforcing run, so what was past its deadline at the start is the backlog it cleared.
    """
    rules = list(rules)
    if not rules:
        return Verdict(
            "Dry run: nothing was changed; no rule ran." if dry_run else "No rule has run yet: nothing was enforced.",
            "none",
        )
    failed = [r for r in rules if _failed(r)]
    if dry_run:
        problems = [r for r in rules if r.get("status", "ok") != "ok"]
        ran = [r for r in rules if r.get("status", "ok") == "ok"]
        parts = []
        for verb, anonymising in (("removed", False), ("anonymised", True)):
            totals = Counter()
            for r in ran:
                if (r.get("action") in ANONYMISING) == anonymising:
                    totals[_unit(r)] += _num(r.get("eligible"))
            amount, n = _amount(totals)
            if n:
                parts.append(f"{amount} would be {verb}")
        text = "Dry run: nothing was changed; " + (" and ".join(parts) if parts else "nothing would be removed") + "."
        if problems:
            text += " " + " ".join(_problem(r, True) for r in problems)
        return Verdict(text, "failed" if problems else "dry")
    breaches = [r for r in rules if broke_policy(r) and not _failed(r)]
    if failed or breaches:
        text = " ".join(_problem(r, False) for r in failed + breaches)
        if len(failed) + len(breaches) < len(rules):
            text += " The other rules were kept."
        return Verdict(text, "failed" if failed else "breach")
    text = "Every rule was kept: nothing past its deadline remains."
    first = [r for r in rules if first_armed_run or r.get("first_armed_run")]
    others = [r for r in rules if not (first_armed_run or r.get("first_armed_run"))]
    if first:
        amount, n = _backlog(first)
        text += (
            f" First enforcing run: the backlog was cleared ({amount} already past "
            f"{'its' if n == 1 else 'their'} deadline {'was' if n == 1 else 'were'} "
            f"{_verb(_with_backlog(first))})."
            if n
            else " First enforcing run: there was no backlog to clear."
        )
    amount, n = _backlog(others)
    if n:
        text += (
            f" {amount[0].upper() + amount[1:]} {'was' if n == 1 else 'were'} already past "
            f"{'its' if n == 1 else 'their'} deadline when the run began (a missed or failed night) "
            f"and {'was' if n == 1 else 'were'} {_verb(_with_backlog(others))}."
        )
    return Verdict(text, "ok")


def _with_backlog(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rules if _num(r.get("overdue_before"))]


def _backlog(rules: list[dict[str, Any]]) -> tuple[str, int]:
    totals = Counter()
    for r in _with_backlog(rules):
        totals[_unit(r)] += _num(r.get("overdue_before"))
    return _amount(totals)


def _latest_verdict(real: list[dict[str, Any]], dry: list[dict[str, Any]], unenforced: list[str]) -> Verdict:
    if not real:
        if not dry:
            return Verdict("No run yet: nothing was enforced.", "none")
        dry_verdict = verdict(dry, dry_run=True)
        return Verdict("No real run yet: nothing has been enforced. " + dry_verdict.text, dry_verdict.level)
    found = verdict(real)
    if unenforced:
        found = Verdict(
            found.text + f" No real run yet for {_and(unenforced)}: "
            f"{'its' if len(unenforced) == 1 else 'their'} rules are not enforced yet.",
            found.level,
        )
    return found


# --------------------------------------------------------------------------- writing reports


def rule_entry(
    rule_id: str, result: dict[str, Any] | None, policy, reason: str | None = None, checks: dict | None = None
) -> dict[str, Any]:
    entry = _rule_counts(rule_id, result, policy, reason)
    before, after = (checks or {}).get("before") or {}, (checks or {}).get("after") or {}
    entry["checks"] = {
        "before": before.get("verdict") or (result or {}).get("before"),
        "after": after.get("verdict") or (result or {}).get("after"),
        "quarantine": before.get("reasons") or (result or {}).get("quarantine") or {},
        "samples": before.get("samples") or {},
        "failed": [c for c in before.get("checks", []) + after.get("checks", []) if not c.get("success")],
    }
    return entry


def _rule_counts(rule_id: str, result: dict[str, Any] | None, policy, reason: str | None) -> dict[str, Any]:
    rule = policy.rule(rule_id)
    entry = {
        "rule": rule_id,
        "description": rule.description,
        "policy_section": rule.policy_section,
        "period": str(rule.period),
        "overdue_after": str(rule.overdue_period),
        "period_is_default": rule.is_default,
        "action": rule.action,
        "unit": unit_for(rule.action),
    }
    if result is None:
        entry.update({"status": "failed", "error": reason or "the rule's tasks did not finish (see the task logs)"})
        entry.update({name: None for name in COUNT_FIELDS})
        entry["due"] = None
        return entry
    entry.update({name: result.get(name) for name in COUNT_FIELDS})
    entry.update(
        {
            "status": result.get("status", "ok"),
            "error": result.get("error", ""),
            "source": result.get("source"),
            "related": result.get("related", {}),
            "extra": result.get("extra", {}),
            "batches": result.get("batches", 0),
            "due": result.get("due"),
        }
    )
    return entry


def write_run_report(
    *,
    dag_id: str,
    run: dict[str, Any],
    results: dict[str, dict | None],
    root: Path | None = None,
    reasons: dict[str, str | None] | None = None,
    checks: dict[str, dict[str, Any]] | None = None,
) -> tuple[Path, list[str]]:
    """Write one run's report and refresh ``latest``; returns its path and the failed rules.

    ``reasons``: why a rule whose result is missing failed (a configuration error's message).
    ``checks``: per rule, what the checks before and after it returned (``before``, ``after``):
    their Great Expectations results are written to ``validation/`` and rendered as Data Docs in
    ``data_docs/`` next to the report, which links them.
    """
    policy = load_policy()
    root = root or reports_dir()
    reasons = reasons or {}
    checks = checks or {}
    selected = run.get("rules") or list(results)
    rules = [
        rule_entry(rule_id, results.get(rule_id), policy, reasons.get(rule_id), checks.get(rule_id))
        for rule_id in results
        if rule_id in selected
    ]
    folder = root / _safe(dag_id) / _safe(run["run_id"])
    docs = write_checks(folder, run["run_id"], {r: c for r, c in checks.items() if r in selected})
    for rule in rules:
        if docs and any((checks.get(rule["rule"]) or {}).values()):
            rule["data_docs"] = docs.relative_to(root).as_posix()
    failed = [r["rule"] for r in rules if r["status"] == "failed"]
    dry_run = bool(run["dry_run"])
    found = verdict(rules, dry_run=dry_run, first_armed_run=bool(run.get("first_armed_run")))
    report = {
        "dag_id": dag_id,
        "run_id": run["run_id"],
        "as_of": run["as_of"],
        "dry_run": dry_run,
        "demo_key": run.get("demo_key", False),
        **{key: run[key] for key in RUN_KEYS if key in run},
        "generated_at": _now(),
        "policy": policy.policy.name,
        "rules": rules,
        "verdict": {"text": found.text, "level": found.level},
    }
    if docs:
        report["data_docs"] = docs.relative_to(root).as_posix()
    _write(folder, report)
    refresh_latest(root)
    return folder / "report.json", failed


def write_checks(folder: Path, run_id: str, checks: dict[str, dict[str, Any]]) -> Path | None:
    """The checks' results as JSON (``validation/<rule>.<before|after>.json``) and as Data Docs
    (``data_docs/index.html``, returned); None when no check ran."""
    found = [(c["suite"], c) for per_rule in checks.values() for c in per_rule.values() if c and c.get("result")]
    if not found:
        return None
    target = folder / "validation"
    target.mkdir(parents=True, exist_ok=True)
    for suite, checked in found:
        (target / f"{_safe(suite)}.json").write_text(json.dumps(checked, indent=2, sort_keys=True, default=str))
    from lethe.validation.gx import build_data_docs  # Great Expectations: imported by the report task only

    return build_data_docs([(suite, checked["result"]) for suite, checked in found], folder / "data_docs", run_id)


def _write(folder: Path, report: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # Unique temporary names: two DAGs finishing together both refresh reports/latest.
    stamp = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    for name, text in (
        ("report.json", json.dumps(report, indent=2, sort_keys=True)),
        ("report.html", render_html(report)),
    ):
        tmp = folder / f".{name}.{stamp}.tmp"
        tmp.write_text(text)
        tmp.replace(folder / name)


def _run_summary(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("dag_id", "run_id", "as_of", "dry_run", "generated_at", "demo_key") + RUN_KEYS
    return {k: data[k] for k in keys if k in data}


def _latest_rules(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **rule,
            "unit": _unit(rule),
            "dag_id": r["dag_id"],
            "run_id": r["run_id"],
            "as_of": r["as_of"],
            "dry_run": bool(r["dry_run"]),
            "first_armed_run": bool(r.get("first_armed_run")),
        }
        for r in runs
        for rule in r["rules"]
    ]


def refresh_latest(root: Path | None = None) -> dict[str, Any]:
    """Gather the newest real run of every DAG, and apart from them its newest dry run.

    Newest means most recently run (the report's ``generated_at``; the file's write time breaks
    a tie), never the greatest as-of: a dry run at a future as-of must not hide the real runs.
    """
    root = root or reports_dir()
    newest: dict[tuple[bool, str], tuple[tuple, dict[str, Any]]] = {}
    for path in root.glob("*/*/report.json"):
        if path.parent.parent.name == "latest":
            continue
        try:
            data = json.loads(path.read_text())
            key = (bool(data["dry_run"]), data["dag_id"])
            order = (data["generated_at"], path.stat().st_mtime_ns, data["as_of"], data["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a report being written or not a run report: not ours to judge here
        if key not in newest or order > newest[key][0]:
            newest[key] = (order, data)
    real = [newest[k][1] for k in sorted(k for k in newest if not k[0])]
    dry = [newest[k][1] for k in sorted(k for k in newest if k[0])]
    real_dags = {r["dag_id"] for r in real}
    unenforced = sorted({r["dag_id"] for r in dry} - real_dags)
    rules, dry_rules = _latest_rules(real), _latest_rules(dry)
    top = _latest_verdict(rules, dry_rules, unenforced)
    dry_verdict = verdict(dry_rules, dry_run=True) if dry else None
    shown = real or dry
    latest = {
        "generated_at": _now(),
        "demo_key": any(r.get("demo_key") for r in real + dry),
        "dry_run": not real and bool(dry),
        "as_of": max((r["as_of"] for r in shown), default=None),
        "runs": [_run_summary(r) for r in real],
        "rules": rules,
        "dry_runs": [_run_summary(r) for r in dry],
        "dry_rules": dry_rules,
        "no_real_run": unenforced,
        "verdict": {"text": top.text, "level": top.level},
        "dry_verdict": {"text": dry_verdict.text, "level": dry_verdict.level} if dry_verdict else None,
    }
    _write(root / "latest", latest)
    return latest


def newest_run_report(dag_id: str, since: str | None = None, root: Path | None = None) -> dict[str, Any] | None:
    """The newest report written for ``dag_id`` (at or after ``since``, ISO UTC), or None."""
    root = root or reports_dir()
    found = None
    for path in (root / _safe(dag_id)).glob("*/report.json"):
        data = json.loads(path.read_text())
        if since and data["generated_at"] < since:
            continue
        if found is None or data["generated_at"] > found["generated_at"]:
            found = data
    return found


# --------------------------------------------------------------------------- the page's content


def row_level(rule: dict[str, Any], dry_run: bool) -> str:
    """The row's colour: ``bad`` (red), ``backlog`` (amber) or ``''`` (none); see LEGEND."""
    if _failed(rule) or rule.get("status", "ok") != "ok" or (not dry_run and broke_policy(rule)):
        return "bad"
    if _num(rule.get("overdue_before")):
        return "backlog"
    return ""


def outcome(rule: dict[str, Any], dry_run: bool) -> str:
    """The rule's outcome in words (the last column)."""
    status, unit = rule.get("status", "ok"), _unit(rule)
    error = (rule.get("error") or "").strip()
    anonymising = rule.get("action") in ANONYMISING
    if status == "failed":
        return f"failed, did not run: {error or 'see the task logs'}"
    if dry_run:
        if status != "ok":
            return f"{status}" + (f": {error}" if error else "")
        n = _num(rule.get("eligible"))
        return f"would {'anonymise' if anonymising else 'remove'} {counted(n, unit)}" if n else "nothing to do"
    remaining = _num(rule.get("remaining_after"))
    if remaining:
        return (
            f"broke the policy: {counted(remaining, unit)} past the deadline "
            f"{'remains' if remaining == 1 else 'remain'}"
            + (f" ({status})" if status != "ok" else "")
            + (f": {error}" if error else "")
        )
    if status != "ok":
        return f"broke the policy: {status}" + (f": {error}" if error else "")
    backlog = _num(rule.get("overdue_before"))
    if backlog:
        return f"kept: backlog of {counted(backlog, unit)} {'anonymised' if anonymising else 'removed'}"
    return "kept on time"


def details(rule: dict[str, Any], dry_run: bool) -> list[tuple[str, str]]:
    """The rule's other counts and names in words (label, value); no Python reprs."""
    unit = _unit(rule)
    found: list[tuple[str, str]] = []
    checks = rule.get("checks") or {}
    if checks.get("before") or checks.get("after"):
        found.append(
            (
                "checks before / after",
                f"{VERDICTS.get(checks.get('before'), checks.get('before') or 'did not run')} / "
                f"{VERDICTS.get(checks.get('after'), checks.get('after') or 'did not run')}",
            )
        )
    for reason, n in sorted((checks.get("quarantine") or {}).items()):
        keys = (checks.get("samples") or {}).get(reason) or []
        shown = f" (subject keys: {', '.join(keys)}{', ...' if n > len(keys) else ''})" if keys else ""
        found.append((f"quarantined: {REASONS.get(reason, reason.replace('_', ' '))}", f"{n}{shown}"))
    if _num(rule.get("due")):
        found.append(("due", f"{counted(rule['due'], unit)} (eligible, exempt or waiting)"))
    related = rule.get("related") or {}
    if related:
        label = "rows in the dropped databases" if rule.get("action") == "drop_database" else "related rows"
        found.append((label + (" (would be)" if dry_run else ""), words(related)))
    for key, value in sorted((rule.get("extra") or {}).items()):
        in_unit = key in EXTRA_IN_RULE_UNIT and isinstance(value, int) and not isinstance(value, bool)
        text = counted(value, unit) if in_unit else words(value)
        found.append((EXTRA_LABELS.get(key, key.replace("_", " ")), text))
    return found


def _cell(rule: dict[str, Any], field: str) -> dict[str, Any]:
    value = rule.get(field)
    if value is None:
        return {"value": "-", "unit": "", "empty": True}
    unit = _unit(rule)
    return {"value": str(value), "unit": SINGULAR.get(unit, unit) if value == 1 else unit, "empty": False}


def _run_line(run: dict[str, Any], with_dag: bool) -> dict[str, Any]:
    reason, command = dry_run_reason_text(run)
    armed = run.get("armed")
    source = run.get("source")
    return {
        "dag_id": run.get("dag_id") if with_dag else None,
        "run_id": run.get("run_id"),
        "as_of": run.get("as_of"),
        "generated_at": run.get("generated_at"),
        "source": source,
        "armed": None
        if armed is None or run.get("dry_run_reason") == "not_armed"
        else (
            (
                "enforcement armed"
                + (f" for source {source}" if source else "")
                + (f" since {run['armed_since']}" if run.get("armed_since") else "")
            )
            if armed
            else f"source {source} not armed yet"
            if source
            else "not armed yet"
        ),
        "reason": reason,
        "command": command,
        "first_armed": FIRST_ARMED_LABEL if run.get("first_armed_run") and not run.get("dry_run") else "",
    }


def _section(
    kind: str,
    title: str,
    runs: list[dict[str, Any]],
    rules: list[dict[str, Any]],
    found: Verdict | None,
    with_dag: bool,
    missing: list[str] = (),
) -> dict[str, Any]:
    dry = kind == "dry"
    headers = {**HEADERS, **(DRY_HEADERS if dry else {})}
    rows = []
    for r in rules:
        rows.append(
            {
                "rule": r.get("rule"),
                "dag_id": r.get("dag_id"),
                "description": r.get("description", ""),
                "policy_section": r.get("policy_section", ""),
                "period": r.get("period", ""),
                "period_is_default": r.get("period_is_default", False),
                "unit": _unit(r),
                "cells": [_cell(r, f) for f in COUNT_FIELDS],
                "outcome": outcome(r, dry),
                "level": row_level(r, dry),
                "details": details(r, dry),
                "data_docs": r.get("data_docs"),
            }
        )
    levels = {row["level"] for row in rows}
    return {
        "kind": kind,
        "id": "dry-runs" if dry else "real-runs",
        "title": title,
        "dry": dry,
        "runs": [_run_line(r, with_dag) for r in runs],
        "rows": rows,
        "with_dag": with_dag,
        "headers": [headers[f] for f in COUNT_FIELDS],
        "missing": list(missing),
        "verdict": found,
        "legend": [item for item in LEGEND[dry] if item[0] in levels or not item[0]],
        "backlog_note": BACKLOG_NOTE
        + (
            "A real run would remove them; this dry run changed nothing."
            if dry
            else "The run removed them (or anonymised them, by the rule's "
            "action: they are counted in deleted or anonymised too)."
        ),
        "columns": len(COUNT_FIELDS) + 3,
    }


def page(report: dict[str, Any]) -> dict[str, Any]:
    """What the HTML page shows, worked out here so the template only lays it out."""
    if "dag_id" in report:  # one run
        dry = bool(report.get("dry_run"))
        found = verdict(report.get("rules", []), dry_run=dry, first_armed_run=bool(report.get("first_armed_run")))
        title = DRY_SECTION.replace("runs", "run") if dry else "Rules"
        sections = [_section("dry" if dry else "real", title, [report], report.get("rules", []), None, False)]
        first = bool(report.get("first_armed_run")) and not dry
    else:  # reports/latest
        # Split by each entry's own flag too: a latest file written before dry runs were kept apart.
        runs = report.get("runs", []) + report.get("dry_runs", [])
        rules = report.get("rules", []) + report.get("dry_rules", [])
        real_runs, dry_runs = [r for r in runs if not r.get("dry_run")], [r for r in runs if r.get("dry_run")]
        real_rules, dry_rules = [r for r in rules if not r.get("dry_run")], [r for r in rules if r.get("dry_run")]
        missing = report.get("no_real_run") or sorted(
            {r["dag_id"] for r in dry_runs} - {r["dag_id"] for r in real_runs}
        )
        found = _latest_verdict(real_rules, dry_rules, missing)
        sections = [
            _section("real", "Real runs (newest run of each nightly DAG)", real_runs, real_rules, None, True, missing)
        ]
        if dry_runs:
            sections.append(
                _section(
                    "dry",
                    DRY_SECTION + ": the newest dry run of each DAG",
                    dry_runs,
                    dry_rules,
                    verdict(dry_rules, dry_run=True),
                    True,
                )
            )
        first = False  # labelled on the run's own line: another DAG's run may not be its first
    return {
        "report": report,
        "verdict": found,
        "sections": sections,
        "first_armed_label": FIRST_ARMED_LABEL if first else "",
        # Links are relative to the reports folder: a run's page is two levels down, latest one.
        "root": "../../" if "dag_id" in report else "../",
    }


def render_html(report: dict[str, Any]) -> str:
    # Escape everything: names come from the systems Lethe reads (database and file names).
    env = Environment(loader=PackageLoader("lethe", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(page=page(report), report=report)


# --------------------------------------------------------------------------- the terminal


def summary_text(root: Path | None = None) -> str:
    """A one-screen summary of reports/latest for the terminal: the verdict first."""
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.table import Table

    root = root or reports_dir()
    path = root / "latest" / "report.json"
    if not path.exists():
        return f"no report yet under {root}"
    latest = json.loads(path.read_text())
    view = page(latest)
    out = StringIO()
    console = Console(file=out, width=140, force_terminal=False, highlight=False)
    mark = {"ok": "OK", "breach": "BREACH", "failed": "FAILED", "dry": "DRY RUN", "none": "NOTHING ENFORCED"}
    console.print(
        f"{mark.get(view['verdict'].level, view['verdict'].level.upper())}: {view['verdict'].text}",
        markup=False,
        soft_wrap=True,
    )
    for section in view["sections"]:
        dry = section["dry"]
        console.print()
        console.print(section["title"] if not dry else DRY_SECTION, markup=False, soft_wrap=True)
        if dry and section["verdict"]:
            console.print(f"  {section['verdict'].text}", markup=False, soft_wrap=True)
        for run in section["runs"]:
            line = f"  {run['dag_id']}: run {run['run_id']}, as-of {run['as_of']} UTC, run at {run['generated_at']}"
            if run["first_armed"]:
                line += f"; {run['first_armed']}"
            if run["reason"]:
                line += f"; {run['reason']}" + (f" `{run['command']}`" if run["command"] else "")
            console.print(line, markup=False, soft_wrap=True)
        for dag_id in section["missing"]:
            console.print(f"  {dag_id}: no real run yet (dry runs only, below)", markup=False, soft_wrap=True)
        if not section["rows"]:
            continue
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 0), collapse_padding=True, pad_edge=False)
        headers = [
            "rule",
            "DAG",
            "§",
            "period",
            "unit",
            "eligible",
            "would del." if dry else "deleted",
            "would anon." if dry else "anonym.",
            "held",
            "restr.",
            "backlog",
            "quar.",
            "still due" if dry else "remain",
            "outcome",
        ]
        for header in headers:
            left = header in ("rule", "DAG", "§", "period", "unit", "outcome")
            table.add_column(
                header,
                justify="left" if left else "right",
                overflow="fold",
                no_wrap=header != "outcome",
                min_width=28 if header == "outcome" else None,
            )
        for row in section["rows"]:
            dag = (row["dag_id"] or "").removeprefix("lethe_").removesuffix("_retention")
            table.add_row(
                row["rule"],
                dag,
                row["policy_section"].split(" (")[0],
                row["period"] + ("*" if row["period_is_default"] else ""),
                row["unit"],
                *[c["value"] for c in row["cells"]],
                row["outcome"],
            )
        console.print(table)
    console.print("* = configured default period: the policy states none.", markup=False, soft_wrap=True)
    console.print(
        "backlog = past deadline at the run's start: already past the deadline when the run began "
        "(a missed or failed night, or from before Lethe enforced); a real run removes it.",
        markup=False,
        soft_wrap=True,
    )
    console.print(
        "quar. = quarantined: kept out of the run by the checks before it (data that cannot be judged); "
        "the report lists why.",
        markup=False,
        soft_wrap=True,
    )
    if latest.get("demo_key"):
        console.print(
            "NOTE: the audit key is the DEMO key written by `make seed`; do not use it for real data.",
            markup=False,
            soft_wrap=True,
        )
    console.print(f"Report: {root / 'latest' / 'report.html'} (JSON: {path})", markup=False, soft_wrap=True)
    return out.getvalue()
