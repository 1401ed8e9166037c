"""The stage declaration: one decorator on a pure run function, everything else derived.

    @stage(retries=2, env="stack")
    def run_split(ctx: StageContext, s: SplitSettings, seed: int, data: StageResult) -> StageOutput:
        ...

From that the framework derives:
- the name ("split": the function's name without `run_`) and its Prefect task;
- the code version: a hash of the source of the module that owns the function, down to
  its wiring (`version="..."` overrides it, e.g. to keep a cache across cosmetic edits);
- the cache key, from every argument but `ctx` (seedtrail/core/cache_key.py) plus the
  environment fingerprint the stage depends on, minus the declared `cache_exclude`;
- the cache decision (hit, verified / miss and why / off and why), kept in the record;
- the StageResult with its timing, and the log line.

Conventions of a run function: `ctx` (optional) says where to write and is never
part of the key; `seed` is the stage's seed; a `cache_key` parameter, if declared,
receives the stage's key (e.g. to tie checkpoints to it). `deterministic=False`
means the same inputs may give other bytes: never cached, and verify/compare
report a difference there as expected. `cacheable=False` is for stages that act
on the process itself (the environment stage configures TensorFlow).

How the pipeline feeds the stage (its settings, the results it reads, its external
content, its checks, clean-up and artifacts) is declared by the pipeline table and by
`run_x.wire(...)` at the end of its module (seedtrail/core/wiring.py).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Literal

from seedtrail.core import pipeline_table as registry
from seedtrail.core.cache_key import cache_key
from seedtrail.core.errors import retry_unless_input_error
from seedtrail.core.stage_cache import StageContext, lookup, save_entry
from seedtrail.core.stage_result import StageOutput, StageResult, stopwatch
from seedtrail.core.thread_random import owned
from seedtrail.core.wiring import WIRING_MARKER, Wiring

#: Which environment fingerprint a stage's bytes depend on: "stack" = package versions
#: (numpy, scikit-learn, albumentations); "runtime" = all of it (TF threads, determinism,
#: devices, CPU); "none" = nothing of the environment.
EnvDependency = Literal["none", "stack", "runtime"]
_NOT_ARGUMENTS = ("ctx", "cache_key")


def source_version(fn: Callable[..., Any]) -> str:
    """A hash of the source of the module that owns `fn` (its helpers included), down to
    its wiring: that never changes the stage's bytes (seedtrail/core/wiring.py)."""
    module = inspect.getmodule(fn)
    source = inspect.getsource(module) if module is not None else inspect.getsource(fn)
    head, marker, _ = source.partition("\n" + WIRING_MARKER)
    if marker:  # the source above the wiring, as if the module ended there
        source = head.rstrip("\n") + "\n"
    return "src:" + hashlib.sha256(source.encode()).hexdigest()[:16]


def log_to_run(line: str) -> None:
    """An INFO line in the flow run's logs (the UI) and on the terminal; plain logging outside one."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        get_run_logger().info(line)
    except MissingContextError:  # called as a plain function, e.g. in a test
        logging.getLogger("seedtrail").info(line)


def log_line(result: StageResult) -> str:
    what = "skipped" if result.skipped else f"fingerprint {result.fingerprint[:12]}"
    how = " (cached)" if result.cached else ""
    return f"{result.stage:<11} seed {result.seed:<10d} {what}  {result.duration_s:.2f}s{how}"


class DeclaredStage:
    """A declared stage. Calling it runs its Prefect task; `.fn` is the pure run function."""

    def __init__(
        self,
        fn: Callable[..., StageOutput],
        *,
        name: str | None = None,
        version: str | None = None,
        deterministic: bool = True,
        cacheable: bool = True,
        retries: int = 0,
        env: EnvDependency = "runtime",
        cache_exclude: tuple[str, ...] = (),
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__.removeprefix("run_")
        self.code_version = version or source_version(fn)
        self.deterministic = deterministic
        self.cacheable = cacheable and deterministic  # other bytes next time: nothing to reuse
        self.retries = retries
        self.env = env
        self.signature = inspect.signature(fn)
        unknown = set(cache_exclude) - set(self.signature.parameters)
        if unknown:
            raise ValueError(f"stage {self.name}: cache_exclude names no argument: {unknown}")
        if "seed" not in self.signature.parameters:
            raise ValueError(f"stage {self.name}: the run function needs a `seed` argument")
        self.cache_exclude = tuple(cache_exclude)
        self.wiring = Wiring()
        self.task = self._make_task()
        registry.register(self)

    def _make_task(self):
        from prefect import task

        def run_stage(*args: Any, **kwargs: Any) -> StageResult:
            return self.execute(*args, **kwargs)

        run_stage.__signature__ = self.signature  # Prefect records the run function's inputs
        run_stage.__doc__ = self.fn.__doc__
        options: dict[str, Any] = {"name": self.name, "retries": self.retries}
        if self.retries:
            options |= {"retry_delay_seconds": 0.5, "retry_condition_fn": retry_unless_input_error}
        return task(run_stage, **options)

    def wire(self, **parts: Any) -> None:
        """Declare the stage's wiring (the fields of `Wiring`), at the end of its module."""
        wiring = Wiring(**parts)
        takes_inputs = "user_inputs" in self.signature.parameters
        if (wiring.key_inputs is not None) != takes_inputs:
            raise ValueError(
                f"stage {self.name}: declare key_inputs in its wiring exactly when its run "
                "function takes `user_inputs` (external content missing from a key goes stale)"
            )
        self.wiring = wiring

    def __call__(self, *args: Any, **kwargs: Any) -> StageResult:
        return self.task(*args, **kwargs)

    def key(self, arguments: dict[str, Any]) -> str:
        ctx = arguments.get("ctx")
        environment = {
            "none": "",
            "stack": getattr(ctx, "stack_fingerprint", ""),
            "runtime": getattr(ctx, "env_fingerprint", ""),
        }[self.env]
        keyed = {
            n: v
            for n, v in arguments.items()
            if n not in _NOT_ARGUMENTS and n not in self.cache_exclude
        }
        return cache_key(self.name, self.code_version, keyed, environment)

    def decide(self, ctx: StageContext | None, key: str) -> tuple[StageResult | None, dict]:
        """A verified cache hit, or None; and why, as data."""
        if not self.deterministic:
            return None, {"status": "off", "key": key, "reason": "not deterministic"}
        if not self.cacheable or ctx is None:
            return None, {"status": "off", "key": key, "reason": "not cacheable"}
        return lookup(ctx, self.name, key)

    def execute(self, *args: Any, **kwargs: Any) -> StageResult:
        """Look up the cache, else run, record and store; then log one line."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        ctx = arguments.get("ctx")
        key = self.key(arguments)
        with stopwatch() as elapsed:
            hit, decision = self.decide(ctx, key)
            if hit is not None:
                result = replace(hit, duration_s=elapsed(), cache=decision)
        if hit is None:
            if "cache_key" in self.signature.parameters:
                arguments["cache_key"] = key
            # Prefect's threads must not draw from the stream the stage seeds (thread_random.py)
            with stopwatch() as elapsed, owned():
                out = self.fn(**arguments)
            result = StageResult(
                stage=self.name,
                seed=arguments["seed"],
                fingerprint=out.fingerprint,
                duration_s=elapsed(),
                skipped=out.skipped,
                outputs=dict(out.outputs),
                info=dict(out.info),
                deterministic=self.deterministic,
                cache=decision,
            )
            if self.cacheable and ctx is not None:
                save_entry(ctx, key, result)
        log_to_run(log_line(result))
        return result


def stage(
    *,
    name: str | None = None,
    version: str | None = None,
    deterministic: bool = True,
    cacheable: bool = True,
    retries: int = 0,
    env: EnvDependency = "runtime",
    cache_exclude: tuple[str, ...] = (),
) -> Callable[[Callable[..., StageOutput]], DeclaredStage]:
    """Declare a pipeline stage on its run function (see the module docstring)."""

    def declare(fn: Callable[..., StageOutput]) -> DeclaredStage:
        return DeclaredStage(
            fn,
            name=name,
            version=version,
            deterministic=deterministic,
            cacheable=cacheable,
            retries=retries,
            env=env,
            cache_exclude=cache_exclude,
        )

    return declare
