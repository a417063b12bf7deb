"""Accuracy versus crop size: where each size's results go, and the curve (PNG)."""
from __future__ import annotations

from pathlib import Path

from archc.runtime.eval.errors import EvalError


def results_path_for_size(results: Path, size: int) -> Path:
    """model.json -> model-224.json: one resumable results file per crop size."""
    return results.with_name(f"{results.stem}-{size}{results.suffix}")


def plot_path(results: Path) -> Path:
    return results.with_name(f"{results.stem}-sizes.png")


def plot_accuracy(sizes: list[int], accuracies: dict[str, list[float]], title: str,
                  protocols: list[str], path: Path) -> None:
    """One line per top-k accuracy (in %) over the crop sizes, each size's protocol (`224\nfrom
    256`: the crop, and the shorter side the image was resized to first) written under it."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5), dpi=100)
    for key, values in accuracies.items():
        axes.plot(sizes, [100 * value for value in values], marker="o", label=key)
    axes.set_xlabel("crop size, from the image's shorter side resized to (pixels)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title, fontsize=10)
    axes.set_xticks(sizes, labels=protocols)
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise EvalError(f"cannot write {path}: {error.strerror or error}") from None
    finally:
        pyplot.close(figure)
