"""A stage's wiring: how the pipeline feeds it and what it does around it (code, not names).

The pipeline table (seedtrail/core/pipeline_table.py) names a stage's settings section,
the stages it reads and its manifest sections; the code lives at the end of the stage's
own module, below a line starting with `WIRING_MARKER`:

    # --- wiring: how the pipeline feeds this stage (seedtrail/core/wiring.py)
    def _check(p: Preflight) -> None:
        split_sizes(p.facts["labels"], p.settings.split)

    run_split.wire(check=_check)

What is declared there never changes the stage's bytes: the arguments it builds are in
the cache key as arguments, and the rest runs around the stage (before Prefect starts,
after its result is recorded). So the stage's code version, a hash of its module's source,
stops at that line (seedtrail/core/stage.py): wiring a stage leaves its cache valid.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedtrail.core.stage_result import StageResult

#: The line that starts a stage module's wiring; the code version hashes the source above it.
WIRING_MARKER = "# --- wiring"

#: The user's code and files by content: setting name -> {"sha256": ..., ...}
#: (seedtrail/inputs/user_inputs.py).
UserInputs = Mapping[str, Mapping[str, Any]]


@dataclass
class Preflight:
    """What the checks before Prefect starts share: the run's settings, its store, the
    stages' seeds, and the facts a check learned for later ones (e.g. data's labels)."""

    settings: Any  # RunSettings (a layer above this one)
    store: Path
    seeds: Mapping[str, int]
    facts: dict[str, Any] = field(default_factory=dict)
    commits: list[Callable[[], None]] = field(default_factory=list)

    def after(self, commit: Callable[[], None]) -> None:
        """Run `commit` once every check has passed (e.g. keep the hashes a check made)."""
        self.commits.append(commit)


@dataclass(frozen=True)
class Wiring:
    """The code of a stage's wiring; every part is optional.

    - `arguments(settings)`: run-function arguments taken from the settings beyond `s`
      (e.g. another section, or how files are fed); may replace `s` itself.
    - `key_inputs(settings, user_inputs)`: external content its bytes depend on (user code,
      an image folder), setting -> sha256, passed as its `user_inputs` argument and so in
      its key. A run function with a `user_inputs` parameter must declare it.
    - `check(preflight)`: bad input caught before a run directory exists (no TensorFlow).
    - `on_cache_hit(run_dir)`: clean-up a computed result did itself, after a cache hit.
    - `artifacts(settings, result, run_dir)`: extra files for this run (name -> path),
      drawn from the run's own settings, also when the result came from another run.
    """

    arguments: Callable[[Any], dict[str, Any]] | None = None
    key_inputs: Callable[[Any, UserInputs], dict[str, str]] | None = None
    check: Callable[[Preflight], None] | None = None
    on_cache_hit: Callable[[Path], None] | None = None
    artifacts: Callable[[Any, StageResult, Path], dict[str, str]] | None = None
