"""Whose request this is: the tenant every service query is scoped to.

The hosted server sets it from the caller's API key; tasks started by a request copy the
context, so runs (and their children, retries and backfills) keep their tenant. Embedded use
never sets it and works as tenant ``"default"``.
"""

from __future__ import annotations

from contextvars import ContextVar

DEFAULT_TENANT = "default"

current_tenant: ContextVar[str] = ContextVar("wfstudio_tenant", default=DEFAULT_TENANT)

