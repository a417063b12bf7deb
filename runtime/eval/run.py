"""One evaluation: images in fixed groups -> crops -> batched forward -> averaged scores -> journal.

Images are processed in groups of `max(1, batch // crops)` consecutive list entries, and a group's
crops go through the network in slices of at most `batch`. Groups are fixed by the list alone, so a
resumed run feeds the network exactly the batches an uninterrupted one would (Caffe's results can
depend, in the last bits, on what else is in a batch) and the results file comes out identical.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from archc.runtime.backends import Forwarder
from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.crops import Preprocess
from archc.runtime.eval.images import ImageLimits
from archc.runtime.eval.metrics import image_record, skipped_record
from archc.runtime.eval.pipeline import Loaded, load_in_order
from archc.runtime.eval.progress import Progress
from archc.runtime.eval.results import Journal
from archc.runtime.eval.vallist import Entry, image_path


@dataclass(frozen=True)
class Job:
    entries: list[Entry]
    root: str
    preprocess: Preprocess
    batch: int
    max_k: int
    workers: int
    limits: ImageLimits = ImageLimits()

    @property
    def group_size(self) -> int:
        return max(1, self.batch // self.preprocess.crops)

    def groups(self) -> list[list[Entry]]:
        size = self.group_size
        return [self.entries[start:start + size] for start in range(0, len(self.entries), size)]

    def path_of(self, entry: Entry) -> str:
        return image_path(self.root, entry.path)


@dataclass
class InFlight:
    """A group whose crops are submitted to the network."""

    number: int
    group: list[Entry]
    loaded: list[Loaded]
    outputs: list[Future]


def submit_group(forwarder: Forwarder, number: int, group: list[Entry], loaded: list[Loaded],
                 batch: int) -> InFlight:
    """Forward the usable images' crops, concatenated, in slices of at most `batch`."""
    usable = [item.crops for item in loaded if item.crops is not None]
    outputs = []
    if usable:
        crops = np.concatenate(usable)
        outputs = [forwarder.submit(crops[start:start + batch]) for start in range(0, len(crops), batch)]
    return InFlight(number, group, loaded, outputs)


def average_scores(outputs: list[np.ndarray], counts: list[int]) -> list[np.ndarray]:
    """The mean score of each image's crops, the crops of consecutive images concatenated."""
    scores = np.concatenate(outputs).astype(np.float64)
    ends = np.cumsum(counts)
    return [scores[end - count:end].mean(axis=0) for end, count in zip(ends, counts)]


def group_records(flight: InFlight, max_k: int) -> list[dict]:
    usable = [item for item in flight.loaded if item.crops is not None]
    outputs = [future.result() for future in flight.outputs]
    scores = iter(average_scores(outputs, [len(item.crops) for item in usable]) if usable else ())
    records = []
    for entry, item in zip(flight.group, flight.loaded):
        if item.crops is None:
            records.append(skipped_record(entry.index, entry.path, item.problem))
            continue
        image_scores = next(scores)
        if not np.isfinite(image_scores).all():
            raise EvalError(f"the net's scores for {entry.path} are not all finite (NaN or "
                            f"infinity): check the weights and --mean/--std")
        record = image_record(entry.index, entry.path, entry.label, image_scores, max_k)
        if item.notes:
            record["notes"] = list(item.notes)
        records.append(record)
    return records


def groups_to_do(job: Job, journal: Journal) -> list[int]:
    """The numbers of the job's groups the journal lacks, ascending."""
    return [number for number in range(len(job.groups())) if number not in journal.groups]


def run(job: Job, forwarder: Forwarder, journal: Journal, progress: Progress) -> None:
    """Evaluate every group the journal lacks, appending each, in order, as it finishes; loading
    and (with replicas) forward passes of later groups overlap."""
    groups = job.groups()
    progress.add(journal.records(), resumed=True)
    todo = groups_to_do(job, journal)
    tasks = ((entry.index, job.path_of(entry)) for number in todo for entry in groups[number])
    depth = job.workers + 2 * job.group_size * (1 + forwarder.ahead)
    loaded: Iterator[Loaded] = load_in_order(tasks, job.preprocess, job.limits, job.workers, depth)
    flights: deque[InFlight] = deque()

    def finish_oldest() -> None:
        flight = flights.popleft()
        records = group_records(flight, job.max_k)
        journal.append(flight.number, records)
        progress.add(records)

    try:
        for number in todo:
            group = groups[number]
            flights.append(submit_group(forwarder, number, group, [next(loaded) for _ in group],
                                        job.batch))
            while len(flights) > forwarder.ahead:
                finish_oldest()
        while flights:
            finish_oldest()
    except BrokenProcessPool:  # a forward replica died: from a result, or from submitting
        raise EvalError("a forward process died (out of memory?); results so far are kept: rerun "
                        "the same command to resume") from None
    finally:
        loaded.close()
    progress.finish()
