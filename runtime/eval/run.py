"""One evaluation: images in fixed groups -> crops -> batched forward -> averaged scores -> journal.

Images are processed in groups of `max(1, batch // crops)` consecutive list entries, and a group's
crops go through the network in slices of at most `batch`. Groups are fixed by the list alone, so a
resumed run feeds the network exactly the batches an uninterrupted one would (Caffe's results can
depend, in the last bits, on what else is in a batch) and the results file comes out identical.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from runtime.backends import Backend
from runtime.eval.crops import Preprocess
from runtime.eval.metrics import image_record, skipped_record
from runtime.eval.pipeline import Loaded, load_in_order
from runtime.eval.progress import Progress
from runtime.eval.results import Journal
from runtime.eval.vallist import Entry


@dataclass(frozen=True)
class Job:
    entries: list[Entry]
    root: str
    preprocess: Preprocess
    batch: int
    max_k: int
    workers: int

    @property
    def group_size(self) -> int:
        return max(1, self.batch // self.preprocess.crops)

    def groups(self) -> list[list[Entry]]:
        size = self.group_size
        return [self.entries[start:start + size] for start in range(0, len(self.entries), size)]

    def path_of(self, entry: Entry) -> str:
        return os.path.join(self.root, entry.path)


def average_scores(backend: Backend, crops: np.ndarray, counts: list[int], batch: int) -> np.ndarray:
    """Forward the crops in slices of at most `batch`; the mean score of each image's crops."""
    outputs = [backend.forward(crops[start:start + batch]) for start in range(0, len(crops), batch)]
    scores = np.concatenate(outputs).astype(np.float64)
    ends = np.cumsum(counts)
    return np.stack([scores[end - count:end].mean(axis=0) for end, count in zip(ends, counts)])


def evaluate_group(backend: Backend, group: list[Entry], loaded: list[Loaded], batch: int,
                   max_k: int) -> list[dict]:
    usable = [item for item in loaded if item.crops is not None]
    scores = iter(())
    if usable:
        crops = np.concatenate([item.crops for item in usable])
        scores = iter(average_scores(backend, crops, [len(item.crops) for item in usable], batch))
    records = []
    for entry, item in zip(group, loaded):
        if item.crops is None:
            records.append(skipped_record(entry.index, entry.path, item.problem))
            continue
        record = image_record(entry.index, entry.path, entry.label, next(scores), max_k)
        if item.notes:
            record["notes"] = list(item.notes)
        records.append(record)
    return records


def run(job: Job, backend: Backend, journal: Journal, progress: Progress) -> None:
    """Evaluate every group the journal lacks, appending each as it finishes."""
    groups = job.groups()
    progress.add(journal.records(), resumed=True)
    todo = [number for number in range(len(groups)) if number not in journal.groups]
    tasks = ((entry.index, job.path_of(entry)) for number in todo for entry in groups[number])
    depth = job.workers + 2 * job.group_size
    loaded: Iterator[Loaded] = load_in_order(tasks, job.preprocess, job.workers, depth)
    try:
        for number in todo:
            group = groups[number]
            items = [next(loaded) for _ in group]
            records = evaluate_group(backend, group, items, job.batch, job.max_k)
            journal.append(number, records)
            progress.add(records)
    finally:
        loaded.close()
    progress.finish()
