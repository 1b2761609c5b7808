"""Every exception Lethe raises on purpose, in one place.

:class:`ConfigurationError` is the base of the errors a retry cannot mend: a wrong policy or
inventory file, a name the live system lacks, data a rule cannot judge, a connection or folder
that is not set up, a missing audit key. A task that hits one fails at once, with no retry, and
its message (names only, never row values) goes into the run report.
"""

from __future__ import annotations


class LetheError(Exception):
    """Base of Lethe's own exceptions."""


class ConfigurationError(LetheError):
    """Wrong configuration or estate: the task fails at once, it does not retry."""


class ConfigError(ConfigurationError, ValueError):
    """A policy or inventory file is wrong; the message names file, entry and field."""


class SchemaMismatch(ConfigurationError, RuntimeError):
    """The inventory names a table or column the database does not have."""


class BadData(ConfigurationError, RuntimeError):
    """A value the rule must judge is not what the inventory says it is; the message names it."""


class QuarantineTooLarge(BadData):
    """Too much of a table fails the checks before a rule (or a check cannot run): the rule stops
    before changing anything; the message names the check, the count and what to fix."""


class PolicyStillBroken(LetheError, RuntimeError):
    """The check after a rule found records still eligible: the policy is broken after the run."""


class ConnectionNotConfigured(ConfigurationError, RuntimeError):
    """A connection Lethe needs is not set, or is not of a kind it can use."""


class FolderMissing(ConfigurationError, FileNotFoundError):
    """The folder a source's connection names is not a directory."""


class AuditStoreNotReady(ConfigurationError, RuntimeError):
    """The audit chain lacks a table, its head row or its guard, and the connection may not make
    them: an administrator runs ``lethe audit init`` once."""


class MissingAuditKey(ConfigurationError, RuntimeError):
    """No audit key (or one too short): nothing may be decided without it."""


class FileChangedError(LetheError, RuntimeError):
    """A file changed while it was being rewritten; nothing was replaced (a retry redoes it)."""


class DuplicateRegistration(LetheError, ValueError):
    """A kind of source, or an action of one, is registered twice."""
