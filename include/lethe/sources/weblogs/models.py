"""The inventory models of a folder of daily web server access logs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from lethe.strict import SourceModel, Strict, coverage_item


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

    def register_coverage(self, rule_id: str) -> list[dict[str, Any]]:
        """The log files the rule acts on, by their name pattern."""
        rule = next(r for r in self.rules if r.rule == rule_id)
        what = "client IP addresses truncated" if rule.action == "truncate_ip" else "deleted whole"
        return [
            coverage_item(
                "files",
                self.source,
                f"log files in the folder of connection {self.connection_id} whose name matches "
                f"{self.file_pattern}: {what}",
                pattern=self.file_pattern,
            )
        ]
