"""Python data loaders: what they return is validated, one line per problem."""

from __future__ import annotations

import numpy as np
import pytest

from seedtrail.core.errors import InputError
from seedtrail.inputs.data_loader import load, validate

NAME = "proj.data:load"


def test_table_with_string_labels():
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    got = validate((x, ["b", "a", "b", "a", "c", "c"]), NAME)
    assert got.modality == "tabular" and got.x.dtype == np.float32
    assert got.class_names == ("a", "b", "c") and got.y.tolist() == [1, 0, 1, 0, 2, 2]


def test_uint8_images_with_class_names_and_the_seed_reaches_the_loader():
    def loader(seed):
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, (6, 4, 4), dtype=np.uint8), np.array([0, 1] * 3), ["no", "yes"]

    a, b = load(loader, 5, NAME), load(loader, 5, NAME)
    assert a.modality == "image" and a.x.shape == (6, 4, 4, 1) and a.x.max() <= 1.0
    assert np.array_equal(a.x, b.x) and a.class_names == ("no", "yes")
    assert not np.array_equal(a.x, load(loader, 6, NAME).x)
    assert sorted(a.arrays()) == ["class_names", "x", "y"]


@pytest.mark.parametrize(
    ("result", "pattern"),
    [
        ((np.zeros((5, 2)), np.zeros(4)), r"x has 5 samples but y has 4"),
        (
            (np.array([[np.nan, 1.0], [0, 1]]), [0, 1]),
            r"x contains NaN or infinity \(first at index \(0, 0\)\)",
        ),
        ((np.zeros((4, 3, 3, 2)), [0, 1, 0, 1]), r"x must be \(n, features\)"),
        ((np.full((2, 3, 3), 2.0), [0, 1]), r"image pixels must be uint8 or floats in \[0, 1\]"),
        ((np.zeros((4, 2)), [0, 0, 0, 0]), r"needs at least 2 classes"),
        ((np.zeros((2, 2)), [0, 2], ["a", "b"]), r"y has ids 0\.\.2 but class_names has 2 names"),
        (np.zeros((2, 2)), r"must return \(x, y\) or \(x, y, class_names\), not ndarray"),
        ((np.zeros((2, 2)), [0.5, 1]), r"not NaN or fractions"),
    ],
)
def test_bad_returns_are_one_line_naming_data_loader(result, pattern):
    with pytest.raises(InputError, match=rf"^data\.loader: {NAME}.*{pattern}") as err:
        validate(result, NAME)
    assert len(err.value.problems) == 1


# ---- a loader with its own unseeded randomness is refused, as builders are ---------------------


def _unseeded(seed):
    import numpy as np

    x = np.random.default_rng().normal(size=(8, 2))  # no seed: other data every call
    return x, np.array([0, 1] * 4)


def _global_numpy(seed):
    import numpy as np

    return np.random.rand(8, 2), np.random.permutation([0, 1] * 4)  # the global generator


def test_a_loader_with_unseeded_randomness_is_refused_naming_the_causes():
    from seedtrail.inputs.data_loader import load_proven

    with pytest.raises(InputError) as err:
        load_proven(_unseeded, 3, NAME)
    (line,) = err.value.problems
    assert line.startswith(
        f"data.loader: {NAME} returned different data twice from the same seed 3"
    )
    assert "default_rng() or random.Random() without a seed" in line and "\n" not in line


def test_a_loader_drawing_from_numpys_global_generator_is_seeded_and_accepted():
    from seedtrail.inputs.data_loader import load_proven

    a, b = load_proven(_global_numpy, 3, NAME), load(_global_numpy, 3, NAME)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.x, load(_global_numpy, 4, NAME).x)


def test_preflight_refuses_an_unseeded_loader_on_every_run(monkeypatch, tmp_path):
    """preflight runs before any cache lookup, so a cached rerun cannot hide the loader."""
    from seedtrail.inputs import user_code
    from seedtrail.run.pipeline import preflight
    from settings import RunSettings

    monkeypatch.setattr(user_code, "resolve", lambda ref, setting: _unseeded)
    settings = RunSettings(output_dir=tmp_path, data={"kind": "python", "loader": "proj.data:load"})
    monkeypatch.setattr("seedtrail.inputs.user_inputs.data_inputs", lambda s, *a, **kwargs: {})
    with pytest.raises(InputError) as err:
        preflight(settings)
    assert "returned different data twice" in err.value.problems[0]
