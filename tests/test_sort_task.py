"""The sort task: labels are each input sorted (checked by order and counts, not by sorting), shapes at
several lengths, the same data on every load, and a recurrent net trained on it through the CLI."""

import numpy as np
import pytest
from click.testing import CliRunner

from satbench import cli, data, spec, store


def _symbols(ds, seq_len):
    onehot = ds.x_train.reshape(-1, seq_len, 10)
    assert np.all(onehot.sum(-1) == 1) and set(np.unique(onehot)) == {0.0, 1.0}
    return onehot.argmax(-1)


@pytest.mark.parametrize("seq_len", [0, 4, 64])
def test_each_label_row_is_its_input_sorted(seq_len):
    """Sorted means: non-decreasing, and each symbol as often as in the input."""
    ds = data.load("sort", seq_len=seq_len)
    t = seq_len or 8
    assert ds.x_train.shape == (10_000, t * 10) and ds.y_train.shape == (10_000, t)
    assert ds.x_test.shape == (1_000, t * 10) and ds.y_test.shape == (1_000, t) and ds.y_train.dtype == np.int32
    symbols, labels = _symbols(ds, t), ds.y_train
    assert np.all(np.diff(labels, axis=1) >= 0)
    counts = lambda a: np.stack([(a == s).sum(1) for s in range(10)], 1)  # noqa: E731
    np.testing.assert_array_equal(counts(labels), counts(symbols))
    assert not np.array_equal(labels, symbols)  # most inputs are not sorted already
    assert np.all(np.abs(np.bincount(symbols.ravel(), minlength=10) / symbols.size - 0.1) < 0.01)  # uniform


def test_the_sort_task_is_the_same_on_every_load_and_train_and_test_differ():
    first = data.load("sort")
    data.clear_cache()
    again = data.load("sort")
    np.testing.assert_array_equal(first.x_train, again.x_train)
    np.testing.assert_array_equal(first.y_test, again.y_test)
    assert not np.array_equal(first.x_train[:1_000], first.x_test)
    assert data.describe("sort").input_shape == (8, 10) and data.describe("sort").task == "classify_steps"


def test_sort_needs_two_steps_and_a_net_with_an_output_per_step():
    base = '[experiment]\nname = "s"\n[fixed]\ndataset = "sort"\nsteps = 2\n'
    with pytest.raises(spec.SpecError, match="seq_len of sort must be >= 2"):
        spec.parse(base + 'model = "rnn"\nseq_len = 1\n')
    with pytest.raises(spec.SpecError, match="label at every step"):
        spec.parse(base)  # the default mlp


SORT_TOML = """
[experiment]
name = "sort_tiny"
[fixed]
model = "lstm"
dataset = "sort"
width = 8
steps = 4
log_every = 2
batch_size = 16
probe_batch = 32
learning_rate = 0.05
optimizer = "adam"
[grid]
warmup_steps = [0, 3]
"""


def test_satbench_list_shows_sort_with_its_shape_and_labels_per_step():
    (row,) = [line for line in cli._dataset_rows(None) if line.startswith("sort ")]  # list's datasets section
    assert "8×10" in row and "10 classes per step" in row and "[generated]" in row


def test_an_lstm_trains_on_sort_through_the_cli(tmp_path):
    """End to end: one program for both warmups; a runs row each, a curve whose loss falls, and the
    timesteps table with all 8 steps at both probes. Warmup changes the curve after step 0, not at it."""
    runner = CliRunner()
    toml = tmp_path / "sort_tiny.toml"
    toml.write_text(SORT_TOML)
    result = runner.invoke(cli.main, ["run", str(toml), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    res = store.load_results(tmp_path / "out")
    assert sorted(res.runs["warmup_steps"]) == [0, 3] and set(res.runs["seq_len"]) == {8}
    curves = res.with_config("curves").set_index(["warmup_steps", "step"])["train_loss"].unstack("step")
    assert np.all(np.isfinite(curves.to_numpy())) and np.all(curves[4] < curves[0])
    assert curves.loc[0, 0] == curves.loc[3, 0] and curves.loc[0, 2] != curves.loc[3, 2]
    steps = res.with_config("timesteps").groupby(["warmup_steps", "step"])["t"].nunique()
    assert steps.to_dict() == {(w, s): 8 for w in (0, 3) for s in (0, 4)}
