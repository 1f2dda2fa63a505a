import numpy as np
import pytest

from services.detector.calibration import Platt, expected_calibration_error, fit_platt, log_loss


def test_platt_fit_recovers_the_scaling_that_generated_the_labels():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 0.99, 20000)
    truth = Platt(a=0.4, b=0.8)
    fake = rng.random(20000) < truth.apply(raw)
    fitted = fit_platt(fake, raw)
    assert fitted.a == pytest.approx(0.4, abs=0.05) and fitted.b == pytest.approx(0.8, abs=0.05)
    assert expected_calibration_error(fake, fitted.apply(raw)) < expected_calibration_error(fake, raw)
    assert log_loss(fake, fitted.apply(raw)) < log_loss(fake, truth.apply(raw)) < log_loss(fake, raw)


def test_identity_calibration_changes_nothing():
    p = np.array([0.01, 0.3, 0.5, 0.99])
    np.testing.assert_allclose(Platt().apply(p), p, atol=1e-9)
