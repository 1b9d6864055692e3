"""The liveness and near-chance checks shared by training and export (numpy only, fast)."""

from __future__ import annotations

import numpy as np

from edgecnn.tools import model_health


def test_constant_uniform_and_flat_outputs_are_dead() -> None:
    rng = np.random.default_rng(0)
    row = rng.dirichlet(np.ones(4))
    assert "do not depend on the input" in model_health.output_problem(np.tile(row, (50, 1)))
    assert "all-equal" in model_health.output_problem(np.full((50, 4), 0.25))
    flat = np.tile(row, (50, 1)) + rng.normal(0, 1e-6, (50, 4))
    assert "barely change" in model_health.output_problem(flat)
    assert "NaN" in model_health.output_problem(np.full((3, 2), np.nan))


def test_a_model_that_reacts_to_its_input_is_alive() -> None:
    rng = np.random.default_rng(1)
    assert model_health.output_problem(rng.dirichlet(np.ones(4), size=50)) is None
    # one image, or one class, cannot be judged
    assert model_health.output_problem(np.full((1, 4), 0.25)) is None


def test_near_chance_uses_the_majority_class() -> None:
    balanced = np.repeat(np.arange(4), 25)
    assert model_health.chance_level(balanced, 4) == 0.25
    assert model_health.accuracy_problem(0.31, balanced, 4) is not None  # the 31%
    assert model_health.accuracy_problem(0.9, balanced, 4) is None
    skewed = np.array([0] * 90 + [1] * 10)
    assert model_health.chance_level(skewed, 2) == 0.9
    assert model_health.accuracy_problem(0.91, skewed, 2) is not None  # guessing "0" gets 90%
    assert model_health.accuracy_problem(None, balanced, 4) is None
