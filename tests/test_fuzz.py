"""Property-based: whatever is read from disk or the command line, the answer is a clean one.

Generated flag lists, TOML configs, manifests and stage-cache entries go through the
pure functions the commands use (in-process, so hundreds of cases take seconds). Each
must give a valid result or InputError/NotARun with one line per problem — never
another exception — and write nothing. A bad cache entry is a miss, and a hit is only
ever the entry exactly as it was saved. Two subprocess checks close the loop: what
the in-process errors become at the command line (exit 2, one line, nothing left).
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from seedtrail.core.errors import InputError
from seedtrail.core.stage_cache import StageContext, _entry_path, load_entry, save_entry
from seedtrail.core.stage_result import StageResult
from seedtrail.inputs.labels import MISSING
from seedtrail.run.manifest import NotARun, read_manifest
from settings import RunSettings
from settings.cli import load_settings
from settings.seeds import STAGES
from tasks.data import read_csv
from tests.conftest import run_module
from tests.manifests import consistent

FUZZ = hyp_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # bounded, so it can run on every CI push

FLAGS = [
    "--seed", "--output-dir", "--data.kind", "--data.path", "--data.n-samples",
    "--data.image-size", "--split.test-size", "--split.val-size", "--model.conv-filters",
    "--model.dropout", "--training.epochs", "--training.optimizer", "--training.learning-rate",
    "--determinism.intra-op-threads", "--seeds.model", "--augment.enabled",
]  # fmt: skip

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
flag_values = (
    st.sampled_from(["", "0", "-1", "1e9", "nan", "adam", "file", "a,b", "16,0", "[1]", "{}"])
    | st.integers(-(2**40), 2**40).map(str)
    | st.text(max_size=10)
)
flag_names = (
    st.sampled_from(FLAGS)
    | st.sampled_from(FLAGS).map(lambda f: f[:-1])
    | st.text(min_size=1, max_size=12).map(lambda t: f"--{t}")
)


def _clean(problems: list[str]) -> None:
    assert problems, "an error without a message"
    for line in problems:
        assert line.strip() and "\n" not in line and "Traceback" not in line, line


@contextmanager
def _scratch() -> Iterator[Path]:
    """A fresh directory per example (pytest's tmp_path is one per test)."""
    with tempfile.TemporaryDirectory(prefix="seedtrail-fuzz-") as d:
        yield Path(d)


def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- flags and TOML ----------------------------------------------------------------------------


@FUZZ
@given(st.lists(st.tuples(flag_names, flag_values), max_size=4))
def test_any_flag_list_gives_settings_or_one_line_per_problem(pairs: list[tuple[str, str]]) -> None:
    argv = [x for name, value in pairs for x in (name, value)]
    if any(a in ("-h", "--help") for a in argv):
        return  # prints help and exits 0: not an error case
    with _scratch() as root:
        before = _listing(root)
        try:
            result = load_settings([*argv, "--output-dir", str(root / "runs")])
        except InputError as err:
            _clean(err.problems)
        else:
            assert isinstance(result, RunSettings)
        assert _listing(root) == before  # loading settings writes nothing


def _toml_value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, bool) else str(v).lower()


toml_sections = st.dictionaries(
    st.sampled_from(["data", "model", "training", "split", "seeds", "bogus"]),
    st.dictionaries(
        st.sampled_from(["epochs", "kind", "conv_filters", "test_size", "path", "model", "x"]),
        st.integers(-5, 2000) | st.text(max_size=5) | st.booleans() | st.lists(st.integers(-3, 3)),
        max_size=3,
    ),
    max_size=3,
)


@FUZZ
@given(toml_sections, st.text(max_size=30), st.booleans())
def test_any_config_file_gives_settings_or_one_line_naming_the_problem(
    sections: dict[str, dict[str, Any]], junk: str, garble: bool
) -> None:
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in body.items())
        for name, body in sections.items()
    )
    if garble:
        text = junk + text
    with _scratch() as root:
        config = root / "run.toml"
        config.write_text(text)
        try:
            load_settings(["--config", str(config), "--output-dir", str(root / "runs")])
        except InputError as err:
            _clean(err.problems)
        assert _listing(root) == {"run.toml"}


# ---- manifests ---------------------------------------------------------------------------------

FP = "cd" * 32


def valid_manifest() -> dict[str, Any]:
    """A manifest that matches its own content (seeds, settings fingerprint, seal)."""
    return consistent(
        {
            "run_id": "r",
            "status": "complete",
            "settings": RunSettings().model_dump(mode="json"),
            "seeds": {"root": 0, "stages": dict.fromkeys(STAGES, 1), "pinned": []},
            "stages": {
                s: {"seed": 1, "fingerprint": FP, "info": {"final": {"loss": 0.1}}} for s in STAGES
            },
            "metrics": {"test_accuracy": 0.5},
            "environment": {"python": "3.11"},
        }
    )


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts (the places a mutation can hit)."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    return out


def _mutate(obj: dict[str, Any], path: tuple, value: Any, delete: bool) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    target = new
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return new


@st.composite
def mutated_manifests(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(json_values)  # anything at all
    base = valid_manifest()
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(base)
        if not paths:
            break
        base = _mutate(base, draw(st.sampled_from(paths)), draw(json_values), draw(st.booleans()))
    return base


# Hypothesis warns when the global `random` moves while it draws. These strategies never
# touch it (alone, `-W error` passes); Prefect's background threads, left in this pytest
# worker by its earlier in-process flows, do (retry jitter: prefect/utilities/math.py,
# prefect/_internal/_observation_delivery.py), and at times mid-draw.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@FUZZ
@given(mutated_manifests(), st.booleans())
def test_any_manifest_is_read_resumed_and_compared_cleanly(manifest: Any, incomplete: bool) -> None:
    from seedtrail.cli.train_args import resumed_settings as _resumed_settings
    from seedtrail.compare.diff import read_run
    from seedtrail.compare.explanation import compare_manifests

    with _scratch() as root:
        run = root / "run"
        run.mkdir()
        if incomplete and isinstance(manifest, dict):
            manifest = {**manifest, "status": "interrupted"}
        (run / "manifest.json").write_text(json.dumps(manifest))
        before = _listing(root)
        try:
            read_manifest(run)
        except NotARun as err:
            _clean([str(err)])
        for step in (
            lambda: _resumed_settings(run, []),
            lambda: compare_manifests(read_run(run), read_run(run)).render(),
        ):
            try:
                step()
            except InputError as err:
                _clean(err.problems)
        assert _listing(root) == before


def test_a_valid_manifest_passes_every_reader(tmp_path: Path) -> None:
    """The base of the mutations is valid, so each rejection above is the mutation's doing."""
    from seedtrail.compare.diff import read_run
    from seedtrail.compare.explanation import compare_manifests

    (tmp_path / "manifest.json").write_text(json.dumps(valid_manifest()))
    result = compare_manifests(read_run(tmp_path), read_run(tmp_path))
    assert result.matches


# ---- stage cache entries -----------------------------------------------------------------------


def _saved_entry(root: Path) -> tuple[StageContext, StageResult]:
    ctx = StageContext(run_dir=root / "run", store=root / ".store")
    ctx.run_dir.mkdir(parents=True)
    (ctx.run_dir / "model.keras").write_bytes(b"weights")
    result = StageResult(
        "train", 3, FP, 0.25, outputs={"model": str(ctx.run_dir / "model.keras")},
        info={"epoch_fingerprints": [FP], "final": {"loss": 0.5}},
    )  # fmt: skip
    save_entry(ctx, "key", result)
    return ctx, result


@FUZZ
@given(st.data())
def test_a_cache_hit_is_only_ever_the_entry_as_saved(data: st.DataObject) -> None:
    with _scratch() as root:
        ctx, _ = _saved_entry(root)
        path = _entry_path(ctx, "train", "key")
        entry = json.loads(path.read_text())
        if data.draw(st.booleans(), label="replace whole entry"):
            changed = data.draw(json_values, label="entry")
        else:
            where = data.draw(st.sampled_from(_paths(entry)), label="path")
            value = data.draw(json_values, label="value")
            changed = _mutate(entry, where, value, data.draw(st.booleans(), label="delete"))
        path.write_text(json.dumps(changed))
        fresh = StageContext(run_dir=root / "run2", store=ctx.store)
        fresh.run_dir.mkdir()
        hit, why = load_entry(fresh, "train", "key")  # must never raise
        # As bytes, not Python values: 0 == False and 1 == 1.0 in Python, not in the entry.
        if json.dumps(changed, sort_keys=True) == json.dumps(entry, sort_keys=True):
            assert hit is not None, why
        else:
            assert hit is None and why, "an edited entry was trusted"
            assert not any(fresh.run_dir.iterdir())  # nothing materialized from it
        assert not any(p.name.startswith("escaped") for p in root.rglob("*"))


# ---- at the command line -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("module", ["flows.compare", "flows.verify"])
def test_a_manifest_of_wrong_types_is_one_line_at_the_command_line(
    tmp_path: Path, module: str
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    manifest = valid_manifest()
    manifest["stages"]["train"]["info"] = ["not", "an", "object"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    before = _listing(tmp_path)
    args = [str(run), str(run)] if module == "flows.compare" else [str(run)]
    res = run_module(
        module, args, cwd=tmp_path, prefect_home=tmp_path / "home", timeout=120,
        env={"TMPDIR": str(tmp_path / "tmp")},
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.strip().count("\n") == 0, res.stderr
    assert "stages.train.info: Input should be a valid dictionary" in res.stderr
    assert _listing(tmp_path) - before <= {"home"}, _listing(tmp_path) - before


# ---- manifest integrity: an edit is always caught ---------------------------------------------

fingerprints = st.text("0123456789abcdef", min_size=64, max_size=64)
edit_values = json_values | fingerprints | st.sampled_from([math.nan, math.inf, -math.inf])


def _as_file(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _refuses_edit(
    base: dict[str, Any],
    data: st.DataObject,
    roots: tuple[str, ...],
    free: tuple = (),
    keep: tuple[str, ...] = (),
) -> None:
    """Edit (or delete, outside `keep`) one value under `roots` but not in `free`: refused."""
    paths = [p for p in _paths(base) if p[0] in roots and p not in free]
    where = data.draw(st.sampled_from(paths), label="path")
    value = data.draw(edit_values, label="value")
    delete = data.draw(st.booleans(), label="delete") and where[0] not in keep
    edited = _mutate(base, where, value, delete)
    assume(_as_file(edited) != _as_file(base))  # as bytes: 1 and 1.0 differ in the file
    with _scratch() as root:
        (root / "manifest.json").write_text(json.dumps(edited))
        with pytest.raises(NotARun) as err:  # "edited", or corrupt when the type is wrong
            read_manifest(root)
        _clean(err.value.problems)


@FUZZ
@given(st.data())
def test_any_edit_of_settings_metrics_seeds_or_fingerprints_is_refused(data: st.DataObject) -> None:
    from tests.test_compare import make_manifest

    base = consistent(make_manifest())
    _refuses_edit(base, data, ("settings", "settings_fingerprint", "metrics", "seeds", "stages"))


@FUZZ
@given(st.data())
def test_an_unsealed_manifest_refuses_any_edit_of_its_settings_or_seeds(
    data: st.DataObject,
) -> None:
    """Version 2 (no seal): the settings fingerprint and the seed rule still catch these."""
    from tests.test_compare import make_manifest

    base = consistent(make_manifest())
    del base["manifest_sha256"]
    base["manifest_version"] = 2
    base["settings"].pop("output_dir")  # where files go: not in the settings fingerprint
    read_manifest_ok = json.loads(json.dumps(base))
    with _scratch() as root:
        (root / "manifest.json").write_text(json.dumps(read_manifest_ok))
        read_manifest(root)  # the unedited base is valid
    # Without a seal: the rule's wording is not checked (it may be reworded between
    # versions), a seed record deleted is information lost, not a wrong one, and the
    # inter-op thread count changes no byte (issue 23): it is not in the settings fingerprint.
    roots = ("settings", "settings_fingerprint", "seeds")
    free = (("seeds", "rule"), ("settings", "determinism", "inter_op_threads"))
    _refuses_edit(base, data, roots, free=free, keep=("seeds",))


def test_the_integrity_fuzz_base_is_valid(tmp_path: Path) -> None:
    """Each refusal above is the edit's doing: the base itself reads."""
    from tests.test_compare import make_manifest

    (tmp_path / "manifest.json").write_text(json.dumps(consistent(make_manifest())))
    assert read_manifest(tmp_path).complete


# ---- labels: a missing cell is never a class; numbers sort as numbers ---------------------------

label_names = st.sampled_from(["a", "b", "cat", "none", "1", "2", "10", "-3", "0.0"])
missing_cells = st.sampled_from(sorted(MISSING))


@FUZZ
@given(st.lists(label_names, min_size=2, max_size=30), st.data())
def test_a_label_column_with_missing_cells_is_always_refused_naming_them(
    cells: list[str], data: st.DataObject
) -> None:
    where = data.draw(
        st.sets(st.integers(0, len(cells) - 1), min_size=1, max_size=len(cells)), label="missing"
    )
    for i in where:
        cells[i] = data.draw(missing_cells, label="marker")
    with _scratch() as root:
        path = root / "d.csv"
        path.write_text("f,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(cells)))
        with pytest.raises(InputError) as err:
            read_csv(path, "label")
        (line,) = err.value.problems
        lines = sorted(i + 2 for i in where)  # the header is line 1
        assert f"has {len(where)} missing label" in line, line
        assert f" {', '.join(map(str, lines[:5]))}" in line, line


@FUZZ
@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=2, max_size=30).filter(
        lambda v: len(set(v)) > 1
    )
)
def test_numeric_labels_are_classes_in_numeric_order(values: list[int]) -> None:
    with _scratch() as root:
        path = root / "d.csv"
        path.write_text("f,label\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
        ds = read_csv(path, "label")
    assert ds.class_names == tuple(str(v) for v in sorted(set(values)))
    assert [int(ds.class_names[k]) for k in ds.y] == values


@pytest.mark.parametrize("where", ["entry", "stored file", "arrays"])
def test_a_store_entry_replaced_by_a_directory_is_a_miss_then_rewritten(
    tmp_path: Path, where: str
) -> None:
    """Issue 24: a directory in place of a store file gave an IsADirectoryError traceback."""
    import numpy as np

    from seedtrail.core.stage_cache import lookup
    from seedtrail.core.store import load_arrays, put_arrays

    if where == "arrays":
        fp, path = put_arrays(tmp_path / ".store", {"x": np.arange(3)})
        path.unlink()
        (path / "inside").mkdir(parents=True)
        fp2, path2 = put_arrays(tmp_path / ".store", {"x": np.arange(3)})  # the recompute
        assert (fp2, path2) == (fp, path) and load_arrays(path, fp)["x"].tolist() == [0, 1, 2]
        return
    ctx, result = _saved_entry(tmp_path)
    path = _entry_path(ctx, "train", "key")
    if where == "stored file":
        (path,) = (ctx.store / "files").iterdir()
    path.unlink()
    (path / "inside").mkdir(parents=True)
    fresh = StageContext(run_dir=tmp_path / "run2", store=ctx.store)
    fresh.run_dir.mkdir()
    warnings: list[str] = []
    hit, decision = lookup(fresh, "train", "key", log=warnings.append)
    assert hit is None and decision["status"] == "miss"
    assert len(warnings) == 1 and "a directory" in warnings[0], warnings
    save_entry(ctx, "key", result)  # the stage ran again and saves its result
    hit, decision = lookup(fresh, "train", "key", log=warnings.append)
    assert hit is not None and decision["status"] == "hit" and len(warnings) == 1
