"""seedtrail/prefect/workarounds.py: each Prefect internal we rely on is still there and
still behaves as checked. A failure names the item: read workarounds.py's note on it,
then adapt it (or drop it, if Prefect now has a public route)."""

from __future__ import annotations

import inspect
import threading
from importlib.metadata import version

import pytest

from seedtrail.prefect import workarounds


def _checked(what: str) -> str:
    return (
        f"{what} changed in Prefect {version('prefect')} "
        f"(workarounds.py was checked against {workarounds.PREFECT_CHECKED})"
    )


def test_prefect_still_reloads_its_process_wide_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import prefect.context
    from prefect.settings import get_current_settings

    assert callable(getattr(prefect.context, "refresh_global_settings_context", None)), _checked(
        "prefect.context.refresh_global_settings_context"
    )
    seen: list[str | None] = []
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    try:
        workarounds.reload_prefect_settings()
        thread = threading.Thread(target=lambda: seen.append(get_current_settings().api.url))
        thread.start()
        thread.join()
    finally:
        monkeypatch.delenv("PREFECT_API_URL")
        workarounds.reload_prefect_settings()
    assert seen == ["http://127.0.0.1:9/api"], _checked("reloading the global settings context")


def test_coolnames_word_lists_still_make_the_servers_run_names() -> None:
    from coolname import generate_slug

    words = workarounds.coolname_words()
    assert len(words) > 1000, f"coolname {version('coolname')}: coolname.data.config changed"
    for _ in range(100):
        assert set(generate_slug(2).split("-")) <= words, "coolname's names use other words"


def test_prefect_still_words_the_lines_we_leave_out() -> None:
    import prefect.flow_engine
    import prefect.task_engine

    task_engine = inspect.getsource(prefect.task_engine)
    assert 'f"Finished in state {display_state}"' in task_engine, _checked(
        "the task engine's 'Finished in state' line"
    )
    assert f'"{workarounds.ENGINE_EXITED}"' in inspect.getsource(prefect.flow_engine), _checked(
        "the flow engine's 'Engine execution exited' line"
    )


@pytest.mark.parametrize("module", ["prefect.settings", "seedtrail.prefect.server", "flows.train"])
def test_a_deprecation_from_prefect_or_about_our_call_fails_the_tests(module: str) -> None:
    """pyproject's filterwarnings, as pytest matches modules (a regex from the start)."""
    import warnings

    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("removed in 4.0", DeprecationWarning, "x.py", 1, module=module)
    warnings.warn_explicit("removed", DeprecationWarning, "x.py", 1, module="prefect_dask_x")
