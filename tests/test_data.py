import numpy as np
import pytest

from satbench import data


def test_digits_is_standardised_and_split_stratified():
    ds = data.load("digits")
    assert ds.x_train.shape[1] == 64 and len(ds.x_train) + len(ds.x_test) == 1797
    assert len(ds.x_test) == pytest.approx(0.2 * 1797, abs=5)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
    counts = np.bincount(ds.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # 20 % of each class


def test_teacher_is_deterministic_and_uses_every_class():
    a, b = data.teacher(seed=3), data.teacher(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert set(np.unique(a.y_train)) == set(range(10))
    assert not np.array_equal(data.teacher(seed=4).y_train, a.y_train)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'mnist9'; known: digits, teacher"):
        data.load("mnist9")
