"""A full disk, a second run into a busy folder, a part or manifest damaged on disk: each is one line,
and no finished result is lost or read wrong."""

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import TINY, assert_identical_results

from satbench import cli, lock, store

#: TINY's 8 configs in one program, written as 4 parts of 2
ARGS = ["--max-chunk", "2", "--quiet", "--no-plot"]


def _cli(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _one_line(result, code):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("satbench: error: "), lines
    return lines[0]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(spec path, results folder, its tables): TINY run uninterrupted in 4 parts."""
    root = tmp_path_factory.mktemp("reliability")
    path = root / "tiny.toml"
    path.write_text(TINY)
    result = _cli("run", path, "--out", root / "out", *ARGS)
    assert result.exit_code == 0, result.output
    return path, root / "out", store.load_results(root / "out")


def test_a_full_disk_is_one_line_keeps_finished_parts_and_a_rerun_resumes_exactly(finished, tmp_path, monkeypatch):
    path, _, want = finished
    out = tmp_path / "out"
    write = store._write_parquet_synced
    calls = {"n": 0}

    def fills_up(df, target):
        calls["n"] += 1
        if calls["n"] > 2 * 3 + 1:  # two parts of 3 tables, then the disk is full mid-part
            raise OSError(errno.ENOSPC, "No space left on device")
        write(df, target)

    monkeypatch.setattr(store, "_write_parquet_synced", fills_up)
    line = _one_line(_cli("run", path, "--out", out, *ARGS), 1)
    assert line == (f"satbench: error: --out {out}: disk full after 4 of 8 configs finished; "
                    "free space and rerun the same command to resume")
    assert len(store.part_dirs(out)) == 2
    assert not [p for p in (out / "parts").iterdir() if p.name.startswith(".")]  # no half-written part
    monkeypatch.setattr(store, "_write_parquet_synced", write)
    result = _cli("run", path, "--out", out, *ARGS)
    assert result.exit_code == 0 and "(4 already done)" in result.output
    assert_identical_results(store.load_results(out), want)


def _hold_in_another_process(out, shard=None):
    """A process holding ``out``'s lock (as a whole run, or one shard) until it is killed."""
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from satbench import lock
        with lock.hold(Path({str(out)!r}), {shard!r}):
            print("held", flush=True)
            sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_into_a_busy_folder_is_refused_with_the_owner_s_pid(finished, tmp_path):
    path = finished[0]
    out = tmp_path / "out"
    out.mkdir()
    holder = _hold_in_another_process(out)
    try:
        line = _one_line(_cli("run", path, "--out", out, *ARGS), 2)
        assert line == (f"satbench: error: --out {out}: another satbench run (pid {holder.pid}) is writing "
                        "this folder; wait for it to finish, or choose another --out")
        assert not (out / "parts").exists()  # refused before any work
        with pytest.raises(lock.Busy):  # a shard cannot join a whole run either
            with lock.hold(out, (0, 2)):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed holder frees the folder
        holder.wait()
    with lock.hold(out):
        pass


def test_shards_share_a_folder_but_one_shard_runs_once(tmp_path):
    holder = _hold_in_another_process(tmp_path, (0, 2))
    try:
        with lock.hold(tmp_path, (1, 2)):  # the other shard of the sweep: welcome
            pass
        with pytest.raises(lock.Busy, match=f"pid {holder.pid}"):  # the same shard twice
            with lock.hold(tmp_path, (0, 2)):
                pass
        with pytest.raises(lock.Busy, match=f"pid {holder.pid}"):  # a whole run beside shards
            with lock.hold(tmp_path):
                pass
    finally:
        holder.stdin.close()
        holder.wait()
    with lock.hold(tmp_path):
        pass


def _silent_corruption(path):
    """Flip one byte of ``path`` where a reader without checksums still decodes the file, to
    different numbers: the damage nothing but a checksum can see. Returns the table it reads."""
    original = path.read_bytes()
    clean = pq.read_table(path).to_pandas()
    for pos in range(4, len(original) - 8):
        damaged = bytearray(original)
        damaged[pos] ^= 0x10
        path.write_bytes(bytes(damaged))
        try:
            wrong = pq.read_table(path, page_checksum_verification=False).to_pandas()
        except Exception:  # noqa: BLE001 - not silent: the decoder itself fails
            continue
        if wrong.shape == clean.shape and not wrong.equals(clean):
            return wrong
    raise AssertionError("no silent corruption found")


def test_a_part_damaged_on_disk_is_reported_in_one_line_and_recomputed(finished, tmp_path):
    path, original, want = finished
    out = tmp_path / "out"
    shutil.copytree(original, out)
    os.remove(out / "layers.parquet")  # the merged copy is rewritten from the parts
    part = store.part_dirs(out)[1]
    _silent_corruption(part / "layers.parquet")
    with pytest.raises(store.CorruptFile, match="layers.parquet"):
        store.read_parquet(part / "layers.parquet")
    result = _cli("run", path, "--out", out, *ARGS)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "checksum" in line]
    assert warnings == [f"satbench: warning: {part}: layers.parquet failed its checksum; moved to "
                        f"{warnings[0].split('moved to ')[1].split(',')[0]}, its configs will be computed again"]
    assert "(6 already done)" in result.output
    assert_identical_results(store.load_results(out), want)


def test_a_damaged_manifest_is_one_line_unless_fresh(finished, tmp_path):
    path, original, _ = finished
    out = tmp_path / "out"
    shutil.copytree(original, out)
    (out / "manifest.json").write_text('{"experiment": "tiny", "spec_')  # cut short
    line = _one_line(_cli("run", path, "--out", out, *ARGS), 2)
    assert line.startswith(f"satbench: error: {out / 'manifest.json'}: not valid JSON")
    assert "--fresh" in line
    assert len(store.part_dirs(out)) == 4  # nothing touched


def test_the_summary_names_a_profile_only_when_there_is_one(finished):
    path, out, _ = finished
    result = _cli("run", path, "--out", out, *ARGS)
    assert result.exit_code == 0
    assert result.output.startswith("tiny: 8 configs (8 already done) in 0 programs;"), result.output
    help_text = _cli("run", "--help").output
    assert "60% (default 50%)" in " ".join(help_text.split())
