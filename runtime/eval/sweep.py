"""Accuracy versus crop size: where each size's results go, and the curve (PNG)."""
from __future__ import annotations

from pathlib import Path

from archc.runtime.eval.errors import EvalError


def results_path_for_size(results: Path, size: int) -> Path:
    """model.json -> model-224.json: one resumable results file per crop size."""
    return results.with_name(f"{results.stem}-{size}{results.suffix}")


def plot_path(results: Path) -> Path:
    return results.with_name(f"{results.stem}-sizes.png")


def plot_accuracy(sizes: list[int], accuracies: dict[str, list[float]], title: str, path: Path) -> None:
    """One line per top-k accuracy (in %) over the crop sizes."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 4), dpi=100)
    for key, values in accuracies.items():
        axes.plot(sizes, [100 * value for value in values], marker="o", label=key)
    axes.set_xlabel("crop size (pixels)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title)
    axes.set_xticks(sizes)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise EvalError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        pyplot.close(figure)
