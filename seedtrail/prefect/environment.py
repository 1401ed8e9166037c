"""Prefect's environment: our defaults before it is imported, and the API URL at run time."""

from __future__ import annotations

import os
from collections.abc import MutableMapping

# The API server (ours or a test's) sends usage analytics unless told not to, and logs
# "Failed to send telemetry" on a machine without network. The server reads
# PREFECT_SERVER_ANALYTICS_ENABLED; Prefect's client SDK honours DO_NOT_TRACK. Prefect reads
# its settings once, at import, and servers inherit the environment: set before that.
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


def environment_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set our Prefect defaults unless the user chose otherwise; call before `import prefect`."""
    env = os.environ if environ is None else environ
    for key, value in TELEMETRY_OFF.items():
        env.setdefault(key, value)


def use_api_url(url: str) -> None:
    """Point this process, every thread of it and its future workers at the API `url`.

    The environment reaches worker processes. Prefect read its process-wide settings at
    import, and threads do not inherit a `temporary_settings` context: they are reloaded
    (the one private route left, in workarounds.py).
    """
    from seedtrail.prefect.workarounds import reload_prefect_settings

    os.environ["PREFECT_API_URL"] = url
    reload_prefect_settings()
