"""`archc eval --ray`: on a local Ray instance (2 CPUs, loopback only), the results file is the local
run's, byte for byte, with a worker killed mid-shard and after the driver is killed and rerun;
workers that cannot open the backend are one message naming the node.

Ray is part of the test extra: without it these tests skip, and fail under ARCHC_REQUIRE_CAFFE=1
or CI, where they must run."""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import evalkit
from evalkit import alive, children_of, journal_lines, wait_for_lines
from archc.cli import cmd_eval
from archc.runtime.eval import cluster
from archc.runtime.eval.errors import EvalError

PHOTOS = 60
WORKER_TITLE = "ray::ShardWorker"


@pytest.fixture(scope="module")
def ray_installed(tmp_path_factory):
    """Ray, set to start instances on the loopback interface alone (it reads that when imported,
    and the drivers started here inherit it) and to keep the workers' copies of the weights in a
    temporary directory; without Ray these tests skip, visibly, and fail where they must run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        patch.setenv("ARCHC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        try:
            import ray
        except ImportError as error:
            if os.environ.get("ARCHC_REQUIRE_CAFFE") == "1" or os.environ.get("CI"):
                pytest.fail(f"Ray is missing where the --ray tests must run: {error}")
            pytest.skip(f"Ray not installed (it comes with the test extra): {error}")
        yield ray


@pytest.fixture(scope="module")
def ray_address(ray_installed):
    """A local Ray instance for this module, and its address for drivers in other processes."""
    ray_installed.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                       logging_level=logging.ERROR)
    try:
        yield ray_installed.get_runtime_context().gcs_address
    finally:
        ray_installed.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    directory = tmp_path_factory.mktemp("photos")
    evalkit.write_tiny_net(directory)
    evalkit.write_photos(directory, PHOTOS)
    return directory


def workers_of(pid: int, busy: bool = False) -> list[int]:
    """The archc Ray workers of the Ray instance process `pid` started (those evaluating a shard
    when `busy`)."""
    found, pending = [], [pid]
    while pending:
        for child in children_of(pending.pop()):
            pending.append(child)
            try:
                title = open(f"/proc/{child}/cmdline", "rb").read().split(b"\0")[0].decode()
            except OSError:
                continue
            if title.startswith(f"{WORKER_TITLE}.evaluate" if busy else WORKER_TITLE):
                found.append(child)
    return found


# --- shards -------------------------------------------------------------------------------------

def test_shards_are_runs_of_consecutive_groups_sized_for_the_workers():
    # SHARDS_PER_WORKER (8) shards a worker
    assert cluster.plan_shards(list(range(64)), 8, 2) == [range(n, n + 4) for n in range(0, 64, 4)]
    # resumed: done groups are left out, and no shard spans a gap
    assert cluster.plan_shards([0, 1, 2, 3, 4, 7, 8, 12], 8, 1) == [
        range(0, 1), range(1, 2), range(2, 3), range(3, 4), range(4, 5), range(7, 8), range(8, 9),
        range(12, 13)]
    assert cluster.plan_shards([0, 1, 2, 3, 6, 7, 8, 9] + list(range(20, 28)), 8, 1) == [
        range(0, 2), range(2, 4), range(6, 8), range(8, 10), range(20, 22), range(22, 24),
        range(24, 26), range(26, 28)]
    # at most about SHARD_CROPS (256) crops a shard, one group at least
    assert cluster.plan_shards(list(range(1000)), 12, 1)[0] == range(0, 21)
    assert cluster.plan_shards([7], 10_000, 1) == [range(7, 8)]
    assert cluster.plan_shards([], 8, 4) == []


# --- the command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--ray", "--nets", "2"], "--nets sizes a run on this machine; with --ray each Ray worker"),
    (["--ray", "--workers", "0"], "drop --workers"),
    (["--ray", "--gpu", "0"], "drop --gpu"),
    (["--ray-workers", "2"], "--ray-workers applies to --ray runs: add --ray"),
    (["--ray-shared-paths"], "--ray-shared-paths applies to --ray runs"),
])
def test_options_that_do_not_apply_are_refused(eval_dataset, tmp_path, capsys, extra, message):
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), *extra)
    assert cmd_eval.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("archc: error: ") and message in err, err


def test_without_ray_the_message_names_the_extra(eval_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--ray")
    assert cmd_eval.main(args) == 2
    assert capsys.readouterr().err.strip().endswith(
        "--ray needs Ray, which is not installed: pip install 'archc[ray]'")


# --- the same results ---------------------------------------------------------------------------

@pytest.mark.parametrize("backend, crops, extra", [
    ("opencv", 1, []),
    ("opencv", 12, ["--ray-shared-paths"]),
    ("caffe", 1, []),
    ("caffe", 12, []),
])
def test_a_ray_run_writes_the_local_runs_results_file(ray_address, eval_dataset, tmp_path, request,
                                                      backend, crops, extra):
    if backend == "caffe":
        request.getfixturevalue("caffe")
    common = ("--crops", str(crops), "--batch", "5")
    local, distributed = tmp_path / "local.json", tmp_path / "ray.json"
    # a Ray worker runs one net: the local run with one net records the same settings
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(local), *common,
                                           "--nets", "1", backend=backend)) == 0
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(distributed), *common,
                                           "--ray", *extra, backend=backend)) == 0
    assert distributed.read_bytes() == local.read_bytes()


def test_a_driver_joins_a_cluster_through_the_ray_client(ray_address, eval_dataset, tmp_path):
    # A Ray client server on the module's instance: the one-client kind, since what `ray start
    # --head` runs (a proxy starting a server per client) speaks the same protocol but adds a
    # process start that can fail on a loaded machine.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ray.util.client.server", "--address",
                               ray_address, "--host", "127.0.0.1", "--port", str(port), "--mode",
                               "legacy"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        local, distributed = tmp_path / "local.json", tmp_path / "ray.json"
        assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(local))) == 0
        args = evalkit.eval_args(eval_dataset, "--results", str(distributed), "--ray",
                                 f"ray://127.0.0.1:{port}")
        result = subprocess.run([sys.executable, "-m", "archc", "eval", *args],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert f"joining the Ray cluster at ray://127.0.0.1:{port}" in result.stderr
        assert distributed.read_bytes() == local.read_bytes()
    finally:
        server.terminate()
        server.wait()


def test_weights_are_checked_before_use(ray_address, tmp_path, monkeypatch):
    import ray
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"the weights")
    good = hashlib.sha256(b"the weights").hexdigest()
    # --ray-shared-paths: the file at the path is this node's, and must be the driver's
    assert cluster.weights_on_this_node(str(weights), good, []) == str(weights)
    with pytest.raises(EvalError, match=r"w.caffemodel here is not the file the driver read .*"
                                        r"--ray-shared-paths needs the same weights"):
        cluster.weights_on_this_node(str(weights), "0" * 64, [])
    # through the object store: a node's cached copy that is not the file is fetched again
    monkeypatch.setenv("ARCHC_CACHE_DIR", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "ray-weights" / f"{good}.caffemodel"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stale")
    in_store = [ray.put(np.frombuffer(b"the weights", np.uint8))]
    assert cluster.weights_on_this_node(str(weights), good, in_store) == str(cached)
    assert cached.read_bytes() == b"the weights"
    with pytest.raises(EvalError, match="not the file the driver hashed"):
        cluster.weights_on_this_node(str(weights), "0" * 64, in_store)


# --- faults -------------------------------------------------------------------------------------

def test_a_worker_killed_mid_shard_costs_that_shards_retry(ray_address, photos, tmp_path, capsys):
    reference = tmp_path / "reference.json"
    assert cmd_eval.main(evalkit.photo_args(photos, reference)) == 0
    results = tmp_path / "r.json"
    killed = []

    def kill_a_worker_mid_shard():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            if journal_lines(results.with_name("r.json.partial")) >= 2:  # a shard is back
                busy = workers_of(os.getpid(), busy=True)
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
            time.sleep(0.001)

    killer = threading.Thread(target=kill_a_worker_mid_shard)
    killer.start()
    try:
        assert cmd_eval.main(evalkit.photo_args(photos, results, "--ray")) == 0
    finally:
        killer.join()
    err = capsys.readouterr().err
    assert killed, "the run ended before a worker could be killed"
    retried = [line for line in err.splitlines() if "go to a new worker" in line]
    assert 1 <= len(retried) <= 2, err  # the shard it ran, and the one queued behind it
    assert all(line.startswith("archc: note: a Ray worker on 127.0.0.1 (") for line in retried)
    assert results.read_bytes() == reference.read_bytes()


def test_a_killed_driver_is_resumed_by_the_same_command(ray_address, photos, tmp_path, capsys,
                                                        monkeypatch):
    reference = tmp_path / "reference.json"
    assert cmd_eval.main(evalkit.photo_args(photos, reference)) == 0
    results, partial = tmp_path / "r.json", tmp_path / "r.json.partial"
    args = evalkit.photo_args(photos, results, "--ray", ray_address)
    driver = subprocess.Popen([sys.executable, "-m", "archc", "eval", *args],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        assert wait_for_lines(driver, partial, 3), driver.communicate()[1].decode()
        # a second driver on the same results file is refused
        assert cmd_eval.main(args) == 2
        assert f"{results} is in use by another archc eval (pid {driver.pid})" in capsys.readouterr().err
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    finished = {int(line.split(b'"group":')[1].split(b",")[0])
                for line in partial.read_bytes().splitlines()[1:]}
    assert finished and len(finished) < PHOTOS
    # Ray ends the killed driver's workers
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers_of(os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers_of(os.getpid()))

    given = []
    shard_job = cluster.shard_job
    monkeypatch.setattr(cluster, "shard_job",
                        lambda job, shard: given.append(shard) or shard_job(job, shard))
    assert cmd_eval.main(args) == 0
    assert results.read_bytes() == reference.read_bytes()
    evaluated = {group for shard in given for group in shard}
    assert evaluated == set(range(PHOTOS)) - finished


def test_a_node_without_the_backend_is_one_message_naming_it(ray_installed, eval_dataset, tmp_path):
    # Its own local instance (no address), whose workers cannot import Caffe.
    missing = tmp_path / "no-caffe"
    missing.mkdir()
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--ray",
                             backend="caffe")
    result = subprocess.run([sys.executable, "-m", "archc", "eval", *args],
                            env={**os.environ, "ARCHC_CAFFE_ROOT": str(missing)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("archc: error: Ray workers cannot start on 127.0.0.1 ("), last
    assert last.endswith(f"ARCHC_CAFFE_ROOT={missing} does not contain a caffe package (expected "
                         f"{missing}/caffe/__init__.py); point it at the python/ directory of your "
                         f"pycaffe build"), last
