"""Make a flow run easy to find in the Prefect UI: tag it with its root seed."""

from __future__ import annotations

from uuid import UUID


def seed_tag(seed: int) -> str:
    return f"seed:{seed}"


def tag_current_flow_run(*new_tags: str) -> None:
    """Add tags to the running flow run (no-op outside one).

    A deployment run's tags are fixed when the server creates it (deployment tags
    plus the caller's); the seed is only known from its parameters, so add it here.
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if run_id is None:
        return
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(UUID(run_id)).tags
        if not set(new_tags) <= set(current):
            client.update_flow_run(UUID(run_id), tags=sorted({*current, *new_tags}))
