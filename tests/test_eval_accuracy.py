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
    assert document["ties"] == {"top1": 0, "top5": 0}
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
    # the model's synset list has words: they name the classes
    assert document["class_names"] == [f"class {wnid}" for wnid in wnids]


def test_class_names_from_a_words_file_are_in_the_results_and_the_report(eval_dataset, tmp_path,
                                                                          capsys):
    words = tmp_path / "words.txt"
    words.write_text("".join(f"n{k:08d} colour {k}, hue {k}\n" for k in range(evalkit.CLASSES)))
    document = run_eval(eval_dataset, tmp_path / "r.json", "--labels", str(words), "--workers", "0")
    assert document["class_names"][:2] == ["colour 0, hue 0", "colour 1, hue 1"]
    assert document["settings"]["labels"] == str(words)
    out = capsys.readouterr().out
    assert "  best classes of the first 5 images (label: predictions):\n" \
           "    img/00.png  colour 0: colour 0 0.486, colour 1 0.366, colour 2 0.126\n" in out
    # a plain list of names, one a line, works as well; bare WNIDs or a wrong count do not
    words.write_text("".join(f"colour {k}\n" for k in range(evalkit.CLASSES)))
    assert run_eval(eval_dataset, tmp_path / "plain.json", "--labels", str(words),
                    "--workers", "0")["class_names"][9] == "colour 9"
    for text, message in ((f"n{0:08d}\n" * 10, "holds WNIDs without words"),
                          ("a\nb\n", "names 2 classes but the model has 10")):
        words.write_text(text)
        assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "x.json"),
                                               "--labels", str(words))) == 2
        assert message in capsys.readouterr().err


def test_ties_at_the_kth_place_are_counted_and_reported(eval_dataset, tmp_path, capsys):
    # all-zero weights: every class scores 1/10, so the top k is the k lowest class indices
    zeros = tmp_path / "zeros.caffemodel"
    weights.write_caffemodel(zeros, [("fc", "InnerProduct", [np.zeros((10, 3), np.float32),
                                                             np.zeros(10, np.float32)])], "tiny")
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "0")
    args[args.index("--weights") + 1] = str(zeros)
    assert cmd_eval.main(args) == 0
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["ties"] == {"top1": 12, "top5": 12}
    assert all(record["tied"] == [1, 2, 3, 4, 5] and record["top"] == [0, 1, 2, 3, 4]
               for record in document["images"])
    out = capsys.readouterr().out
    assert ("  top5 is inflated by ties: 12 of 12 images have equal 5th and 6th best scores, and "
            "equal scores rank the lower class index first (a saturated softmax, from filler "
            "weights?)") in out
    assert "  top1 is inflated by ties: 12 of 12 images have equal 1st and 2nd best scores" in out


def test_size_sweep_writes_one_results_file_per_size_and_a_plot(eval_dataset, tmp_path, capsys,
                                                                 monkeypatch):
    plotted = []
    real_plot = cmd_eval.plot_accuracy
    monkeypatch.setattr(cmd_eval, "plot_accuracy", lambda *args: plotted.append(args) or real_plot(*args))
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"),
                                           "--sizes", "16,20", "--workers", "0")) == 0
    (sizes, _, title, protocols, _), = plotted
    assert title == "tiny.prototxt, weights tiny.caffemodel\n12 images, 1 crop(s) per image"
    assert (sizes, protocols) == ([16, 20], ["16\nfrom 20", "20\nfrom 20"])
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
