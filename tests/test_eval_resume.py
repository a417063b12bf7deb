"""Fault tests: `archc eval` killed with SIGKILL at random points and resumed ends with the same
results file, byte for byte, as an uninterrupted run; a second eval on a running one's results
file is refused."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

import evalkit
from evalkit import alive, children_of, journal_lines, wait_for_lines
from archc.cli import cmd_eval

IMAGES = 60


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    directory = tmp_path_factory.mktemp("photos")
    evalkit.write_tiny_net(directory)
    evalkit.write_photos(directory, IMAGES)
    return directory


def eval_args(directory, results):
    return evalkit.photo_args(directory, results, "--workers", "1")


def start(directory, results):
    # A session of its own, so the kill takes the loading workers with it.
    return subprocess.Popen([sys.executable, "-m", "archc", "eval", *eval_args(directory, results)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def kill(process):
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_and_resumed_runs_end_identical_to_an_uninterrupted_one(photos, tmp_path):
    reference = tmp_path / "reference.json"
    assert cmd_eval.main(eval_args(photos, reference)) == 0

    results = tmp_path / "killed.json"
    partial = tmp_path / "killed.json.partial"
    rng = random.Random(20240601)
    progress_at_kills = []
    # First a kill during start-up, then kills a random number of images into each resumed run.
    process = start(photos, results)
    time.sleep(rng.uniform(0.05, 0.4))
    kill(process)
    for _ in range(4):
        process = start(photos, results)
        if not wait_for_lines(process, partial, journal_lines(partial) + rng.randint(1, 10)):
            break
        time.sleep(rng.uniform(0.0, 0.03))  # anywhere inside the next group
        kill(process)
        progress_at_kills.append(journal_lines(partial) - 1)
    assert len(progress_at_kills) == 4, "the run finished before it could be killed four times"
    assert progress_at_kills == sorted(progress_at_kills) and progress_at_kills[-1] < IMAGES

    process = start(photos, results)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err.decode()
    assert results.read_bytes() == reference.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["killed.json", "reference.json"]


def test_a_second_eval_is_refused_while_the_first_runs(photos, tmp_path, capsys):
    results = tmp_path / "r.json"
    process = start(photos, results)
    try:
        assert wait_for_lines(process, tmp_path / "r.json.partial", 2)
        assert cmd_eval.main(eval_args(photos, results)) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"archc: error: {results} is in use by another archc eval (pid "
                       f"{process.pid}); wait for it to finish or choose another --results")
    finally:
        kill(process)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_worker_processes_do_not_outlive_a_terminated_or_killed_run(photos, tmp_path, how):
    results = tmp_path / "r.json"
    args = [*eval_args(photos, results), "--nets", "2"]
    process = subprocess.Popen([sys.executable, "-m", "archc", "eval", *args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for_lines(process, tmp_path / "r.json.partial", 2)
        workers = children_of(process.pid)
        assert len(workers) >= 3  # the loading worker and two forward processes at least
        process.send_signal(how)
        _, err = process.communicate(timeout=30)
        if how == signal.SIGTERM:  # stopped as by Ctrl-C: workers shut down, results kept
            assert process.returncode == 130 and b"interrupted; finished images are kept" in err
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)
    finally:
        if process.poll() is None:
            process.kill()
