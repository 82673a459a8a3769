"""Federated averaging as small pure functions over lists of numpy arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Arrays = list[np.ndarray[Any, Any]]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Loss and accuracy over ``examples`` test examples."""

    loss: float
    accuracy: float
    examples: int


def weighted_mean(results: Sequence[tuple[Arrays, int]]) -> Arrays:
    """The mean of each parameter over the results, weighted by their example counts.

    All results must have the same number of arrays with the same shapes. With no examples
    at all the plain mean is taken, so a round of empty learners changes nothing odd.
    """
    if not results:
        raise ValueError("nothing to average")
    shapes = [[a.shape for a in arrays] for arrays, _ in results]
    if any(s != shapes[0] for s in shapes):
        raise ValueError(f"learners sent parameters of different shapes: {shapes}")
    total = sum(n for _, n in results)
    weights = [n / total if total else 1 / len(results) for _, n in results]
    return [_mean_of(results, i, weights) for i in range(len(results[0][0]))]


def _mean_of(
    results: Sequence[tuple[Arrays, int]], index: int, weights: list[float]
) -> np.ndarray[Any, Any]:
    """One parameter's weighted mean, accumulated in float64 (one array at a time)."""
    first = results[0][0][index]
    acc = np.zeros(first.shape, dtype=np.float64)
    for (arrays, _), weight in zip(results, weights, strict=True):
        acc += weight * arrays[index]
    return acc.astype(first.dtype, copy=False)


def weighted_evaluation(results: Sequence[Evaluation]) -> Evaluation:
    """Loss and accuracy averaged by the learners' test example counts."""
    if not results:
        raise ValueError("nothing to average")
    total = sum(r.examples for r in results)
    if total == 0:
        n = len(results)
        return Evaluation(sum(r.loss for r in results) / n, sum(r.accuracy for r in results) / n, 0)
    return Evaluation(
        sum(r.loss * r.examples for r in results) / total,
        sum(r.accuracy * r.examples for r in results) / total,
        total,
    )
