"""Flow-run names and tags: a name a person typed is kept; runs are found by seed.

Prefect applies a `flow_run_name` callable to every run, also one whose name a person
typed in the custom-run form. A name nobody typed is one Prefect generated: the
server's (`generate_slug(2)`: coolname words, e.g. `urban-bat`) or the one the UI's
custom-run form prefills (a Greek letter, maybe digits, then star names:
`gamma2-tethys`). Only such a name is replaced; a typed name that looks like one
(`beta-test`) is replaced too.

A deployment run's tags are fixed when the server creates it, and the seed is only known
from the parameters: the running flow adds `seed:<n>` to itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from uuid import UUID

from seedtrail.prefect.workarounds import coolname_words

_GREEK = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega"
# An empty part is the form's too: "iota--r" was seen in a suite run (its star names are
# not always plain a-z words).
_UI_GENERATED = re.compile(rf"({'|'.join(_GREEK.split())})\d*(-[a-z]*){{1,3}}")


def is_generated_name(name: str | None) -> bool:
    """Whether a flow-run name is one Prefect generated (not typed by a person)."""
    if not name:
        return True
    if _UI_GENERATED.fullmatch(name):
        return True
    parts = name.split("-")
    return len(parts) >= 2 and all(p in coolname_words() for p in parts)


def keep_typed_name(generated: Callable[[], str]) -> Callable[[], str]:
    """A flow_run_name callable that keeps a name typed by a person, else `generated()`."""

    def name() -> str:
        from prefect.runtime import flow_run

        current = flow_run.name
        return generated() if is_generated_name(current) else str(current)

    return name


def seed_tag(seed: int) -> str:
    return f"seed:{seed}"


def tag_current_flow_run(*new_tags: str) -> None:
    """Add tags to the running flow run (no-op outside one)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(run_id)).tags
        if not set(new_tags) <= set(current):
            client.update_flow_run(UUID(run_id), tags=sorted({*current, *new_tags}))
