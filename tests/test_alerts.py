"""The one notifier: its log line, its failures, and its e-mails through Airflow's SMTP connection.

Mail goes to a local SMTP server (the ``smtp_server`` fixture) and is read back. The SMTP
connection comes from the environment (``AIRFLOW_CONN_SMTP_DEFAULT``), which Airflow's connection
lookup reads outside a task too (its fallback chain: environment and configured backends, no
metadata database), so ``send_alert`` and ``deadline_missed`` run here as in a task and in the
triggerer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone

import pytest
from test_dags import airflow_env, demo, run_runner  # noqa: F401 (fixtures)

from lethe.alerts import KINDS, Alert, anotify, notify, recipients


def _alert_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "lethe.alerts"]


def test_notify_logs_one_error_line_then_sends(caplog):
    alert = Alert("breach", "2 rules overdue", ["C1: 3 overdue", "W1: did not run"], dag_id="lethe_report")
    sent = []
    with caplog.at_level(logging.INFO, logger="lethe.alerts"):
        assert notify(alert, lambda subject, body: sent.append((subject, body))) is True
    [record] = _alert_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == (
        "LETHE ALERT [breach] 2 rules overdue dag=lethe_report | C1: 3 overdue | W1: did not run"
    )
    assert sent == [
        (
            "[Lethe] breach of the retention policy: 2 rules overdue",
            "[Lethe] breach of the retention policy: 2 rules overdue\nDAG lethe_report\n\n"
            "C1: 3 overdue\nW1: did not run\n",
        )
    ]


def test_without_a_sender_the_alert_is_logged_only(caplog):
    with caplog.at_level(logging.INFO, logger="lethe.alerts"):
        assert notify(Alert("verification_failed", "chain broken at seq 12")) is False
    assert [r.getMessage() for r in _alert_records(caplog)] == [
        "LETHE ALERT [verification_failed] chain broken at seq 12"
    ]


def test_a_sender_that_fails_is_logged_and_the_alert_stands(caplog):
    def refuse(subject, body):
        raise ConnectionRefusedError("smtp.example.test:25 refused")

    async def refuse_async(subject, body):
        refuse(subject, body)

    alert = Alert("rule_failed", "rule(s) W1 failed", run_id="scheduled__2026-11-26")
    with caplog.at_level(logging.INFO, logger="lethe.alerts"):
        assert notify(alert, refuse) is False
        assert asyncio.run(anotify(alert, refuse_async)) is False
    messages = [r.getMessage() for r in _alert_records(caplog)]
    told = "LETHE ALERT [rule_failed] rule(s) W1 failed run=scheduled__2026-11-26"
    not_sent = "LETHE ALERT [rule_failed] could not be e-mailed: ConnectionRefusedError: smtp.example.test:25 refused"
    assert messages == [told, not_sent, told, not_sent]
    assert all(r.levelno == logging.ERROR for r in _alert_records(caplog))


def test_an_unknown_kind_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError) as raised:
        Alert("disk_full", "no space")
    assert "'disk_full'" in str(raised.value)
    assert all(kind in str(raised.value) for kind in KINDS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("dpo@example.test", ["dpo@example.test"]),
        (
            " dpo@example.test, ops@example.test;sec@example.test ;",
            ["dpo@example.test", "ops@example.test", "sec@example.test"],
        ),
        (["dpo@example.test", " ", " ops@example.test "], ["dpo@example.test", "ops@example.test"]),
    ],
)
def test_recipients(value, expected):
    assert recipients(value) == expected


# Through Airflow: the adapter, its SMTP connection, the local server.


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """lethe.airflow_adapter, imported with an AIRFLOW_HOME of its own (Airflow reads it on import)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
        mp.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from lethe import airflow_adapter

        yield airflow_adapter


def smtp_connection(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "disable_tls": True,
                "disable_ssl": True,
                "from_email": "lethe@example.test",
                "to": "dpo@example.test",
                "retry_limit": 0,
            },
        }
    )


@pytest.fixture
def alert_env(adapter, monkeypatch):
    """No alert connection and no fallback recipients, whatever the shell had: tests add their own."""
    monkeypatch.delenv(f"AIRFLOW_CONN_{adapter.ALERT_CONN_ID.upper()}", raising=False)
    monkeypatch.delenv("LETHE_ALERT_TO", raising=False)
    return monkeypatch


def body_text(message) -> str:
    """The mail's text: the adapter sends the alert's body as HTML, in one <pre>."""
    from html import unescape

    html = message.get_body(("html",)).get_content()
    assert html.startswith("<pre>") and html.endswith("</pre>"), html
    return unescape(html.removeprefix("<pre>").removesuffix("</pre>"))


def test_send_alert_mails_through_the_smtp_connection(adapter, alert_env, smtp_server, caplog):
    alert_env.setenv(f"AIRFLOW_CONN_{adapter.ALERT_CONN_ID.upper()}", smtp_connection(smtp_server.port))
    alert = Alert(
        "rule_failed",
        "rule(s) W1 of lethe_marketing_retention failed (as-of 2026-11-26)",
        ["W1: column web_events.cookie_stored_at does not exist", "Run report: reports/x/report.html"],
        dag_id="lethe_marketing_retention",
        run_id="manual__2026-11-26T02:00:00+00:00",
    )
    with caplog.at_level(logging.INFO, logger="lethe.alerts"):
        assert adapter.send_alert(alert) is True
    [message] = smtp_server.messages
    assert (
        message["Subject"] == "[Lethe] rule failed: rule(s) W1 of lethe_marketing_retention failed (as-of 2026-11-26)"
    )
    assert message["From"] == "lethe@example.test" and message["To"] == "dpo@example.test"
    assert body_text(message) == (
        "[Lethe] rule failed: rule(s) W1 of lethe_marketing_retention failed (as-of 2026-11-26)\n"
        "DAG lethe_marketing_retention, run manual__2026-11-26T02:00:00+00:00\n"
        "\n"
        "W1: column web_events.cookie_stored_at does not exist\n"
        "Run report: reports/x/report.html\n"
    )
    assert [r.getMessage()[:26] for r in _alert_records(caplog)] == ["LETHE ALERT [rule_failed] "]


def test_without_the_smtp_connection_send_alert_only_logs(adapter, alert_env, smtp_server, caplog):
    with caplog.at_level(logging.INFO):
        assert adapter.send_alert(Alert("breach", "1 rule overdue")) is False
    assert smtp_server.messages == []
    assert [r.getMessage() for r in _alert_records(caplog)] == ["LETHE ALERT [breach] 1 rule overdue"]
    assert f"no SMTP connection {adapter.ALERT_CONN_ID}: alerts are logged only" in caplog.text


def test_deadline_missed_mails_from_the_scheduler_context(adapter, alert_env, smtp_server, caplog):
    """The context as the scheduler builds it (Deadline.handle_miss): the run as the REST API shows it."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import DAGRunResponse

    alert_env.setenv(f"AIRFLOW_CONN_{adapter.ALERT_CONN_ID.upper()}", smtp_connection(smtp_server.port))
    logical_date = datetime(2026, 1, 5, 2, tzinfo=timezone.utc)
    dag_run = DAGRunResponse.model_validate(
        {
            "run_id": "manual__2026-01-05T02:00:00+00:00",
            "dag_id": "lethe_crm_retention",
            "logical_date": logical_date,
            "queued_at": datetime(2026, 11, 26, 12, tzinfo=timezone.utc),
            "start_date": None,
            "end_date": None,
            "duration": None,
            "data_interval_start": logical_date,
            "data_interval_end": logical_date,
            "run_after": logical_date,
            "last_scheduling_decision": None,
            "run_type": "manual",
            "state": "queued",
            "triggered_by": "rest_api",
            "triggering_user_name": "admin",
            "conf": {},
            "note": None,
            "dag_versions": [],
            "bundle_version": None,
            "dag_model": {"dag_display_name": "lethe_crm_retention"},
            "partition_key": None,
            "partition_date": None,
        }
    ).model_dump(mode="json")
    context = {
        "dag_run": dag_run,
        "deadline": {"id": "0196f6a2-0000-7000-8000-000000000000", "deadline_time": logical_date + adapter.DEADLINE},
    }
    with caplog.at_level(logging.INFO, logger="lethe.alerts"):
        line = asyncio.run(adapter.deadline_missed(context=context))
    subject = "[Lethe] deadline missed: lethe_crm_retention had not finished by 2026-01-05 06:00 UTC"
    assert line.startswith("LETHE ALERT [deadline_missed] lethe_crm_retention had not finished by 2026-01-05 06:00")
    assert [r.getMessage() for r in _alert_records(caplog)] == [line]
    [message] = smtp_server.messages
    assert message["Subject"] == subject
    assert body_text(message) == (
        f"{subject}\n"
        "DAG lethe_crm_retention, run manual__2026-01-05T02:00:00+00:00\n"
        "\n"
        "logical date 2026-01-05T02:00:00Z, state queued\n"
        "The night's retention rules may not have run: check the run in Airflow and the "
        "consolidated report (reports/latest/consolidated.html).\n"
    )


@pytest.mark.airflow
def test_a_failed_rule_of_a_nightly_run_is_mailed(demo, tmp_path, smtp_server):  # noqa: F811 (fixture)
    """Under dag.test(): W1 names a column the database lacks, so the report task alerts."""
    from test_config import inventory_copy

    folder = inventory_copy(
        tmp_path, "marketing.yaml", lambda d: d["rules"][1]["trigger"]["latest_of"][0].update(column="cookie_stored_at")
    )
    env = {
        **demo["env"],
        "LETHE_INVENTORY_DIR": str(folder),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp_connection(smtp_server.port),
    }
    result, output = run_runner(
        env, "test", "lethe_marketing_retention", demo["as_of"].isoformat(), json.dumps({"as_of": "2026-11-26"})
    )
    assert result["state"].endswith("failed") and result["tasks"]["report"].endswith("failed")
    assert (
        "LETHE ALERT [rule_failed] rule(s) W1 of lethe_marketing_retention failed (as-of 2026-11-26T00:00:00)" in output
    )
    [message] = smtp_server.messages
    assert (
        message["Subject"]
        == "[Lethe] rule failed: rule(s) W1 of lethe_marketing_retention failed (as-of 2026-11-26T00:00:00)"
    )
    assert message["To"] == "dpo@example.test"
    body = body_text(message)
    assert "\nW1: rule W1: inventory source 'marketing' does not match" in body
    assert "column web_events.cookie_stored_at does not exist" in body
    assert "\nRun report: " in body
    assert "@" not in body  # rule ids, names of columns and runs: no addresses of the estate
