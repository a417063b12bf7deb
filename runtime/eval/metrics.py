"""Scores -> per-image records -> counts and top-k accuracies (the results document)."""
from __future__ import annotations

import numpy as np

from archc.runtime.eval.results import FORMAT
from archc.runtime.eval.settings import EvalSettings


def top_classes(scores: np.ndarray, k: int) -> list[int]:
    """The k best classes, best first; equal scores rank the lower class index first."""
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


def image_record(index: int, image: str, label: int, scores: np.ndarray, k: int) -> dict:
    top = top_classes(scores, k)
    return {"index": index, "image": image, "label": label, "top": top,
            "scores": [float(scores[i]) for i in top]}


def skipped_record(index: int, image: str, reason: str) -> dict:
    return {"index": index, "image": image, "skipped": reason}


def hits(record: dict, k: int) -> bool:
    return record["label"] in record["top"][:k]


def accuracy_key(k: int) -> str:
    return f"top{k}"


def summarise(records: list[dict], topk: tuple[int, ...]) -> dict:
    """Counts, correct predictions and accuracies (over the evaluated images) per k."""
    evaluated = [r for r in records if "skipped" not in r]
    correct = {accuracy_key(k): sum(hits(r, k) for r in evaluated) for k in topk}
    return {
        "counts": {"images": len(records), "evaluated": len(evaluated),
                   "skipped": len(records) - len(evaluated),
                   "with_notes": sum(1 for r in evaluated if r.get("notes"))},
        "correct": correct,
        "accuracy": {key: (count / len(evaluated) if evaluated else None)
                     for key, count in correct.items()},
    }


def results_document(settings: EvalSettings, records: list[dict]) -> dict:
    ordered = sorted(records, key=lambda r: r["index"])
    return {
        "format": FORMAT,
        "settings": settings.to_json(),
        **summarise(ordered, settings.topk),
        "skipped": [r for r in ordered if "skipped" in r],
        "images": [r for r in ordered if "skipped" not in r],
    }
