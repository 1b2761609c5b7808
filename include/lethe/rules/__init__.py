"""Rule actions behind one interface, found through a registry.

Each action class handles one kind of policy action on one kind of source (``delete`` on a SQL
source, ``drop_database`` on a trial server, ...). Adding a kind of rule is adding a module that
registers its class; nothing else changes.
"""

from lethe.rules.base import RULE_ACTIONS, RuleAction, RuleResult, RunContext, action_for, register

# Importing the modules registers their actions.
from lethe.rules import sql  # noqa: E402,F401
from lethe.rules import trials  # noqa: E402,F401
from lethe.rules import logs  # noqa: E402,F401

__all__ = ["RULE_ACTIONS", "RuleAction", "RuleResult", "RunContext", "action_for", "register"]
