"""Python's global `random` stream, owned by one thread while a stage runs.

`random.seed(s)` (and `keras.utils.set_random_seed`) seeds one stream that every thread
of the process draws from. Keras draws a default seed from it for every initializer and
Dropout without an explicit seed (`random.randint`: keras/src/random/seed_generator.py,
Keras 3.15.1), also when a saved model is loaded; Prefect's own threads draw from it too
(jitter for reconnects and retries: prefect/_internal/_observation_delivery.py,
prefect/utilities/math.py, Prefect 3.9.1). One draw of theirs between a stage's seeding
and its build shifts every default seed after it: other weights from the same seed.

While a thread is in `owned()`, the module-level functions of `random` (`random.random`,
`random.randint`, ..., `random.seed`) serve that thread from the global stream, exactly
as without this module, and every other thread from a stream of its own: a stage draws
what it would draw if it were alone in the process. Only the names are routed: code that
bound a function itself (`from random import randint`) still draws from the global stream.
tests/test_thread_random.py proves the routing, and tests/test_model_builder.py that
Keras' default seeds go through it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: The stream `random.seed` seeds: the instance behind the module-level functions.
GLOBAL_STREAM: random.Random = random.random.__self__  # type: ignore[attr-defined]
#: Every module-level function of `random` that draws from or seeds the global stream.
ROUTED_NAMES: tuple[str, ...] = tuple(
    sorted(
        name
        for name in dir(random)
        if not name.startswith("_")
        and getattr(getattr(random, name), "__self__", None) is GLOBAL_STREAM
    )
)
_ORIGINAL: dict[str, Callable[..., Any]] = {name: getattr(random, name) for name in ROUTED_NAMES}
# Other threads' draws were never reproducible (they interleave by timing): any seed will do.
_others = random.Random()
_owner: int | None = None
# Reentrant: a stage may call code that takes ownership again (a model build).
_lock = threading.RLock()


def _route(name: str) -> Callable[..., Any]:
    own, other = _ORIGINAL[name], getattr(_others, name)

    # Decided per call, not per window: code that bound a routed function while a window
    # was open (`from random import random`) keeps working after it closes.
    def routed(*args: Any, **kwargs: Any) -> Any:
        owner = _owner
        if owner is None or owner == threading.get_ident():
            return own(*args, **kwargs)
        return other(*args, **kwargs)

    routed.__name__ = routed.__qualname__ = name
    routed.__doc__ = own.__doc__
    routed.__wrapped__ = own  # type: ignore[attr-defined]
    return routed


_ROUTED = {name: _route(name) for name in ROUTED_NAMES}


@contextmanager
def owned() -> Iterator[None]:
    """While inside, the global `random` stream serves only this thread (see the module).

    A second thread that asks while another owns it waits: one stream cannot serve two
    seeded stages at once and stay reproducible.
    """
    global _owner
    with _lock:
        outer = _owner
        _owner = threading.get_ident()
        if outer is None:
            for name, fn in _ROUTED.items():
                setattr(random, name, fn)
        try:
            yield
        finally:
            if outer is None:
                for name, fn in _ORIGINAL.items():
                    setattr(random, name, fn)
            _owner = outer
