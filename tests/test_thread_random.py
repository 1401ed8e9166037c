"""seedtrail/core/thread_random.py: while a thread owns Python's global `random` stream,
other threads' draws do not shift it; outside, they do (the hazard it exists for)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pytest

from seedtrail.core import thread_random
from seedtrail.core.stage import stage
from seedtrail.core.stage_result import StageOutput


def _in_another_thread(fn: Callable[[], object]) -> None:
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def _draws() -> list[float]:
    """Draws through several routed names, as a stage or Keras would make them."""
    items = list(range(10))
    random.shuffle(items)
    return [random.random(), random.randint(1, 10**9), random.uniform(0, 1), *items]


def _seeded_draws(interfere: bool) -> list[float]:
    random.seed(7)
    first = random.random()
    if interfere:  # e.g. Prefect's reconnect jitter, on one of its threads
        _in_another_thread(lambda: [random.random() for _ in range(5)])
    return [first, *_draws()]


def test_another_threads_draws_shift_the_global_stream_without_an_owner() -> None:
    assert _seeded_draws(interfere=True) != _seeded_draws(interfere=False)


def test_the_owner_draws_as_if_alone_in_the_process() -> None:
    with thread_random.owned():
        alone = _seeded_draws(interfere=False)
        with_others = _seeded_draws(interfere=True)
    assert with_others == alone
    random.seed(7)
    assert [random.random(), *_draws()] == alone  # the same stream as without the module


def test_every_module_level_drawing_function_is_routed() -> None:
    for name in ("random", "randint", "uniform", "choice", "shuffle", "gauss", "seed"):
        assert name in thread_random.ROUTED_NAMES
    assert "Random" not in thread_random.ROUTED_NAMES


def test_other_threads_seeding_does_not_reach_the_owner() -> None:
    with thread_random.owned():
        random.seed(3)
        _in_another_thread(lambda: random.seed(99))
        got = random.random()
    assert got == random.Random(3).random()


def test_the_functions_are_restored_after_the_window_even_on_error() -> None:
    before = {name: getattr(random, name) for name in thread_random.ROUTED_NAMES}
    with pytest.raises(RuntimeError), thread_random.owned():
        with thread_random.owned():  # nested: the same thread takes it again
            assert random.random is not before["random"]
        assert random.random is not before["random"]  # the outer window still routes
        raise RuntimeError
    assert {name: getattr(random, name) for name in thread_random.ROUTED_NAMES} == before


def test_a_function_bound_inside_a_window_draws_globally_after_it() -> None:
    with thread_random.owned():
        bound = random.random  # what `from random import random` would keep
    random.seed(5)
    seen: list[float] = []
    _in_another_thread(lambda: seen.append(bound()))
    assert seen == [random.Random(5).random()]


def test_a_second_thread_waits_for_the_owner() -> None:
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        inside.wait()
        with thread_random.owned():
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with thread_random.owned():
        inside.set()
        thread.join(timeout=0.5)  # it cannot finish while this thread owns the stream
        order.append("first")
    thread.join()
    assert order == ["first", "second"]


def test_a_stage_owns_the_stream_while_its_body_runs() -> None:
    @stage(cacheable=False, env="none")
    def run_draw(seed: int, interfere: bool) -> StageOutput:
        return StageOutput(",".join(map(str, _seeded_draws(interfere))))

    with_others = run_draw.execute(seed=1, interfere=True).fingerprint
    assert with_others == run_draw.execute(seed=1, interfere=False).fingerprint
