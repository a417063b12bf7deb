"""`archc eval --ray`: one evaluation sharded over a Ray cluster, ending in a local run's results file.

The driver (the `archc eval` process) keeps what makes a run resumable and its results identical:
the lock, the journal and the final document (results.py) and the fixed groups of images
(run.Job). The groups the journal lacks are cut into shards, runs of consecutive groups; a Ray
worker is an actor holding one net, which evaluates each shard it is given with the local loop
itself (`run`, loading the images in the worker) and returns the shard's records, group by
group. The driver appends them to the journal as shards come back, in any order: the document is
sorted by image, and every group is forwarded in the same batches wherever it runs.

Faults: a worker that dies (killed, out of memory, its node lost) is replaced and its shards are
given out again, up to RETRIES times each; a driver killed outright takes its workers with it
(Ray ends a job's actors with the job), and the same command resumes from the journal.

Files: the prototxt travels in the BackendSpec. The weights go through Ray's object store, once
per node, into `$ARCHC_CACHE_DIR/ray-weights/SHA256.SUFFIX` (default ~/.cache/archc), or are read
where they are with --ray-shared-paths; either way they are checked against the SHA-256 the
results file records before a backend opens them. Images are read from --root, which every node
must see at the same path.

Ray is imported only once --ray asks for it, after `connect` has chosen how.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import logging
import math
import os
import socket
import sys
from collections import Counter, deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from archc.errors import ArchError, UsageError
from archc.files import write_atomically
from archc.runtime.backends import BackendSpec, Forwarder, limit_threads
from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.model import sha256_of_file, sha256_of_text
from archc.runtime.eval.progress import Progress
from archc.runtime.eval.results import Journal
from archc.runtime.eval.run import Job, groups_to_do, run

LOCAL = "local"            # Ray's own address for "start a new local instance"
RETRIES = 3                # times a shard is given out again after its worker died
SHARDS_PER_WORKER = 8      # at least this many shards per worker, so the workers end together
SHARD_CROPS = 256          # at most about this many crops a shard: what a driver kill can cost
IN_FLIGHT = 2              # shards queued at each worker: one running, the next one waiting
CACHE_ENV = "ARCHC_CACHE_DIR"


@dataclass(frozen=True)
class RayOptions:
    address: str           # LOCAL, "auto", "ray://HOST:PORT" or "HOST:PORT"
    workers: int | None    # None: one per CPU of the cluster
    shared_paths: bool     # the weights are at the same path on every node


def connect(address: str) -> bool:
    """Connect this process to Ray: to the cluster at `address`, or to a new local instance that
    listens on the loopback interface alone. False when the process was connected already (a
    test's or a notebook's own instance), which is then left as it is."""
    if address == LOCAL and "ray" not in sys.modules:
        # A local instance serves this machine alone; Ray reads this when it is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray, which is not installed: pip install 'archc[ray]'") from None
    if ray.is_initialized():
        return False
    if address != LOCAL:
        print(f"archc: note: joining the Ray cluster at {address}", file=sys.stderr)
    try:
        # No dashboard; Ray's notes and the workers' own output stay in Ray's logs: problems come
        # back as messages from the workers.
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise EvalError(f"cannot start or join Ray at {address}: {error}") from None
    return True


def plan_shards(todo: list[int], crops_per_group: int, workers: int) -> list[range]:
    """The groups to evaluate, `todo` (ascending), cut into shards of consecutive groups: at
    least SHARDS_PER_WORKER per worker, each of at most about SHARD_CROPS crops (one group at
    least)."""
    per_shard = max(1, min(SHARD_CROPS // crops_per_group,
                           math.ceil(len(todo) / (workers * SHARDS_PER_WORKER))))
    shards: list[range] = []
    start = 0
    for position in range(1, len(todo) + 1):
        if position == len(todo) or todo[position] != todo[position - 1] + 1 \
                or position - start == per_shard:
            shards.append(range(todo[start], todo[position - 1] + 1))
            start = position
    return shards


def shard_job(job: Job, shard: range) -> Job:
    """The job of one shard's images: its groups are the whole job's, since it starts at a group
    boundary. The worker loads them itself: Ray counts its one core, and shards are short."""
    size = job.group_size
    return replace(job, entries=job.entries[shard.start * size:shard.stop * size], workers=0)


class ShardGroups:
    """What `run` appends to a journal, kept in memory for the driver."""

    def __init__(self) -> None:
        self.groups: dict[int, list[dict]] = {}

    def records(self) -> list[dict]:
        return [record for group in sorted(self.groups) for record in self.groups[group]]

    def append(self, group: int, records: list[dict]) -> None:
        self.groups[group] = records


def this_node() -> str:
    import ray
    return f"{ray.util.get_node_ip_address()} ({socket.gethostname()})"


def cannot_start(nodes: list[str], problem: str) -> str:
    return f"Ray workers cannot start on {', '.join(sorted(set(nodes)))}: {problem}"


def weights_on_this_node(path: str, sha256: str, in_store: list) -> str:
    """A path on this node to the weights the driver hashed: `path` itself when `in_store` is
    empty (--ray-shared-paths), else this node's cached copy, fetched from the object store when
    it is missing or not that file. Either is checked before it is used."""
    if not in_store:
        found = sha256_of_file(path)
        if found != sha256:
            raise EvalError(f"{path} here is not the file the driver read (SHA-256 {found[:12]}..., "
                            f"not {sha256[:12]}...): --ray-shared-paths needs the same weights at "
                            f"that path on every node")
        return path
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "archc") / "ray-weights"
    cached = cache / f"{sha256}{Path(path).suffix}"
    if cached.is_file() and sha256_of_file(str(cached)) == sha256:
        return str(cached)
    cache.mkdir(parents=True, exist_ok=True)
    # The workers of a node start together: one fetches and writes, the others then find it.
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached.is_file() and sha256_of_file(str(cached)) == sha256:
            return str(cached)
        import ray
        data = ray.get(in_store[0])  # a read-only view of the node's shared copy
        if hashlib.sha256(data).hexdigest() != sha256:
            raise EvalError("the weights from Ray's object store are not the file the driver hashed")
        write_atomically(cached, data)
    return str(cached)


class ShardWorker:
    """A Ray worker: the net opened once, on this node's copy of the weights; then shards, each
    evaluated by the local loop. A problem opening it is kept, for the driver to report once for
    all the nodes that have it, rather than raised in every task."""

    def __init__(self, spec: BackendSpec, model_sha256: str, weights_sha256: str,
                 weights_in_store: list, root: str, probe: str | None):
        self.node = this_node()
        self.forwarder: Forwarder | None = None
        self.problem: str | None = None
        try:
            if sha256_of_text(spec.text) != model_sha256:
                raise EvalError("the prototxt received is not the one the driver hashed")
            if spec.weights_path is not None:
                spec = replace(spec, weights_path=weights_on_this_node(
                    spec.weights_path, weights_sha256, weights_in_store))
            if not os.path.isdir(root):
                raise EvalError(f"--root {root} is not a directory here: every node must see the "
                                f"images at the same path")
            if probe and not os.path.isfile(os.path.join(root, probe)):
                raise EvalError(f"{probe} is not under --root {root} here: every node must see the "
                                f"images at the same path")
            limit_threads(1)  # the one core Ray gave this worker
            self.forwarder = Forwarder(spec, 1)
        except (ArchError, ImportError, OSError) as error:
            self.problem = str(error.message if isinstance(error, ArchError) else error)

    def ready(self) -> tuple[str, str | None]:
        return self.node, self.problem

    def evaluate(self, job: Job, first_group: int) -> list[tuple[int, list[dict]]]:
        """The records of the shard's groups, numbered as in the whole list."""
        if self.forwarder is None:
            raise EvalError(cannot_start([self.node], self.problem))
        groups = ShardGroups()
        # The driver shows progress; this one is never read.
        run(job, self.forwarder, groups, Progress(len(job.entries), (1,), stream=io.StringIO()))
        return [(first_group + number, records) for number, records in sorted(groups.groups.items())]


@dataclass(frozen=True)
class Assignment:
    """A shard given to a worker."""

    index: int             # the worker's place in RayWorkers.workers
    worker: object         # its actor handle
    readiness: object      # its `ready` result, which names its node
    shard: range
    attempts: int          # times the shard was given out before


class RayWorkers:
    """The Ray workers of one `archc eval`, started when first needed (not at all when every
    results file is complete) and shared by the crop sizes of a sweep."""

    def __init__(self, options: RayOptions, spec: BackendSpec, model_sha256: str,
                 weights_sha256: str):
        self.options, self.spec = options, spec
        self.model_sha256, self.weights_sha256 = model_sha256, weights_sha256
        self.connected_here = False
        self.actor = self.arguments = None  # the worker's actor class and arguments, once started
        self.workers: list = []        # actor handles
        self.readiness: list = []      # each one's `ready` result, to come

    def __enter__(self) -> "RayWorkers":
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.workers and not self.connected_here:
            return
        import ray
        for worker in self.workers:
            ray.kill(worker)
        if self.connected_here:
            ray.shutdown()

    def start(self, job: Job) -> None:
        self.connected_here = connect(self.options.address)
        import ray
        count = self.options.workers or int(ray.cluster_resources().get("CPU", 0))
        if count < 1:
            raise EvalError("the Ray cluster has no CPUs to run workers on")
        in_store = [] if self.options.shared_paths or self.spec.weights_path is None else \
            [ray.put(np.fromfile(self.spec.weights_path, np.uint8))]
        probe = job.entries[0].path if os.path.isfile(job.path_of(job.entries[0])) else None
        # The spec (with the net) is put once, not sent with each of many workers.
        arguments = (ray.put(self.spec), self.model_sha256, self.weights_sha256, in_store,
                     job.root, probe)
        self.actor, self.arguments = ray.remote(ShardWorker).options(num_cpus=1), arguments
        for _ in range(count):
            worker = self.new_worker()
            self.workers.append(worker)
            self.readiness.append(worker.ready.remote())
        try:
            reports = ray.get(self.readiness)
        except ray.exceptions.RayActorError:
            raise EvalError("a Ray worker died while opening the model (out of memory?)") from None
        problems: dict[str, list[str]] = {}
        for node, problem in reports:
            if problem is not None:
                problems.setdefault(problem, []).append(node)
        if problems:
            raise EvalError("; ".join(cannot_start(nodes, problem)
                                      for problem, nodes in problems.items()))
        nodes = sorted({node for node, _ in reports})
        print(f"archc: note: {count} Ray worker(s) on {len(nodes)} node(s): {', '.join(nodes[:3])}"
              + (", ..." if len(nodes) > 3 else ""), file=sys.stderr)

    def new_worker(self):
        return self.actor.remote(*self.arguments)

    def replace_worker(self, index: int) -> None:
        worker = self.new_worker()
        self.workers[index], self.readiness[index] = worker, worker.ready.remote()

    def run(self, job: Job, journal: Journal, progress: Progress) -> None:
        """Evaluate every group the journal lacks, appending each shard's groups as it comes back."""
        todo = groups_to_do(job, journal)
        if todo and not self.workers:
            self.start(job)
        progress.add(journal.records(), resumed=True)  # the clock starts with the workers ready
        import ray
        size = job.group_size
        queue = deque((shard, 0) for shard in plan_shards(
            todo, size * job.preprocess.crops, max(1, len(self.workers))))
        pending: dict = {}             # a shard's result to come -> its Assignment
        queued_at: Counter = Counter()

        def feed(index: int) -> None:
            while queue and queued_at[index] < IN_FLIGHT:
                shard, attempts = queue.popleft()
                worker = self.workers[index]
                result = worker.evaluate.remote(shard_job(job, shard), shard.start)
                pending[result] = Assignment(index, worker, self.readiness[index], shard, attempts)
                queued_at[index] += 1

        for index in range(len(self.workers)):
            feed(index)
        while pending:
            [done], _ = ray.wait(list(pending), num_returns=1)
            given = pending.pop(done)
            queued_at[given.index] -= 1
            try:
                groups = ray.get(done)
            except ray.exceptions.RayActorError:
                retry(given, job)
                if self.workers[given.index] is given.worker:  # its other shard fails too
                    self.replace_worker(given.index)
                queue.appendleft((given.shard, given.attempts + 1))
            except ray.exceptions.RayTaskError as error:  # raised by the worker's own code
                raise (error.cause if isinstance(error.cause, ArchError) else error) from None
            else:
                for number, records in groups:
                    journal.append(number, records)
                    progress.add(records)
            feed(given.index)
        progress.finish()


def node_of(readiness) -> str:
    """The node a worker reported, if it lived to."""
    import ray
    try:
        return ray.get(readiness, timeout=0)[0]
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
        return "a node it had not reported"


def retry(given: Assignment, job: Job) -> None:
    """Say that a shard goes to a new worker, its worker having died; an error when it has been
    given out too often (it may be what kills them)."""
    entries = shard_job(job, given.shard).entries
    images = f"{entries[0].index}..{entries[-1].index}"
    if given.attempts == RETRIES:
        raise EvalError(f"Ray workers died {RETRIES + 1} times evaluating the images with index "
                        f"{images} (the last on {node_of(given.readiness)}; out of memory?); "
                        f"results so far are kept: rerun the same command to resume")
    print(f"archc: note: a Ray worker on {node_of(given.readiness)} died; the images with index "
          f"{images} go to a new worker", file=sys.stderr)
