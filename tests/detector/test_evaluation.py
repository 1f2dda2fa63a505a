import itertools

import numpy as np
import pytest

from services.detector import evaluation


def brute_force_auc(fake, score):
    pairs = [(s_f, s_r) for (s_f, f1), (s_r, f2) in itertools.product(zip(score, fake), repeat=2) if f1 and not f2]
    return np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs])


def test_auc_is_the_probability_a_fake_outscores_a_real_with_ties_counted_half():
    rng = np.random.default_rng(0)
    fake = rng.integers(0, 2, 60)
    score = np.round(rng.random(60), 1)  # many ties
    assert evaluation.roc_auc(fake, score) == pytest.approx(brute_force_auc(fake, score))
    assert evaluation.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert evaluation.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_metrics_at_a_threshold_and_equal_error_rate():
    fake = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.8, 0.9, 0.95])
    m = evaluation.metrics(fake, score, threshold=0.5)
    assert (m.n_real, m.n_fake) == (4, 4)
    assert m.accuracy == pytest.approx(6 / 8)
    assert m.precision == pytest.approx(3 / 4) and m.recall == pytest.approx(3 / 4)
    assert m.eer == pytest.approx(0.25)
    assert set(m.as_dict()) >= {"auc", "accuracy", "eer", "precision", "recall", "threshold", "n_real", "n_fake"}


def test_video_level_scores_aggregate_frames_of_the_same_video_and_label():
    mean, highest, label = evaluation.video_scores(["a", "a", "b"], np.array([0.2, 0.6, 0.9]), np.array([1, 1, 0]))
    assert list(label) == [1, 0] and mean[0] == pytest.approx(0.4) and highest[0] == pytest.approx(0.6)
