"""Folders of daily web server access logs: ``truncate_ip`` (L1) and ``delete_file`` (L2)."""

from __future__ import annotations

from pathlib import Path

from lethe.sources.registry import SourceKind, register_kind
from lethe.sources.weblogs.models import LogFolderSource, LogRule


def connect(ctx, connection_id: str) -> Path:
    """A log folder's connection is a file-system (``fs``) connection: its path."""
    if ctx.folder_for is None:
        raise RuntimeError("this run has no folder resolver (RunContext.folder_for)")
    return Path(ctx.folder_for(connection_id))


KIND = register_kind(
    SourceKind(
        name="log_folder",
        model=LogFolderSource,
        rule_model=LogRule,
        actions="lethe.sources.weblogs.actions",
        connect=connect,
        mapped=True,
    )
)
