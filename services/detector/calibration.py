"""Platt scaling of the probability of fake, fitted on validation scores.

    calibrated = sigmoid(a * logit(p) + b)

With a = 1, b = 0 it is the identity. A registered model carries (a, b) inside its SavedModel's
serving signature (see export.py), so TF Serving, the gateway and `dfp detector score` on the
SavedModel all give the same calibrated number; raw .h5 weights stay raw.
"""

from __future__ import annotations

import dataclasses

import numpy as np

EPSILON = 1e-6


@dataclasses.dataclass(frozen=True)
class Platt:
    a: float = 1.0
    b: float = 0.0

    def apply(self, probability: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * _logit(probability) + self.b)))

    def as_dict(self) -> dict:
        return {"method": "platt", "a": self.a, "b": self.b}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(p / (1.0 - p))


def fit_platt(fake: np.ndarray, probability: np.ndarray, iterations: int = 100) -> Platt:
    """Maximum-likelihood (a, b) by Newton's method on the log loss."""
    x = _logit(probability)
    y = np.asarray(fake, np.float64)
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        gradient = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1.0 - p) + 1e-12
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return Platt(float(a), float(b))


def log_loss(fake: np.ndarray, probability: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels: what Platt scaling minimises."""
    fake = np.asarray(fake, np.float64)
    p = np.clip(np.asarray(probability, np.float64), EPSILON, 1.0 - EPSILON)
    return float(-np.mean(fake * np.log(p) + (1.0 - fake) * np.log(1.0 - p)))


def expected_calibration_error(fake: np.ndarray, probability: np.ndarray, bins: int = 10) -> float:
    """Mean |observed fake rate - mean predicted| over equal-width bins, weighted by bin size."""
    fake = np.asarray(fake, np.float64)
    probability = np.asarray(probability, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probability, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        chosen = which == index
        if chosen.any():
            error += chosen.mean() * abs(fake[chosen].mean() - probability[chosen].mean())
    return float(error)
