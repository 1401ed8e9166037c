"""Where training first diverges (epoch, batch, layer), by how much, and whether it matters
(--tolerance, --against-sweep): issue 20."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seedtrail.compare.drift import first_divergent_batch, loss_str, parse_tolerance
from seedtrail.compare.explanation import compare_manifests
from seedtrail.core.errors import InputError
from seedtrail.run.manifest import parse_manifest
from seedtrail.sweep import against
from seedtrail.sweep.plan import summarize
from settings.model import RunSettings
from tests.conftest import ROOT, TinyRuns, run_module
from tests.test_compare import fp, make_manifest

EPOCHS, BATCHES = 3, 5
PATHS = ["conv0/kernel", "conv0/bias", "hidden/kernel", "hidden/bias", "output/kernel"]


def with_records(m: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """`m` with train records shaped as tasks/train.py writes them (float32 losses as floats)."""
    m = copy.deepcopy(m)
    rng = np.random.default_rng(seed)
    info = m["stages"]["train"]["info"]
    info["batch_losses"] = [
        [float(np.float32(v)) for v in rng.uniform(0.2, 2.0, BATCHES)] for _ in range(EPOCHS)
    ]
    info["variable_fingerprints"] = [
        {p: fp("var", p, e)[:16] for p in PATHS} for e in range(EPOCHS)
    ]
    return m


def next_float32(value: float) -> float:
    """The next float32 after `value`: the smallest difference a record can show."""
    return float(np.nextafter(np.float32(value), np.float32(np.inf)))


def edit(m: dict[str, Any], epoch: int, batch: int, variables: tuple[str, ...] = ()) -> dict:
    """A copy of m whose batch loss (1-based epoch, batch) is one float32 ulp up, whose later
    losses and epochs differ, and whose `variables` differ from that epoch on."""
    m = copy.deepcopy(m)
    info = m["stages"]["train"]["info"]
    losses = info["batch_losses"]
    losses[epoch - 1][batch - 1] = next_float32(losses[epoch - 1][batch - 1])
    for e in range(epoch - 1, EPOCHS):
        start = batch if e == epoch - 1 else 0
        losses[e][start:] = [v * 1.5 for v in losses[e][start:]]
        info["epoch_fingerprints"][e] = fp("edited epoch", e)
        for p in variables:
            info["variable_fingerprints"][e][p] = fp("edited", p, e)[:16]
    for stage in ("train", "evaluate"):
        m["stages"][stage]["fingerprint"] = fp("edited", stage)
    m["metrics"] = {**m["metrics"], "test_accuracy": 0.505, "test_loss": 1.01}
    return m


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return with_records(make_manifest(epochs=EPOCHS))


@pytest.mark.parametrize(("epoch", "batch"), [(1, 1), (2, 3), (3, 5)])
def test_an_edited_batch_loss_is_found_at_exactly_that_epoch_and_batch(
    reference: dict, epoch: int, batch: int
) -> None:
    edited = edit(reference, epoch, batch, variables=("hidden/kernel",))
    c = compare_manifests(reference, edited)
    assert c.train.batch is not None
    assert (c.train.batch.epoch, c.train.batch.batch, c.train.batch.batches) == (
        epoch,
        batch,
        BATCHES,
    )
    was = reference["stages"]["train"]["info"]["batch_losses"][epoch - 1][batch - 1]
    assert np.float32(c.train.batch.loss_a) == np.float32(was)
    assert np.float32(c.train.batch.loss_b) == np.nextafter(np.float32(was), np.float32(np.inf))
    text = c.render()
    line = f"epoch {epoch}, batch {batch} of {BATCHES}: loss {loss_str(was)} vs "
    assert line + loss_str(next_float32(was)) in text
    assert loss_str(was) != loss_str(next_float32(was))  # one ulp shows in the text
    assert f"first weights that differ at the end of epoch {epoch}: hidden/kernel" in text


def test_the_first_differing_variable_is_the_first_in_model_order(reference: dict) -> None:
    edited = edit(reference, 2, 1, variables=("output/kernel", "conv0/bias"))
    c = compare_manifests(reference, edited)
    assert c.train.variable is not None
    assert (c.train.variable.path, c.train.variable.differing, c.train.variable.total) == (
        "conv0/bias",
        2,
        len(PATHS),
    )


def test_a_difference_after_the_last_forward_pass_is_named_too(reference: dict) -> None:
    """Equal losses, other weights: the last batch's update differs (its loss came before)."""
    edited = copy.deepcopy(reference)
    info = edited["stages"]["train"]["info"]
    info["epoch_fingerprints"][2] = fp("other")
    info["variable_fingerprints"][2]["output/bias"] = "0" * 16
    edited["stages"]["train"]["fingerprint"] = fp("other")
    c = compare_manifests(reference, edited)
    assert c.train.batch is None
    text = c.render()
    assert "every batch's loss matches; the weights differ after epoch 3's last update" in text
    assert "at the end of epoch 3: output/bias" in text


def test_first_divergent_batch_compares_bits_and_batch_counts() -> None:
    nan = float("nan")
    assert first_divergent_batch([[1.0, nan]], [[1.0, nan]]) is None  # NaN is NaN
    d = first_divergent_batch([[1.0, 0.0]], [[1.0, -0.0]])
    assert d is not None and d.where == "epoch 1, batch 2"
    d = first_divergent_batch([[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]])
    assert d is not None and (d.epoch, d.batch, d.batches, d.loss_a, d.loss_b) == (
        2,
        2,
        2,
        None,
        4.0,
    )


def test_old_manifests_without_records_still_compare_and_say_so(reference: dict) -> None:
    old = make_manifest(epochs=EPOCHS)  # no batch_losses: recorded before issue 20
    edited = edit(reference, 2, 2)
    c = compare_manifests(old, edited)
    assert c.exit_code == 1 and c.train.batch is None
    text = c.render()
    assert "A has no per-batch records" in text
    assert "first divergent stage: train" in text
    manifest = parse_manifest(old)
    assert manifest.batch_losses() is None and manifest.variable_fingerprints() is None


# ---- tolerance ------------------------------------------------------------------------


def test_tolerance_parses_aliases_and_full_names() -> None:
    assert parse_tolerance("accuracy=0.01,loss=0.02") == {
        "test_accuracy": 0.01,
        "test_loss": 0.02,
    }
    assert parse_tolerance(" test_macro_f1 = 0 , val_loss=1e-3") == {
        "test_macro_f1": 0.0,
        "final_val_loss": 0.001,
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("accuracy", "expected METRIC=NUMBER"),
        ("accuracy=", "expected METRIC=NUMBER"),
        ("=0.1", "expected METRIC=NUMBER"),
        ("accuracy=0.1,", "expected METRIC=NUMBER"),
        ("accuracy=abc", "'abc' is not a number >= 0"),
        ("accuracy=-0.1", "is not a number >= 0"),
        ("accuracy=nan", "is not a number >= 0"),
        ("precision=0.1", "unknown metric 'precision'"),
        ("accuracy=0.1,test_accuracy=0.2", "given twice"),
    ],
)
def test_a_bad_tolerance_is_one_line_naming_the_flag(text: str, says: str) -> None:
    with pytest.raises(InputError) as err:
        parse_tolerance(text)
    (line,) = err.value.problems
    assert line.startswith("--tolerance") and says in line and "\n" not in line


def test_within_tolerance_reproduces_with_exit_0(reference: dict) -> None:
    edited = edit(reference, 1, 1)  # accuracy +0.005, loss +0.01
    exact = compare_manifests(reference, edited)
    assert exact.exit_code == 1 and "result: DIFFERS (exit 1)" in exact.render()
    c = compare_manifests(reference, edited, tolerance=parse_tolerance("accuracy=0.01,loss=0.02"))
    assert c.exit_code == 0 and not c.matches
    assert c.headline() == "REPRODUCES within tolerance (bytes differ from epoch 1, batch 1)"
    text = c.render()
    assert "result: REPRODUCES within tolerance (exit 0)" in text
    assert "test_accuracy: |Δ| 0.005 <= 0.01: within" in text
    tight = compare_manifests(reference, edited, tolerance=parse_tolerance("accuracy=0.001"))
    assert tight.exit_code == 1
    assert "test_accuracy: |Δ| 0.005 > 0.001: OUTSIDE" in tight.render()


def test_bit_exact_wording_is_unchanged_by_a_tolerance(reference: dict) -> None:
    plain = compare_manifests(reference, copy.deepcopy(reference)).render()
    tolerant = compare_manifests(
        reference, copy.deepcopy(reference), tolerance={"test_accuracy": 0.1}
    ).render()
    assert plain == tolerant
    assert "every stage matches (8 of 8): the run reproduces" in plain or "reproduces" in plain
    assert plain.endswith("result: REPRODUCES (exit 0)")


def test_no_tolerance_makes_other_settings_reproduce(reference: dict) -> None:
    other = edit(reference, 1, 1)
    other["settings"]["training"]["epochs"] = 4
    c = compare_manifests(reference, other, tolerance={"test_accuracy": 1.0})
    assert c.exit_code == 1 and not c.within_tolerance
    assert "not applied: the runs' settings differ" in c.render()


# ---- --against-sweep --------------------------------------------------------------------


def make_sweep(directory: Path, settings: RunSettings, accuracies: list[float]) -> Path:
    """A sweep summary as seedtrail/sweep/report.py writes it, for these per-seed accuracies."""
    runs = [
        {"vary": "all", "seed": i, "status": "complete", "metrics": {"test_accuracy": a}}
        for i, a in enumerate(accuracies)
    ]
    directory.mkdir(parents=True)
    summary = {
        "base_settings": settings.model_dump(mode="json"),
        "vary": ["all"],
        "runs": runs,
        "statistics": summarize(runs),
    }
    (directory / against.SUMMARY_JSON).write_text(json.dumps(summary))
    return directory


def test_the_metric_difference_in_units_of_seed_noise(reference: dict, tmp_path: Path) -> None:
    a = parse_manifest(reference)
    sweep = make_sweep(tmp_path / "sweep-all-1234", a.settings, [0.49, 0.5, 0.51, 0.5, 0.5])
    noise = against.seed_noise(sweep, a)
    std = float(np.std([0.49, 0.5, 0.51, 0.5, 0.5], ddof=1))
    assert noise.std["test_accuracy"] == pytest.approx(std)
    c = compare_manifests(
        reference, edit(reference, 1, 2), seed_std=noise.std, seed_std_source=noise.source
    )
    text = c.render()
    sigmas = 0.005 / std
    assert f"test_accuracy: 0.5 -> 0.505 (+0.005) = {sigmas:.2g} σ of seed variance: " in text
    assert ("within seed noise" if sigmas <= 2 else "beyond seed noise") in text
    assert "sweep-all-1234 (vary all, 5 runs)" in text


def test_against_sweep_refuses_a_folder_without_a_sweep_and_other_settings(
    reference: dict, tmp_path: Path
) -> None:
    a = parse_manifest(reference)
    with pytest.raises(InputError, match=r"^--against-sweep .*holds no sweep"):
        against.seed_noise(tmp_path, a)
    other = a.settings.model_copy(
        update={"training": a.settings.training.model_copy(update={"epochs": 7})}
    )
    sweep = make_sweep(tmp_path / "sweep", other, [0.4, 0.5])
    with pytest.raises(InputError) as err:
        against.seed_noise(sweep, a)
    (line,) = err.value.problems
    was = a.settings.training.epochs
    assert (
        line.startswith("--against-sweep") and f"training.epochs: {was} (run) vs 7 (sweep)" in line
    )
    # another root seed (what a sweep varies) is the same settings
    seeded = make_sweep(tmp_path / "seeded", a.settings.model_copy(update={"seed": 9}), [0.4, 0.5])
    assert against.seed_noise(seeded, a).std


def test_the_sweep_summary_name_is_the_one_report_writes() -> None:
    from seedtrail.sweep.report import SUMMARY_JSON

    assert against.SUMMARY_JSON == SUMMARY_JSON


# ---- the records themselves ---------------------------------------------------------------


@pytest.mark.usefixtures("tensorflow_as_runs_configure_it")
def test_recording_batch_losses_changes_no_weight_and_records_each_batchs_own_loss() -> None:
    import keras

    from seedtrail.runtime.batch_records import BatchLosses, variable_fingerprints
    from seedtrail.runtime.keras_io import weights_fingerprint

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype("float32")
    y = rng.integers(0, 3, 40)

    def train(record: bool) -> tuple[str, list[float], dict, list[float]]:
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(5, activation="relu", name="hidden"),
                keras.layers.Dense(3, activation="softmax", name="out"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
        first = float(model.compute_loss(x[:16], y[:16], model(x[:16], training=True)))
        recorder = BatchLosses()
        if record:
            recorder.install(model)
        h = model.fit(
            x,
            y,
            batch_size=16,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[recorder.callback()] if record else [],
        )
        return (
            weights_fingerprint(model),
            recorder.take(),
            variable_fingerprints(model),
            [
                first,
                h.history["loss"][-1],
            ],
        )

    fp_plain, none, _, _ = train(record=False)
    fp_rec, losses, variables, (first, epoch_mean) = train(record=True)
    assert fp_rec == fp_plain  # recording does not change a byte
    assert none == [] and len(losses) == 3  # 40 samples in batches of 16
    assert losses[0] == pytest.approx(first, rel=1e-6)  # the first batch's own loss
    # each batch's own loss, not Keras' running mean: their weighted mean is the epoch's
    assert np.average(losses, weights=[16, 16, 8]) == pytest.approx(epoch_mean, rel=1e-5)
    assert losses[1] != pytest.approx(np.average(losses[:2]), rel=1e-9)
    # keyed by variable.path, in model order (Sequential prefixes its own name)
    assert ["/".join(p.split("/")[-2:]) for p in variables] == [
        "hidden/kernel",
        "hidden/bias",
        "out/kernel",
        "out/bias",
    ]


# ---- real runs ------------------------------------------------------------------------


@pytest.mark.slow
def test_two_real_runs_under_other_isa_caps_are_located_and_measured(
    tiny_runs: TinyRuns, tmp_path: Path
) -> None:
    from tests.test_isa_cap import CAP_AVX

    runs = tiny_runs.get(base=(), **CAP_AVX)
    base, capped = runs["base"], runs["cap_avx"]
    res = run_module(
        "flows.compare",
        [str(base.run_dir), str(capped.run_dir)],
        cwd=ROOT,
        prefect_home=tmp_path / "home",
        env={"PREFECT_API_URL": tiny_runs.api_url},  # the session's server: no server start
    )
    assert res.returncode == 1, res.stdout + res.stderr
    text = res.stdout
    m = re.search(r"epoch (\d+), batch (\d+) of (\d+): loss (\S+) vs (\S+)", text)
    assert m, text
    epoch, batch = int(m[1]), int(m[2])
    recorded = base.manifest["stages"]["train"]["info"]["batch_losses"]
    assert loss_str(recorded[epoch - 1][batch - 1]) == m[4] != m[5]
    layer = re.search(r"first weights that differ at the end of epoch \d+: (\S+/\S+) ", text)
    assert layer, text
    assert layer[1] in base.manifest["stages"]["train"]["info"]["variable_fingerprints"][0]
    drift = re.findall(r"(\S+/\S+): max \|Δ\| (\S+), relative L2 (\S+)", text)
    assert drift and all(float(d) > 0 and float(r) > 0 for _, d, r in drift), text
    assert re.search(r"test_accuracy: \S+ -> \S+ \([+-]", text)
