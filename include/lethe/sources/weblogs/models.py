"""The inventory models of a folder of daily web server access logs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lethe.strict import SourceModel, Strict


class LogRule(Strict):
    rule: str
    action: Literal["truncate_ip", "delete_file"]
    ipv4_mask: int = Field(default=8, ge=1, le=32)
    ipv6_mask: int = Field(default=80, ge=1, le=128)


class LogFolderSource(SourceModel):
    """A folder of daily web server access logs (``access.log-YYYYMMDD[.gz]``)."""

    kind: Literal["log_folder"]
    file_pattern: str = r"^access\.log-(?P<date>\d{8})(?P<gz>\.gz)?$"
    rules: list[LogRule] = []
