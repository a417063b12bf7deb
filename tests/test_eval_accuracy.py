"""`archc eval` end to end on a net and images whose predictions are known by construction."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import evalkit
from archc.cli import cmd_eval
from archc.cli.arguments import split_overrides
from archc.ir import infer_shapes
from archc.model import load_model
from archc.runtime import weights


def run_eval(directory, results, *extra, backend="opencv"):
    status = cmd_eval.main(evalkit.eval_args(directory, "--results", str(results), *extra,
                                             backend=backend))
    assert status == 0
    return json.loads(results.read_text())


def check_known_answers(document, crops):
    assert document["settings"]["crops"] == crops
    assert document["counts"] == {"images": 12, "evaluated": 12, "skipped": 0, "with_notes": 0}
    assert document["correct"] == {"top1": evalkit.EXPECTED_TOP1, "top5": evalkit.EXPECTED_TOP5}
    assert document["accuracy"] == {"top1": evalkit.EXPECTED_TOP1 / 12,
                                    "top5": evalkit.EXPECTED_TOP5 / 12}
    for record, (nearest, label) in zip(document["images"], evalkit.CASES):
        assert record["label"] == label
        assert record["top"] == evalkit.expected_ranking(evalkit.image_colour(nearest))[:5]
        assert record["scores"] == sorted(record["scores"], reverse=True)


@pytest.mark.parametrize("crops, batch, workers", [(1, 5, 0), (12, 8, 2), (144, 100, 1)])
def test_opencv_backend_gives_the_known_top1_and_top5(eval_dataset, tmp_path, crops, batch, workers):
    document = run_eval(eval_dataset, tmp_path / "r.json", "--crops", str(crops), "--batch", str(batch),
                        "--workers", str(workers))
    check_known_answers(document, crops)


@pytest.mark.parametrize("crops, nets", [(1, 1), (12, 2), (144, 1)])
def test_caffe_backend_gives_the_known_top1_and_top5(caffe, eval_dataset, tmp_path, crops, nets):
    document = run_eval(eval_dataset, tmp_path / "r.json", "--crops", str(crops), "--batch", "24",
                        "--workers", "0", "--nets", str(nets), backend="caffe")
    check_known_answers(document, crops)


def test_caffe_and_opencv_scores_agree(caffe, eval_dataset, tmp_path):
    by_backend = {backend: run_eval(eval_dataset, tmp_path / f"{backend}.json", "--crops", "12",
                                    "--topk", "1,10", "--workers", "0", "--nets", "1",
                                    backend=backend)
                  for backend in ("caffe", "opencv")}
    for ours, theirs in zip(by_backend["caffe"]["images"], by_backend["opencv"]["images"]):
        assert ours["top"] == theirs["top"]
        np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4, rtol=0)


def test_any_k_is_reported(eval_dataset, tmp_path):
    document = run_eval(eval_dataset, tmp_path / "r.json", "--topk", "2,3,10", "--workers", "0")
    assert set(document["accuracy"]) == {"top2", "top3", "top10"}
    assert document["correct"]["top10"] == 12
    assert all(len(record["top"]) == 10 for record in document["images"])


def test_labels_are_remapped_by_wnid(eval_dataset, tmp_path):
    # The model's classes in one WNID order, the val list's in the reverse order.
    wnids = [f"n{number:08d}" for number in range(evalkit.CLASSES)]
    model_order, val_order = tmp_path / "model.txt", tmp_path / "val-order.txt"
    model_order.write_text("".join(f"{wnid} class {wnid}\n" for wnid in wnids))
    val_order.write_text("".join(f"{wnid}\n" for wnid in reversed(wnids)))
    remapped = tmp_path / "val.txt"
    evalkit.write_val(remapped, [(f"img/{number:02d}.png", evalkit.CLASSES - 1 - label)
                                 for number, (_, label) in enumerate(evalkit.CASES)])
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "0",
                             "--synset", f"{val_order}:{model_order}")
    args[args.index("--val") + 1] = str(remapped)
    assert cmd_eval.main(args) == 0
    document = json.loads((tmp_path / "r.json").read_text())
    assert [record["label"] for record in document["images"]] == [label for _, label in evalkit.CASES]
    assert document["correct"] == {"top1": evalkit.EXPECTED_TOP1, "top5": evalkit.EXPECTED_TOP5}


def test_size_sweep_writes_one_results_file_per_size_and_a_plot(eval_dataset, tmp_path, capsys):
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"),
                                           "--sizes", "16,20", "--workers", "0")) == 0
    for size in (16, 20):
        document = json.loads((tmp_path / f"r-{size}.json").read_text())
        assert document["settings"]["crop_size"] == size
        assert document["correct"]["top1"] == evalkit.EXPECTED_TOP1
    assert (tmp_path / "r-sizes.png").read_bytes().startswith(b"\x89PNG")
    table = capsys.readouterr().out
    assert "crop size" in table and "50.00%" in table


def test_a_generated_resnext50_scores_the_same_on_caffe_and_opencv(caffe, tmp_path):
    """The .arch model with its parameters, archc-written filler weights: Caffe as written, Caffe
    with BatchNorm folded (eval's default) and OpenCV give the same top-10 and logits (about 2000
    in size) within a relative 1e-5."""
    arch = str(Path(__file__).resolve().parents[1] / "archs" / "resnext.arch")
    params = ["--depth", "50", "--card", "32"]
    net = load_model(arch, split_overrides(params)).net
    weights_path = tmp_path / "resnext50.caffemodel"
    weights.write_caffemodel(weights_path, weights.initial_weights(infer_shapes(net)))
    rng = np.random.default_rng(3)
    for number in range(3):
        colours = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{number}.jpg"),
                    cv2.resize(colours, (200, 150), interpolation=cv2.INTER_CUBIC))
    evalkit.write_val(tmp_path / "val.txt", [(f"{number}.jpg", number) for number in range(3)])
    runs = {"as written": ["--backend", "caffe", "--keep-batchnorm"],
            "folded": ["--backend", "caffe"], "opencv": ["--backend", "opencv"]}
    logits = {}
    for name, options in runs.items():
        results = tmp_path / f"{name}.json"
        assert cmd_eval.main([arch, *params, "--weights", str(weights_path),
                              "--val", str(tmp_path / "val.txt"), "--root", str(tmp_path),
                              "--preset", "resnext", "--crop-size", "128", "--blob", "classifier",
                              "--topk", "1,10", "--nets", "1", "--workers", "0",
                              *options, "--results", str(results)]) == 0
        document = json.loads(results.read_text())
        assert document["settings"]["fold_batchnorm"] == (name == "folded")
        logits[name] = document["images"]
    for name in ("folded", "opencv"):
        for ours, theirs in zip(logits["as written"], logits[name]):
            assert ours["top"] == theirs["top"]
            scale = max(abs(value) for value in ours["scores"])
            np.testing.assert_allclose(ours["scores"], theirs["scores"], rtol=0, atol=1e-5 * scale)
