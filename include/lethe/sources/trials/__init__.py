"""Trial database servers (PostgreSQL, MariaDB, a folder of SQLite files): ``drop_database``."""

from __future__ import annotations

from typing import Any

from lethe.errors import ConfigError
from lethe.sources.registry import SourceKind, register_kind
from lethe.sources.trials.models import TrialDatabasesSource, TrialRule

POOL = "lethe_trial_drops"  # bounds concurrent drops (make creates it with two slots)


def connect(ctx, connection_id: str):
    """A trial server's connection is a URL: the server's own database, or the SQLite folder."""
    from lethe.db import normalise_url

    if ctx.url_for is None:
        raise RuntimeError("the run context resolves no connection URLs (url_for)")
    return normalise_url(ctx.url_for(connection_id))


def cross_check(source: TrialDatabasesSource, sources: dict[str, Any], enforced_by: dict[str, str]) -> None:
    if source.catalog.source not in sources:
        raise ConfigError(
            f"source {source.source}: catalog.source {source.catalog.source!r} is not an inventory source"
        )
    if sources[source.catalog.source].kind != "sql":
        raise ConfigError(f"source {source.source}: catalog.source {source.catalog.source!r} is not a SQL source")


KIND = register_kind(
    SourceKind(
        name="trial_databases",
        model=TrialDatabasesSource,
        rule_model=TrialRule,
        actions="lethe.sources.trials.actions",
        connect=connect,
        mapped=True,
        pool=POOL,
        cross_check=cross_check,
    )
)
