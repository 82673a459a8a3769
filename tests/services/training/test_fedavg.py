"""FedAvg and the best-model rule as pure functions."""

from __future__ import annotations

import numpy as np
import pytest

from services.training.best import Best, is_better
from services.training.fedavg import Evaluation, weighted_evaluation, weighted_mean

pytestmark = pytest.mark.timeout(10)


def test_the_mean_is_weighted_by_example_counts() -> None:
    a = [np.array([[0.0, 0.0]]), np.array([1.0])]
    b = [np.array([[4.0, 8.0]]), np.array([5.0])]
    mean = weighted_mean([(a, 1), (b, 3)])
    np.testing.assert_allclose(mean[0], [[3.0, 6.0]])
    np.testing.assert_allclose(mean[1], [4.0])


def test_the_dtype_is_kept_and_no_examples_means_a_plain_mean() -> None:
    a, b = [np.array([1.0], dtype=np.float32)], [np.array([3.0], dtype=np.float32)]
    mean = weighted_mean([(a, 0), (b, 0)])
    assert mean[0].dtype == np.float32 and float(mean[0][0]) == 2.0


@pytest.mark.parametrize(
    ("results", "problem"),
    [([], "nothing to average"), ([([np.zeros(2)], 1), ([np.zeros(3)], 1)], "different shapes")],
)
def test_bad_inputs_are_refused(results: list[tuple[list[np.ndarray], int]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        weighted_mean(results)


def test_evaluations_are_weighted_by_test_examples() -> None:
    merged = weighted_evaluation([Evaluation(1.0, 0.5, 10), Evaluation(0.0, 1.0, 30)])
    assert merged == Evaluation(0.25, 0.875, 40)


@pytest.mark.parametrize(
    ("loss", "accuracy", "better"),
    [
        (0.5, 0.9, True),  # lower loss, higher accuracy
        (0.5, 0.8, False),  # lower loss only
        (0.7, 0.9, False),  # higher accuracy only
        (0.6, 0.8, False),  # equal
    ],
)
def test_a_later_round_is_best_only_with_higher_accuracy_and_lower_loss(
    loss: float, accuracy: float, better: bool
) -> None:
    best = Best(round=1, loss=0.6, accuracy=0.8)
    assert is_better(Best(round=2, loss=loss, accuracy=accuracy), best) is better


def test_the_first_round_is_best() -> None:
    assert is_better(Best(round=1, loss=9.0, accuracy=0.0), None)
