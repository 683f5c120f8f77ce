"""Datasets: generated, bundled and user-folder data; formats; preprocessing; spec and CLI wiring."""

import functools
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from satbench import data, spec
from satbench.data import DataError, folder, formats, shapes, shipped


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


def test_described_sizes_match_what_loads():
    for name in ("digits", "teacher", "shapeset", "fashion_mnist_small"):
        info, ds = data.describe(name), data.load(name)
        assert (len(ds.x_train), len(ds.x_test), ds.n_in, ds.n_classes) == (
            info.n_train, info.n_test, info.n_in, info.n_classes), name


# ---- Shapeset-3×2 ----------------------------------------------------------------------------------

def test_shapeset_is_deterministic_balanced_grey_and_in_range():
    a = shapes.shapeset(n_train=450, n_test=90, seed=5)
    b = shapes.shapeset(n_train=450, n_test=90, seed=5)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(shapes.shapeset(n_train=450, n_test=90, seed=6).x_train, a.x_train)
    assert a.x_train.shape == (450, 32, 32) and a.x_train.dtype == np.float32
    assert np.bincount(a.y_train, minlength=9).tolist() == [50] * 9  # balanced over the 9 classes
    assert np.bincount(a.y_test, minlength=9).tolist() == [10] * 9
    assert a.x_train.min() >= 0 and a.x_train.max() <= 1
    # the test split is its own stream: it does not change with n_train
    np.testing.assert_array_equal(shapes.shapeset(n_train=90, n_test=90, seed=5).x_test, a.x_test)
    ds = data.load("shapeset", n_train=450, n_test=90, seed=5)
    assert ds.x_train.shape == (450, 1024) and ds.meta["preprocess"] == "standardise"


def test_shapeset_draws_the_shapes_of_each_class_and_limits_occlusion():
    labels = np.repeat(np.arange(9), 40)
    images, overlap = shapes.render(labels, np.random.default_rng(0))
    single, pair = labels < 3, labels >= 3
    assert np.all(overlap[single] == 0)
    assert overlap[pair].max() <= shapes.MAX_OVERLAP  # the second shape hides at most half the first
    assert (overlap[pair] > 0).mean() > 0.2  # ... and does overlap it often: the check is not vacuous
    # background pixels lie in [0, 0.45] and shape pixels in [0.55, 1]: two grey levels per single shape,
    # up to three per pair (plus anti-aliased edges)
    bright = (images > 0.55).reshape(len(labels), -1).mean(1)
    assert bright.min() > 0.005 and bright[single].mean() < bright[pair].mean()
    assert shapes.CLASS_NAMES[:4] == ("triangle", "parallelogram", "ellipse", "triangle+triangle")


def test_a_small_mlp_learns_shapeset_well_above_chance():
    """Chance is 1/9; with shuffled labels this setup scored 0.12 on the test set, with the
    generator's labels 0.25 (test set of 2000: 0.2 is > 9 standard errors above chance)."""
    import jax

    from satbench import mlp, train

    ds = data.load("shapeset", preprocess="center")
    arch = mlp.Architecture(ds.n_in, ds.n_classes, 64, 2, "relu", "he", "unroll")
    prog = train.make_program(arch, dataset="shapeset", preprocess="center", optimizer="adam", batch_size=128, steps=600,
                         log_every=300, eval_size=2000)
    lane = train.one_lane(arch, seed=0, sigma_w2=1.0, sigma_b2=0.0, learning_rate=3e-3)
    rec = jax.jit(functools.partial(train.run, prog))(lane, train.data_arrays(ds))
    assert float(rec.test_accuracy[0]) < 0.16
    assert float(rec.test_accuracy[-1]) > 0.2


# ---- the bundled Fashion-MNIST subset ------------------------------------------------------------

def test_bundled_fashion_subset_loads_offline_with_its_documented_shape_and_checksums():
    ds = data.load("fashion_mnist_small")
    assert ds.x_train.shape == (8000, 784) and ds.x_test.shape == (2000, 784)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_train.min() == -0.5 and ds.x_train.max() == 0.5  # "center": pixels / 255 − 0.5
    assert np.bincount(ds.y_train).tolist() == [800] * 10 and np.bincount(ds.y_test).tolist() == [200] * 10
    path = shipped.FASHION_SMALL
    assert path.stat().st_size <= 5_000_000
    provenance = (path.parent / "PROVENANCE.md").read_text()
    assert shipped.file_digest(path) == shipped.FASHION_SMALL_SHA256
    raw = shipped.fashion_mnist_small()
    arrays = {k: getattr(raw, k) for k in ("x_train", "y_train", "x_test", "y_test")}
    assert shipped.array_digest(arrays) == shipped.FASHION_SMALL_ARRAYS_SHA256
    assert shipped.FASHION_SMALL_SHA256 in provenance and shipped.FASHION_SMALL_ARRAYS_SHA256 in provenance
    assert "Zalando SE" in (path.parent / "LICENSE").read_text()


def test_a_damaged_bundled_file_is_refused(tmp_path):
    damaged = tmp_path / "fashion_mnist_small.npz"
    blob = bytearray(shipped.FASHION_SMALL.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    damaged.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="SHA-256 .* does not match"):
        shipped.fashion_mnist_small(damaged)


# ---- user data folder: IDX, npz, CIFAR -------------------------------------------------------------

def _mnist_like(n_train, n_test, seed=0):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": (np.arange(n_train) % 10).astype(np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": (np.arange(n_test) % 10).astype(np.uint8)}


def _write_idx_folder(where: Path, arrays: dict, gz=("x_train", "y_test")) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for key, (name, _) in folder.IDX_FILES.items():
        formats.write_idx(where / (f"{name}.gz" if key in gz else name), arrays[key])
    return where


def test_idx_files_raw_and_gzipped_round_trip(tmp_path):
    arrays = _mnist_like(30, 10)
    raw = folder.mnist(_write_idx_folder(tmp_path / "mnist", arrays), n_train=30, n_test=10)
    for key in folder.IDX_FILES:
        np.testing.assert_array_equal(getattr(raw, key), arrays[key])
    assert raw.y_train.dtype == np.int32 and raw.meta["n_classes"] == 10


def test_keras_npz_round_trips(tmp_path):
    arrays = _mnist_like(30, 10, seed=1)
    (tmp_path / "fashion_mnist").mkdir()
    np.savez_compressed(tmp_path / "fashion_mnist" / "fashion_mnist.npz", **arrays)
    raw = folder.fashion_mnist(tmp_path / "fashion_mnist", n_train=30, n_test=10)
    for key in arrays:
        np.testing.assert_array_equal(getattr(raw, key), arrays[key])
    assert raw.meta["classes"][0] == "T-shirt/top"


def test_full_size_mnist_loads_from_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(folder.ENV, raising=False)
    arrays = _mnist_like(60_000, 10_000)
    _write_idx_folder(tmp_path / "mnist", arrays, gz=("y_train",))
    try:
        _check_full_mnist(tmp_path, arrays, monkeypatch)
    finally:
        data.clear_cache()  # 250 MB that no later test needs


def _check_full_mnist(tmp_path, arrays, monkeypatch):
    ds = data.load("mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (60_000, 784) and ds.meta["preprocess"] == "center"
    np.testing.assert_allclose(ds.x_test[:5], arrays["x_test"][:5].reshape(5, -1) / 255 - 0.5, atol=1e-6)
    monkeypatch.setenv(folder.ENV, str(tmp_path))  # the environment variable names the same folder
    assert data.load("mnist") is ds  # cached per (name, options, folder)
    sub = data.load("mnist", preprocess="binarise", train_subset=500)
    assert np.bincount(sub.y_train).tolist() == [50] * 10 and set(np.unique(sub.x_train)) == {0.0, 1.0}
    assert data.availability("mnist") == (True, f"found in {tmp_path / 'mnist'}")


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"testing batch", b"labels": [int(i % 10) for i in range(n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


def _write_cifar(where: Path, n: int, tarball: bool) -> dict:
    batches = {name: _cifar_batch(n, i) for i, name in enumerate([*formats.CIFAR_TRAIN, formats.CIFAR_TEST])}
    blobs = {name: pickle.dumps(b, protocol=2) for name, b in batches.items()}
    where.mkdir(parents=True, exist_ok=True)
    if tarball:
        with tarfile.open(where / formats.CIFAR_TAR, "w:gz") as tar:
            for name, blob in blobs.items():
                info = tarfile.TarInfo(f"{formats.CIFAR_DIR}/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (where / formats.CIFAR_DIR).mkdir()
        for name, blob in blobs.items():
            (where / formats.CIFAR_DIR / name).write_bytes(blob)
    return batches


@pytest.mark.parametrize("tarball", [False, True])
def test_cifar_batches_and_tarball_round_trip(tmp_path, tarball):
    batches = _write_cifar(tmp_path / "cifar10", 10, tarball)
    raw = folder.cifar10(tmp_path / "cifar10", n_per_batch=10)
    expected = np.concatenate([batches[n][b"data"] for n in formats.CIFAR_TRAIN])
    np.testing.assert_array_equal(raw.x_train, expected)
    np.testing.assert_array_equal(raw.x_test, batches[formats.CIFAR_TEST][b"data"])
    assert raw.y_train.tolist() == list(range(10)) * 5 and raw.meta["classes"][0] == "airplane"


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    with pytest.raises(DataError, match="refusing to load"):
        formats.read_cifar_batch(pickle.dumps({b"data": Evil()}, protocol=2), "evil_batch", 10)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_or_wrong_files_name_the_file(tmp_path):
    arrays = _mnist_like(30, 10)
    d = _write_idx_folder(tmp_path / "a", arrays, gz=("x_train",))
    _truncate(d / "t10k-images-idx3-ubyte")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: \d+ bytes .* truncated"):
        folder.mnist(d, n_train=30, n_test=10)
    d = _write_idx_folder(tmp_path / "b", arrays, gz=("x_train",))
    _truncate(d / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: unreadable or truncated"):
        folder.mnist(d, n_train=30, n_test=10)
    d = _write_idx_folder(tmp_path / "c", arrays)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: holds an array of shape \(30, 28, 28\), "
                                        r"expected \(60000, 28, 28\)"):
        folder.mnist(d)  # the official counts
    (d / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x03" + bytes(100))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte: not an IDX file of 1-d unsigned bytes"):
        folder.mnist(d, n_train=30, n_test=10)

    (tmp_path / "npz").mkdir()
    np.savez_compressed(tmp_path / "npz" / "mnist.npz", **arrays)
    _truncate(tmp_path / "npz" / "mnist.npz")
    with pytest.raises(DataError, match="mnist.npz: unreadable or truncated"):
        folder.mnist(tmp_path / "npz", n_train=30, n_test=10)

    _write_cifar(tmp_path / "pickles", 10, tarball=False)
    _truncate(tmp_path / "pickles" / formats.CIFAR_DIR / "data_batch_3")
    with pytest.raises(DataError, match="data_batch_3: not a complete CIFAR-10 python batch"):
        folder.cifar10(tmp_path / "pickles", n_per_batch=10)
    _write_cifar(tmp_path / "tar", 10, tarball=True)
    _truncate(tmp_path / "tar" / formats.CIFAR_TAR)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: unreadable or truncated"):
        folder.cifar10(tmp_path / "tar", n_per_batch=10)
    _write_cifar(tmp_path / "small", 10, tarball=False)
    with pytest.raises(DataError, match=r"data_batch_1: data uint8 \(10, 3072\) .* expected uint8 \(10000, 3072\)"):
        folder.cifar10(tmp_path / "small")


def test_a_missing_data_folder_or_file_names_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv(folder.ENV, raising=False)
    with pytest.raises(DataError, match=r"'mnist' needs a data folder: pass --data-dir DIR or set SATBENCH_DATA=DIR, "
                                        r"with DIR/mnist/ holding train-images-idx3-ubyte\[.gz\], .*mnist.npz"):
        data.load("mnist")
    with pytest.raises(DataError, match=f"no folder {tmp_path / 'cifar10'}; put cifar-10-python.tar.gz or"):
        data.load("cifar10", data_dir=tmp_path)
    (tmp_path / "fashion_mnist").mkdir()
    formats.write_idx(tmp_path / "fashion_mnist" / "train-images-idx3-ubyte.gz", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"missing train-labels-idx1-ubyte\[.gz\], t10k-images-idx3-ubyte\[.gz\], "
                                        r"t10k-labels-idx1-ubyte\[.gz\]; put it there \(or fashion_mnist.npz"):
        data.load("fashion_mnist", data_dir=tmp_path)
    ok, why = data.availability("mnist", tmp_path / "nowhere")
    assert not ok and "does not exist" in why and "mnist/" in why


# ---- preprocessing ---------------------------------------------------------------------------------

def test_preprocess_options_and_stratified_subsets():
    c = data.load("shapeset", preprocess="center")
    assert c.x_train.min() >= -0.5 and c.x_train.max() <= 0.5
    n = data.load("shapeset", preprocess="none")
    np.testing.assert_allclose(c.x_train, n.x_train - 0.5, atol=1e-6)
    b = data.load("digits", preprocess="binarise")
    assert set(np.unique(b.x_train)) == {0.0, 1.0}
    s = data.load("digits", train_subset=100)
    counts = np.bincount(s.y_train, minlength=10)
    assert len(s.y_train) == 100 and counts.min() >= 9 and counts.max() <= 11
    assert len(s.x_test) == len(data.load("digits").x_test)  # the test split is never cut
    assert data.load("digits", train_subset=100) is s
    with pytest.raises(DataError, match="needs bounded raw values"):
        data.load("teacher", preprocess="center")
    with pytest.raises(DataError, match="exceeds the 1438 training examples"):
        data.load("digits", train_subset=5000)


def _exp(extra: str) -> spec.Experiment:
    return spec.parse(f'[experiment]\nname = "d"\n[fixed]\nwidth = 8\n{extra}\n')


def test_data_fields_enter_config_id_and_program_but_defaults_keep_old_ids():
    from satbench import plan

    base = _exp("").configs()[0]
    newer = {k for k, f in spec.FIELDS.items() if f.id_omits_default}  # fields added after results existed
    assert {"preprocess", "train_subset"} <= newer
    old_id = spec.config_id({k: v for k, v in base.values.items() if k not in newer})
    assert base.config_id == old_id  # results from before these fields resume under the same ids
    assert _exp('preprocess = "auto"').configs()[0].config_id == old_id
    changed = [_exp('preprocess = "center"').configs()[0], _exp("train_subset = 100").configs()[0]]
    assert len({base.config_id, *(c.config_id for c in changed)}) == 3
    assert len({plan.program_key(c) for c in [base, *changed]}) == 3
    group = plan.make_plan(changed[:1])[0]
    assert (group.program.preprocess, group.program.train_subset) == ("center", 0)
    for extra, message in [('dataset = "teacher"\npreprocess = "binarise"', "needs bounded raw values"),
                           ("train_subset = 2000", "train_subset \\(2000\\) exceeds the 1438"),
                           ('preprocess = "whiten"', "preprocess: unknown value 'whiten'")]:
        with pytest.raises(spec.SpecError, match=message):
            _exp(extra)


# ---- wiring: CLI and engine ------------------------------------------------------------------------

def test_cli_refuses_folder_data_it_cannot_find_with_exit_2_and_writes_nothing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from satbench import cli

    monkeypatch.delenv(folder.ENV, raising=False)
    toml = tmp_path / "m.toml"
    toml.write_text('[experiment]\nname = "m"\n[fixed]\ndataset = "mnist"\nwidth = 8\nsteps = 10\n')
    out = tmp_path / "out"
    r = CliRunner().invoke(cli.main, ["run", str(toml), "--out", str(out), "--data-dir", str(tmp_path)])
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.strip() == (f"satbench: error: dataset 'mnist': no folder {tmp_path / 'mnist'}; put "
                                + folder.FILES["mnist"] + " there")
    r = CliRunner().invoke(cli.main, ["run", str(toml), "--out", str(out)])
    assert r.exit_code == 2 and "pass --data-dir DIR or set SATBENCH_DATA" in r.stderr and not out.exists()
    rows = cli._dataset_rows(tmp_path)  # what `satbench list --data-dir` prints under "datasets"
    folders = [n for n in data.known_datasets() if data.describe(n).folder is not None]
    assert len(folders) == 5  # mnist, fashion_mnist, cifar10, seq_mnist, permuted_mnist
    assert len(rows) == len(data.known_datasets()) + len(folders)  # each folder dataset adds what it needs
    assert "shapeset" in rows[2] and "[generated]" in rows[2] and "[unavailable]" in rows[4]


def test_engine_runs_a_tiny_sweep_on_shapeset_and_the_bundled_set(tmp_path):
    from satbench import engine, store

    exp = spec.parse("""
[experiment]
name = "data_tiny"
figures = []
[fixed]
width = 16
depth = 2
steps = 20
log_every = 10
batch_size = 32
learning_rate = 0.05
[grid]
dataset = ["shapeset", "fashion_mnist_small"]
""")
    summary = engine.run_experiment(exp, None, tmp_path, progress=False)
    runs = store.load_results(tmp_path).runs.set_index("dataset")
    assert summary.n_groups == 2 and set(runs.index) == {"shapeset", "fashion_mnist_small"}
    assert runs["final_loss"].notna().all() and (runs["preprocess"] == "auto").all()
    manifest = store.read_manifest(tmp_path)
    assert manifest["datasets"]["shapeset|auto|0"]["preprocess"] == "standardise"
    assert manifest["datasets"]["fashion_mnist_small|auto|0"]["n_train"] == 8000
