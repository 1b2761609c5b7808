"""The ``lethe`` command: demo estate, policy check, audit trail, reports, log anonymiser.

Connections are read from ``AIRFLOW_CONN_<ID>`` as Airflow would (``make`` sets the demo's).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Lethe: enforce the privacy policy's retention rules, with a provable audit trail.",
)
policy_app = typer.Typer(no_args_is_help=True, help="Check the policy and the data inventory.")
audit_app = typer.Typer(no_args_is_help=True, help="Verify and query the hash-chained audit trail.")
report_app = typer.Typer(no_args_is_help=True, help="Run reports.")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"lethe: {message}", err=True)
    raise typer.Exit(code)


def _audit_trail():
    from lethe.audit import AuditTrail
    from lethe.db import connection_url, make_engine
    from lethe.subjects import MissingAuditKey, audit_key

    _say_fallbacks(["lethe_audit"], key_needed=True)
    try:
        key = audit_key(os.environ.get("LETHE_AUDIT_KEY") or _demo_key())
    except MissingAuditKey as exc:
        _fail(str(exc), 2)
    trail = AuditTrail(make_engine(connection_url("lethe_audit")), key)
    trail.create()
    return trail


def _demo_key() -> str | None:
    from lethe.embedded import demo_key_file

    path = demo_key_file()
    return path.read_text().strip() if path else None


def _say_fallbacks(conn_ids: list[str], key_needed: bool = False) -> None:
    """Tell on stderr which settings come from the embedded default (stdout stays the answer)."""
    from lethe.embedded import describe_fallbacks

    line = describe_fallbacks(conn_ids, key_needed)
    if line:
        typer.echo(f"lethe: {line}", err=True)


@app.command("seed-demo")
def seed_demo(
    as_of: str = typer.Option(..., help="The as-of date the demo data is laid around (YYYY-MM-DD)."),
    estate: Path = typer.Option(Path(".lethe/estate"), help="Folder of the demo estate."),
    seed: int = typer.Option(42, help="Random seed (same seed and as-of: same estate)."),
    bad_rows: bool = typer.Option(True, help="Add a few rows of each kind the checks quarantine (SQLite estate)."),
    crm: str = typer.Option(None, help="Database URL for the CRM (default: estate/crm.sqlite)."),
    marketing: str = typer.Option(None, help="Database URL for marketing (default: estate/marketing.sqlite)."),
    trials: str = typer.Option(None, help="Server URL for the trial databases (default: the folder estate/trials)."),
    audit: str = typer.Option(None, help="Database URL of the audit store (default: estate/audit.sqlite)."),
    weblogs: Path = typer.Option(None, help="Folder of the connection logs (default: estate/weblogs)."),
    trial_tag: str = typer.Option("", help="Infix of the trial databases' names (trial_<tag>...), to share a server."),
    small: bool = typer.Option(
        False, help="A small estate (300 contacts, 12 random trials, no refused names), for live tests."
    ),
):
    """Write the deterministic demo estate and a demo key.

    CRM, marketing, connection logs, the trial databases, and an empty audit store: by default
    SQLite files in the estate folder (the embedded default); with URLs, databases on PostgreSQL
    or MariaDB servers (created beforehand, by an administrator: the seed replaces the demo's
    tables and trial databases in them). On the SQLite estate, a few bad rows of each kind the
    checks before a rule quarantine (``--no-bad-rows``: none); servers keep their constraints, so
    they get none.
    """
    import shutil

    from lethe.audit import AuditTrail
    from lethe.db import make_engine
    from lethe.demo.seed import SMALL, DemoSizes, seed_crm, seed_marketing, write_demo_key
    from lethe.demo.trials import seed_trial_databases
    from lethe.demo.weblogs import seed_weblogs
    from lethe.periods import to_utc_naive

    when = to_utc_naive(as_of)
    estate = estate.resolve()
    estate.mkdir(parents=True, exist_ok=True)
    defaults = {"crm": crm, "marketing": marketing, "audit": audit}
    for name, url in defaults.items():
        if url is None:
            (estate / f"{name}.sqlite").unlink(missing_ok=True)
    urls = {name: url or f"sqlite:///{estate / f'{name}.sqlite'}" for name, url in defaults.items()}
    key = write_demo_key(estate / "demo-audit-key")
    crm_engine = make_engine(urls["crm"])
    sizes = SMALL if small else DemoSizes()
    crm_rows = seed_crm(crm_engine, when, seed=seed, sizes=sizes)
    if trials is None:
        # The embedded default keeps one file per trial database in estate/trials (AIRFLOW_CONN_TRIALS).
        shutil.rmtree(estate / "trials", ignore_errors=True)
        trials = f"sqlite:///{estate / 'trials'}"
    made = seed_trial_databases(
        trials, crm_engine, when, seed=seed + 3, tag=trial_tag, refused_names=sizes.refused_names
    )
    typer.echo(
        f"trials: {len(made['tables'])} databases ({len(made['trials'])} trials, decoys: "
        f"{len(made['orphans'])} orphans, {len(made['others'])} non-trial, {len(made['refused'])} refused "
        "names, 1 converted customer)"
    )
    seed_marketing(make_engine(urls["marketing"]), when, crm_rows["emails"], seed=seed + 1, sizes=sizes)
    logs = seed_weblogs(weblogs or estate / "weblogs", when, seed=seed + 2)
    typer.echo(f"weblogs: {len(logs['files'])} daily access logs ({logs['lines']} lines) in {logs['folder']}")
    if bad_rows and not any(defaults.values()) and weblogs is None:
        from lethe.demo.bad_rows import add_bad_rows

        added = add_bad_rows(estate, when)
        typer.echo(f"bad rows for the checks to quarantine: {', '.join(f'{n} in {k}' for k, n in added.items())}")
    AuditTrail(make_engine(urls["audit"]), key).create()
    typer.echo(f"demo estate written (as-of {when.date()}, seed {seed}); demo audit key in {estate / 'demo-audit-key'}")


def _armed_sources() -> set[str]:
    """The armed sources as the DAGs read them: Airflow's ``AIRFLOW_VAR_`` variable, else the Variable."""
    from lethe.arming import ARMED_VARIABLE, parse_armed

    env_value = os.environ.get(f"AIRFLOW_VAR_{ARMED_VARIABLE.upper()}")
    if env_value is not None:
        return parse_armed(env_value)
    current = _airflow_variable("get", ARMED_VARIABLE)
    return parse_armed(current.stdout.strip()) if current.returncode == 0 else set()


@app.command("run")
def run_rules(
    rules: list[str] = typer.Argument(..., help="Rule ids of the policy (C1 K1 ...), run in this order."),
    as_of: str = typer.Option(None, help="The as-of instant (YYYY-MM-DD is 00:00 UTC; default: now, UTC)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count and record what would change; change nothing."),
    batch_size: int = typer.Option(None, help="Rows per batch (default: LETHE_BATCH_SIZE, else 5000)."),
    as_json: bool = typer.Option(False, "--json", help="Print each rule's summary as one JSON object per line."),
):
    """Run rules now through the same runner as the nightly DAGs (scan, enforce, summarise),
    against the connections in the environment; a source that is not armed runs dry."""
    from datetime import datetime, timezone

    from lethe.config import ConfigError, load_inventory, load_policy
    from lethe.db import connection_path, connection_url
    from lethe.errors import ConfigurationError
    from lethe.evidence.outcomes import record_outcomes
    from lethe.periods import to_utc_naive
    from lethe.runner import Engines, batch_size_from_env, make_context, run_rule
    from lethe.subjects import MissingAuditKey, audit_key

    try:
        policy = load_policy()
        inventory = load_inventory(policy=policy)
    except ConfigError as exc:
        _fail(str(exc), 2)
    unknown = [rule for rule in rules if rule not in policy.rule_ids]
    if unknown:
        known = ", ".join(policy.rule_ids)
        _fail(f"unknown rule(s) {', '.join(unknown)} (the policy has: {known}); nothing was changed", 2)
    try:
        key = audit_key(os.environ.get("LETHE_AUDIT_KEY") or _demo_key())
    except MissingAuditKey as exc:
        _fail(str(exc), 2)
    moment = to_utc_naive(as_of) if as_of else datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
    sources = {rule: inventory.rule(rule)[0] for rule in rules}
    _say_fallbacks(sorted({"lethe_audit", *(s.connection_id for s in sources.values())}), key_needed=True)
    armed = set() if dry_run else _armed_sources()
    run_id = f"cli__{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    engines = Engines(resolve=connection_url)
    failed = 0
    try:
        for index, rule in enumerate(rules):
            source = sources[rule].source
            dry = dry_run or source not in armed
            if dry and not dry_run:
                typer.echo(f"lethe: source {source} is not armed (lethe arm {source}): {rule} runs dry", err=True)
            ctx = make_context(
                run_id=run_id,
                dag_id="lethe_cli",
                task_id=rule,
                as_of=moment,
                dry_run=dry,
                key=key,
                engines=engines,
                policy=policy,
                inventory=inventory,
                batch_size=batch_size or batch_size_from_env(),
                folder_for=connection_path,
                create_audit=index == 0,
            )
            run = {"run_id": run_id, "as_of": moment.isoformat(), "dry_run": dry, "source": source}
            try:
                result = run_rule(ctx, rule)
            except ConfigurationError as exc:
                failed += 1
                closing = {"rule": rule, "status": "failed", "error": str(exc)}
                record_outcomes(ctx.audit, dag_id=ctx.dag_id, task_id=rule, run=run, rules=[closing])
                typer.echo(f"{rule}: failed, nothing changed: {exc}", err=True)
                continue
            closing = {
                "rule": rule,
                "status": result["status"],
                "remaining_after": result["remaining_after"],
                "checks": {"before": result.get("before"), "after": result.get("after")},
            }
            record_outcomes(ctx.audit, dag_id=ctx.dag_id, task_id=rule, run=run, rules=[closing])
            failed += result["status"] != "ok"
            typer.echo(json.dumps(result, sort_keys=True) if as_json else _rule_line(result))
    finally:
        engines.dispose()
    if failed:
        raise typer.Exit(1)


def _rule_line(result: dict) -> str:
    """One rule's summary in a line (counts and names only)."""
    counts = [f"due {result['due']}", f"eligible {result['eligible']}"]
    counts += [f"{word} {result[word]}" for word in ("deleted", "anonymised") if result[word]]
    counts += [f"{k.replace('_', ' ')} {v}" for k, v in sorted(result["extra"].items()) if isinstance(v, int) and v]
    counts.append(f"exempt (hold {result['exempt_hold']}, restriction {result['exempt_restriction']})")
    counts.append(f"remaining {result['remaining_after']}")
    related = "".join(f", {n} {t}" for t, n in sorted(result["related"].items()))
    mode = "dry run" if result["dry_run"] else "enforced"
    return f"{result['rule_id']} ({mode}, as-of {result['as_of']}, {result['status']}): {', '.join(counts)}{related}"


@policy_app.command("check")
def policy_check(
    strict: bool = typer.Option(False, "--strict", help="Fail on excess privileges too, not only on missing ones."),
):
    """Validate the policy and inventory files, then check, rule by rule, every name it uses
    against the live systems (what the rule's tasks check before they change anything), and, per
    SQL connection, the privileges its user has against what the rules need (`lethe policy
    roles`): a missing one fails, an excess one is a warning (with --strict it fails too)."""
    from datetime import datetime

    from lethe.config import ConfigError, load_inventory, load_policy
    from lethe.db import connection_path, connection_url
    from lethe.errors import ConfigurationError
    from lethe.runner import Engines, check_rule
    from lethe.sources.base import RunContext

    try:
        policy = load_policy()
        inventory = load_inventory(policy=policy)
    except ConfigError as exc:
        _fail(str(exc), 2)
    typer.echo(f"policy: {len(policy.rules)} rules ({', '.join(policy.rule_ids)})")
    _say_fallbacks(sorted({source.connection_id for source in inventory.sources.values()}))
    engines = Engines(resolve=connection_url)
    ctx = RunContext(
        run_id="policy-check",
        dag_id="",
        task_id="",
        as_of=datetime.min,
        dry_run=True,
        policy=policy,
        inventory=inventory,
        audit=None,
        key="",
        engine_for=engines,
        url_for=connection_url,
        folder_for=connection_path,
    )
    problems = 0
    for source in inventory.sources.values():
        for rule_id in inventory.rules_of(source.source):
            where = f"rule {rule_id} (source {source.source})"
            try:
                typer.echo(f"{where}: ok: {check_rule(ctx, rule_id)}")
            except (ConfigurationError, OSError) as exc:
                problems += 1
                typer.echo(f"{where}: {exc}", err=True)
            except Exception as exc:  # a source that cannot be reached is reported, the others checked
                problems += 1
                typer.echo(f"{where}: cannot connect: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", err=True)
    try:
        problems += _check_privileges(inventory, engines, strict)
    finally:
        engines.dispose()
    if problems:
        raise typer.Exit(1)


def _check_privileges(inventory, engines, strict: bool) -> int:
    """Per SQL connection, the privileges of its user against its role's needs; how many connections fail."""
    from lethe import privileges
    from lethe.db import connection_url
    from lethe.errors import ConnectionNotConfigured

    _say_fallbacks(["lethe_audit"])
    failed = 0
    for name, needs in privileges.roles(inventory).items():
        where = f"privileges of connection {needs.connection_id}"
        try:
            url = connection_url(needs.connection_id)
        except ConnectionNotConfigured as exc:
            typer.echo(f"{where}: not checked: {exc}", err=True)
            continue
        if url.get_backend_name() == "sqlite":
            typer.echo(f"{where}: SQLite (files): privileges do not apply")
            continue
        try:
            found = privileges.check(inventory, name, engines(needs.connection_id))
        except Exception as exc:  # one connection that cannot be read is reported, the others checked
            failed += 1
            typer.echo(f"{where}: cannot check: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", err=True)
            continue
        verdict = "ok" if not found.missing and not (strict and found.excess) else "FAILED"
        typer.echo(
            f"{where} ({found.backend}, user {found.user}): {verdict}: "
            f"{len(found.missing)} missing, {len(found.excess)} excess"
        )
        for line in found.missing:
            typer.echo(f"{where}: missing: {line}", err=True)
        for line in found.excess:
            typer.echo(f"{where}: excess: {line}", err=True)
        for line in found.notes:
            typer.echo(f"{where}: note: {line}")
        failed += verdict != "ok"
    return failed


@policy_app.command("roles")
def policy_roles(
    dialect: str = typer.Option(None, help="postgresql or mariadb (default: both)."),
    source: str = typer.Option(None, help="crm, marketing, trials or audit (the audit store); default: every role."),
    write: bool = typer.Option(False, "--write", help="Rewrite the scripts under deploy/roles/ instead of printing."),
):
    """The SQL scripts that create Lethe's least-privilege roles, generated from the inventory: one
    per SQL connection (each SQL source, the trial server, the audit store) and dialect."""
    from lethe import privileges
    from lethe.config import ConfigError, load_inventory

    try:
        found = privileges.scripts(load_inventory(), [dialect] if dialect else None, [source] if source else None)
    except ConfigError as exc:
        _fail(str(exc), 2)
    if write:
        for path, content in found.items():
            (privileges.REPO_ROOT / path).parent.mkdir(parents=True, exist_ok=True)
            (privileges.REPO_ROOT / path).write_text(content)
            typer.echo(f"wrote {path}")
        return
    if len(found) == 1:
        typer.echo(next(iter(found.values())), nl=False)
        return
    for path, content in found.items():
        typer.echo(f"-- ==> {path} <==\n{content}")


def _airflow_variable(*args: str) -> subprocess.CompletedProcess:
    """``airflow variables ...`` against the Airflow the DAGs run in (the embedded one by default)."""
    import shutil
    import sys

    from lethe.embedded import airflow_home

    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or shutil.which("airflow")
    if not airflow:
        _fail("the airflow command is not installed here", 2)
    env = dict(os.environ)
    home = airflow_home()
    if home:
        env["AIRFLOW_HOME"] = home
    return subprocess.run([airflow, "variables", *args], env=env, capture_output=True, text=True)


def _switch(sources: list[str], armed: bool, by: str | None) -> None:
    import getpass

    from lethe.arming import ARMED_VARIABLE, parse_armed, record_switch
    from lethe.config import ConfigError, load_inventory

    try:
        known = list(load_inventory().sources)
    except ConfigError as exc:
        _fail(str(exc), 2)
    unknown = sorted(set(sources) - set(known))
    if unknown:
        _fail(f"unknown source(s) {', '.join(unknown)} (the inventory has: {', '.join(known)})", 2)
    current = _airflow_variable("get", ARMED_VARIABLE)
    try:
        armed_now = parse_armed(current.stdout.strip()) if current.returncode == 0 else set()
    except ValueError as exc:
        _fail(str(exc), 2)
    wanted = (armed_now | set(sources)) if armed else (armed_now - set(sources))
    value = json.dumps(sorted(wanted))
    done = _airflow_variable("set", ARMED_VARIABLE, value)
    if done.returncode != 0:
        _fail(f"could not set the Airflow Variable {ARMED_VARIABLE}: {done.stderr.strip()[-500:]}")
    who = by or getpass.getuser()
    trail = _audit_trail()
    for source in sources:
        record_switch(trail, source, armed, by=who, how=f"lethe {'arm' if armed else 'disarm'}")
    typer.echo(
        f"{'armed' if armed else 'disarmed'}: {', '.join(sources)} (by {who}; recorded in the audit "
        f"trail); {ARMED_VARIABLE} = {value}"
    )
    if armed:
        typer.echo("The next run of each armed source's DAG enforces: it deletes and anonymises what is due.")


@app.command("arm")
def arm(
    sources: list[str] = typer.Argument(..., help="Source ids of the inventory (crm, marketing, ...)."),
    by: str = typer.Option(None, help="Who arms (default: the user running the command)."),
):
    """Arm enforcement for sources: their DAGs' next runs change data (until then, dry runs)."""
    _switch(sources, True, by)


@app.command("disarm")
def disarm(
    sources: list[str] = typer.Argument(..., help="Source ids of the inventory."),
    by: str = typer.Option(None, help="Who disarms (default: the user running the command)."),
):
    """Disarm enforcement for sources: their DAGs' runs are dry runs again."""
    _switch(sources, False, by)


@audit_app.command("init")
def audit_init(
    url: str = typer.Option(None, help="The audit store's database URL (default: connection lethe_audit)."),
):
    """Create the audit chain once, as an administrator: its tables, index, head row and the
    append-only guard. Lethe's own role may then only append to it and read it (deploy/roles);
    its runs find everything in place and run no DDL. Idempotent: makes only what is missing."""
    from lethe.audit import AuditTrail
    from lethe.db import connection_url, make_engine
    from lethe.errors import ConfigurationError

    if url is None:
        _say_fallbacks(["lethe_audit"])
    try:
        engine = make_engine(url or connection_url("lethe_audit"))
    except ConfigurationError as exc:
        _fail(str(exc), 2)
    try:
        made = AuditTrail(engine, key="").create()  # no entry is written: the key is not used
    finally:
        engine.dispose()
    typer.echo(f"audit store ready: {'created ' + ', '.join(made) if made else 'nothing was missing'}")


@audit_app.command("verify")
def audit_verify():
    """Recompute the hash chain; exit 1 naming the first bad entry."""
    result = _audit_trail().verify()
    if result.ok:
        typer.echo(f"audit trail intact: {result.entries} entries")
        return
    _fail(f"audit trail broken at entry {result.first_bad_seq}: {result.problem}")


KEPT_WORDS = {"kept_by_legal_hold": "kept by a legal hold", "kept_by_restriction": "kept by a restriction"}


@audit_app.command("find")
def audit_find(
    email: str = typer.Option(..., help="The person's e-mail address (never printed)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line instead of the table."),
):
    """What happened to one person across every source: the entries whose subject key is this
    address's keyed hash, oldest first, as a table (the address itself is never printed)."""
    from rich.console import Console
    from rich.table import Table

    from lethe.audit import audit_table
    from lethe.config import load_policy
    from lethe.subjects import email_key

    trail = _audit_trail()
    key = email_key(trail.key, email)
    rules = {rule.id: rule for rule in load_policy().rules}
    table = Table(
        title=f"Audit trail of subject {key[:12]}... (keyed hash of the address)",
        caption="Times are UTC. 'as-of' is the instant the rule decided from.",
    )
    for column in ("entry", "recorded", "rule", "source", "what happened", "where", "as-of", "run"):
        table.add_column(column, overflow="fold")
    found = 0
    for row in trail.entries(audit_table.c.subject_key == key):
        found += 1
        row = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        if as_json:
            typer.echo(json.dumps(row, sort_keys=True))
            continue
        details = json.loads(row["details"])
        rule = rules.get(row["rule_id"])
        table.add_row(
            str(row["seq"]),
            row["recorded_at"],
            f"{row['rule_id']} ({rule.policy_section})" if rule else row["rule_id"],
            row["source"],
            _what_happened(row, details),
            details.get("table") or details.get("database") or details.get("file") or "",
            row["as_of"],
            row["run_id"],
        )
    if not found:
        typer.echo(f"no audit entries for subject {key[:12]}...")
    elif not as_json:
        Console(width=max(160, Console().width)).print(table)


ACTION_WORDS = {"deleted": "deleted", "anonymised": "anonymised"}
# Entries about a whole database or file: what happened to it, without a count of records.
WHOLE_WORDS = {
    "drop_intent": "trial database about to be dropped",
    "database_dropped": "trial database dropped",
    "ip_truncate_intent": "log file about to be rewritten",
    "ip_truncated": "IP addresses truncated in the log file",
    "file_delete_intent": "log file about to be deleted",
    "file_deleted": "log file deleted",
}


def _what_happened(row: dict, details: dict) -> str:
    """An entry in words: kept (why, since when), or what was done and to how many records."""
    action = row["action"]
    if action in KEPT_WORDS:
        return f"{KEPT_WORDS[action]} since {details.get('since')}, past the deadline"
    done = action.removeprefix("would_")
    if done in WHOLE_WORDS:
        text = WHOLE_WORDS[done]
        return f"dry run, would be: {text}" if row["dry_run"] or action.startswith("would_") else text
    words = ACTION_WORDS.get(done, done.replace("_", " "))
    rows = details.get("rows", 1)
    related = ", ".join(
        f"{n} row{'s' if n != 1 else ''} of {t}" for t, n in sorted((details.get("related") or {}).items()) if n
    )
    text = f"{words}: {rows} record{'s' if rows != 1 else ''}" + (f" (and {related})" if related else "")
    if row["dry_run"] or action.startswith("would_"):
        text = f"dry run, would be {text}"
    return text


@report_app.callback(invoke_without_command=True)
def report(
    ctx: typer.Context,
    day: str = typer.Option(None, "--date", help="Rebuild this UTC day's consolidated report (YYYY-MM-DD)."),
):
    """Run reports; with --date, rebuild a day's consolidated report from the audit trail alone
    (reports/daily/<day>/, and reports/latest/ when it is the newest day)."""
    if ctx.invoked_subcommand is not None:
        return
    if not day:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from datetime import date

    from lethe.config import ConfigError, load_inventory, load_policy
    from lethe.evidence.publish import publish_daily
    from lethe.report import reports_dir

    try:
        wanted = date.fromisoformat(day)
    except ValueError:
        _fail(f"--date {day!r} is not a date (YYYY-MM-DD)", 2)
    try:
        policy = load_policy()
        inventory = load_inventory(policy=policy)
    except ConfigError as exc:
        _fail(str(exc), 2)
    trail = _audit_trail()
    try:
        built, folder = publish_daily(trail, policy, inventory, wanted, reports_dir())
    finally:
        trail.engine.dispose()
    typer.echo(built["verdict"]["headline"])
    chain = built["chain"]
    typer.echo(
        f"audit chain head: entry {chain['head_seq']}, {chain['head_hash']} "
        f"({'verified' if chain['ok'] else 'DOES NOT VERIFY: ' + chain['problem']})"
    )
    typer.echo(f"written: {folder / 'consolidated.html'}")
    if not built["verdict"]["ok"]:
        raise typer.Exit(1)


@report_app.command("summary")
def report_summary():
    """Print reports/latest as a table."""
    from lethe.report import summary_text

    typer.echo(summary_text())


@report_app.command("failures")
def report_failures(
    dag_id: str = typer.Argument(..., help="The DAG whose newest run to read."),
    since: str = typer.Option(None, help="Only a report written at or after this UTC instant."),
):
    """One line per failed rule of a DAG's newest run, with the reason (what `make run` prints)."""
    from lethe.report import newest_run_report

    report = newest_run_report(dag_id, since)
    if report is None:
        raise typer.Exit(1)
    for rule in report["rules"]:
        if rule["status"] != "ok":
            typer.echo(f"   {rule['rule']} {rule['status']}: {rule.get('error') or 'see the task log'}")


@app.command(
    "anonymise-log", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, add_help_option=False
)
def anonymise_log(ctx: typer.Context):
    """Truncate IP addresses in a log (anonip-compatible; --help for options)."""
    from lethe.weblogs.anonymizer import main as anonymise_main

    raise typer.Exit(anonymise_main(ctx.args))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
