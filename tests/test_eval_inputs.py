"""Bad inputs to `archc eval`: val lists, labels, images, output locations, locks, resumption.

Per-image problems are counted and listed, never fatal; everything else is one `archc: error:`
line and exit status 2 before any work, or after keeping everything already computed."""
from __future__ import annotations

import errno
import json
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image

import evalkit
from conftest import deadline
from archc.cli import cmd_eval
from archc.ir import infer_shapes
from archc.model import load_model
from archc.runtime.eval import results as results_module
from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.presets import PRESETS, preset_for_model
from archc.runtime.eval.results import Lock
from archc.runtime.eval.synsets import parse_remap, read_synsets, remap_table, val_list_order
from archc.runtime.eval.vallist import label_entries, parse_val_list, read_val_list
from archc.runtime.weights import initial_weights, write_caffemodel


def fails_with(capsys, args, fragment):
    """Runs `archc eval`; asserts exit 2 and, after any progress lines, one `archc: error:` line
    containing `fragment`."""
    assert cmd_eval.main(args) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("archc: error: ") and "Traceback" not in err, err
    assert fragment in last, err
    return last


# --- val lists and labels ---------------------------------------------------------------------

def test_val_list_lines():
    lines = parse_val_list("# comment\n/Data/val/a b.JPEG 3\n\nx/y.png 0\n", "v.txt")
    assert [(line.path, line.label, line.line) for line in lines] == [
        ("Data/val/a b.JPEG", 3, 2), ("x/y.png", 0, 4)]


@pytest.mark.parametrize("text, message", [
    ("a.png 1\nlonely\n", "v.txt:2: expected 'PATH LABEL'"),
    ("a.png one\n", "v.txt:1: the label 'one' is not an integer"),
    ("a.png -1\n", "v.txt:1: the label -1 is negative"),
    ("../../etc/passwd 1\n", "does not name a file under the root"),
    ("a/../../b.png 1\n", "does not name a file under the root"),
    ("\n# nothing\n", "has no images"),
    # found by fault injection: read as the path 'astronaut.png 0', and as an internal error
    ("a.png 1\nastronaut.png 0 1\n", "v.txt:2: expected 'PATH LABEL', got 'astronaut.png 0 1', "
                                     "which has two labels (0 and 1): keep one (a file whose name "
                                     "ends in ' 0' must be renamed)"),
    ("a\x00b.png 1\n", "v.txt:1: the path 'a\\x00b.png' holds a NUL byte, which no file name can"),
])
def test_malformed_val_lists_name_the_line(text, message):
    with pytest.raises(EvalError, match=re.escape(message)):
        parse_val_list(text, "v.txt")


def test_a_byte_order_mark_is_no_part_of_the_first_path(tmp_path):
    # found by fault injection: the first image was reported missing
    val = tmp_path / "val.txt"
    val.write_bytes(b"\xef\xbb\xbfimg/00.png 0\nimg/01.png 1\n")
    assert [line.path for line in read_val_list(str(val))] == ["img/00.png", "img/01.png"]


def test_inputs_that_are_no_regular_files_are_one_line_errors_not_hangs(eval_dataset, tmp_path,
                                                                         capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"))
    for option, fragment in (("--val", f"cannot read val list {fifo}: a FIFO, not a regular file"),
                             ("--weights", f"cannot read {fifo}: a FIFO, not a regular file"),
                             ("--synset", f"cannot read synset list {fifo}: a FIFO, not a regular "
                                          f"file")):
        changed = [*args, "--synset", str(fifo)] if option == "--synset" else list(args)
        if option != "--synset":
            changed[changed.index(option) + 1] = str(fifo)
        with deadline(10):
            fails_with(capsys, changed, fragment)
    with deadline(10):
        val = tmp_path / "val.txt"
        val.symlink_to("/dev/zero")
        args[args.index("--val") + 1] = str(val)
        fails_with(capsys, args, "a character device, not a regular file")


def test_label_outside_the_class_range_is_an_error_naming_the_line():
    lines = parse_val_list("a.png 9\nb.png 10\n", "v.txt")
    with pytest.raises(EvalError, match=r"v.txt:2: the label 10 is outside the model's 10 classes"):
        label_entries(lines, 10, None, "v.txt")


def test_bad_label_stops_eval_before_anything_is_written(eval_dataset, tmp_path, capsys):
    val = tmp_path / "val.txt"
    evalkit.write_val(val, [("img/00.png", 0), ("img/01.png", 0), ("img/02.png", 10)])
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"))
    args[args.index("--val") + 1] = str(val)
    fails_with(capsys, args, "val.txt:3: the label 10 is outside the model's 10 classes (0..9)")
    assert sorted(os.listdir(tmp_path)) == ["val.txt"]


# --- class order -------------------------------------------------------------------------------

def test_remap_spec():
    assert parse_remap("2015") == ("2012", "2015")
    assert parse_remap("a.txt:b.txt") == ("a.txt", "b.txt")
    assert parse_remap("none") is None
    with pytest.raises(EvalError, match="VAL:MODEL"):
        parse_remap(":2015")


def test_2012_to_2015_remap_turns_one_published_val_list_into_the_other(reference_cls, monkeypatch):
    monkeypatch.setenv("ARCHC_REFERENCE_DIR", str(reference_cls.parent))
    table = remap_table("2012", "2015")
    assert sorted(table) == list(range(1000))
    assert read_synsets("2015")[table[0]] == read_synsets("2012")[0]
    old = {line.path: line.label for line in parse_val_list(
        (reference_cls / "ILSVRC2012_val.txt").read_text())}
    new = {line.path: line.label for line in parse_val_list(
        (reference_cls / "ILSVRC2015_val.txt").read_text())}
    assert len(old) == 50000 and old.keys() == new.keys()
    assert all(table[old[path]] == new[path] for path in old)


# --- images ------------------------------------------------------------------------------------

def write_bad_images(directory):
    """name -> expected reason (skipped) or notes (evaluated), for each kind of odd file."""
    good = evalkit.image_colour(4)
    image = np.empty((30, 40, 3), np.uint8)
    image[:] = good
    cv2.imwrite(str(directory / "grey.png"), image[:, :, 1])
    cv2.imwrite(str(directory / "grey.jpg"), image[:, :, 1])
    cv2.imwrite(str(directory / "deep.png"), image.astype(np.uint16) * 257)
    cv2.imwrite(str(directory / "alpha.png"), np.dstack([image, np.full((30, 40), 200, np.uint8)]))
    Image.new("CMYK", (40, 30), (10, 20, 30, 40)).save(directory / "cmyk.jpg")
    cv2.imwrite(str(directory / "whole.jpg"), image)
    jpeg = (directory / "whole.jpg").read_bytes()
    (directory / "cut.jpg").write_bytes(jpeg[:len(jpeg) * 2 // 3])
    png = (directory / "deep.png").read_bytes()
    (directory / "cut.png").write_bytes(png[:len(png) // 2])
    (directory / "empty.jpg").write_bytes(b"")
    (directory / "text.jpg").write_text("not an image\n")
    cv2.imwrite(str(directory / "tiny.png"), image[:10, :12])
    cv2.imwrite(str(directory / "thin.png"), cv2.resize(image, (1020, 20)))
    (directory / "folder.png").mkdir()
    return {
        "grey.png": ["grayscale"], "grey.jpg": ["grayscale"], "deep.png": ["16-bit"],
        "alpha.png": ["alpha"], "cmyk.jpg": ["cmyk"], "whole.jpg": None,
        "cut.jpg": "truncated", "cut.png": "truncated", "empty.jpg": "empty file",
        "text.jpg": "not a decodable image", "missing.jpg": "missing", "folder.png": "a directory, not a regular file",
        "tiny.png": "too small: 12x10, a side under 16 pixels",
        "thin.png": "too thin: 1020x20, one side over 50 times the other",
    }


def test_odd_images_are_counted_listed_and_skipped_where_unusable(eval_dataset, tmp_path, capsys):
    root = tmp_path / "images"
    root.mkdir()
    expected = write_bad_images(root)
    val = tmp_path / "val.txt"
    evalkit.write_val(val, [(name, 4) for name in expected])
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "1")
    args[args.index("--val") + 1] = str(val)
    args[args.index("--root") + 1] = str(root)
    assert cmd_eval.main(args) == 0
    document = json.loads((tmp_path / "r.json").read_text())
    skipped = {record["image"]: record["skipped"] for record in document["skipped"]}
    evaluated = {record["image"]: record.get("notes") for record in document["images"]}
    assert skipped == {name: why for name, why in expected.items() if isinstance(why, str)}
    assert evaluated == {name: notes for name, notes in expected.items() if not isinstance(notes, str)}
    assert document["counts"] == {"images": 14, "evaluated": 6, "skipped": 8, "with_notes": 5}
    # 16-bit values are scaled to 8 bits and alpha is dropped: the colour of class 4 survives
    top1 = {record["image"]: record["top"][0] for record in document["images"]}
    assert [top1[name] for name in ("whole.jpg", "deep.png", "alpha.png")] == [4, 4, 4]
    out = capsys.readouterr().out
    assert "skipped cut.jpg: truncated" in out and "skipped 8" in out


def test_a_run_that_evaluates_no_image_fails_with_the_paths_tried(eval_dataset, tmp_path, capsys,
                                                                    monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")
    args[args.index("--root") + 1] = str(empty)
    assert cmd_eval.main(args) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"archc: error: no image was evaluated: all 12 were skipped (12 missing); tried "
                    f"{empty}/img/00.png, {empty}/img/01.png, {empty}/img/02.png, ... with --root "
                    f"{empty}: pass --root DIR, the directory the paths in "
                    f"{eval_dataset / 'val.txt'} are relative to")
    # nothing is kept, so the right --root starts afresh
    assert not results.exists() and not (tmp_path / "r.json.partial").exists()
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(results))) == 0
    # without --root, the current directory is tried, and said to be the default
    monkeypatch.chdir(empty)
    without_root = [arg for arg in args if arg != str(empty) and arg != "--root"]
    without_root[without_root.index("--results") + 1] = str(tmp_path / "default.json")
    assert cmd_eval.main(without_root) == 1
    assert (f"tried {empty}/img/00.png, {empty}/img/01.png, {empty}/img/02.png, ... with --root . "
            f"(the default: the current directory): pass --root DIR") in capsys.readouterr().err


def test_missing_images_are_listed_with_the_path_tried(eval_dataset, tmp_path, capsys):
    val = tmp_path / "val.txt"
    evalkit.write_val(val, [("img/00.png", 0), ("img/01.png", 1), *((f"gone/{n}.png", 0) for n in range(3))])
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "0")
    args[args.index("--val") + 1] = str(val)
    assert cmd_eval.main(args) == 0
    out = capsys.readouterr().out
    assert f"  skipped gone/0.png: missing ({eval_dataset}/gone/0.png)" in out
    assert (f"  most images are missing under {eval_dataset}: is --root the directory the paths in "
            f"val.txt are relative to?") in out
def test_images_over_a_limit_or_not_regular_files_are_skipped_unread_naming_why(eval_dataset,
                                                                              tmp_path):
    """Found by fault injection: a FIFO hung eval, /dev/zero ended it in a MemoryError, a 6 GB
    file was read whole and a 1 MB PNG of 20000 x 20000 pixels decoded to 1.2 GB. The limits are
    set low here so that small images hit them."""
    root = tmp_path / "images"
    colour = evalkit.image_colour(4)
    for name, (width, height) in {"fits.png": (40, 30), "wide.png": (60, 30), "wide.jpg": (60, 30),
                                  "wide.bmp": (60, 30), "wide.webp": (60, 30)}.items():
        evalkit.write_image(root / name, colour, width, height)
    png = bytearray((root / "fits.png").read_bytes())
    (root / "big.png").write_bytes(png + bytes(10_000))
    # a header declaring 20000 x 20000 pixels is refused before the decoder sees the file
    png[16:24] = (20000).to_bytes(4, "big") * 2
    (root / "huge.png").write_bytes(bytes(png))
    os.mkfifo(root / "fifo.png")
    os.symlink("/dev/zero", root / "zero.png")
    with open(root / "sparse.png", "wb") as handle:
        handle.truncate(6 * 1024 ** 3)
    expected = {
        "fits.png": None,
        "wide.png": "too many pixels: 60x30, over the limit of 1,500 (--max-pixels)",
        "wide.jpg": "too many pixels: 60x30, over the limit of 1,500 (--max-pixels)",
        "huge.png": "too many pixels: 20000x20000, over the limit of 1,500 (--max-pixels)",
        # formats whose header archc does not read: OpenCV's own limit, set to the same value
        "wide.bmp": "too many pixels: over the limit of 1,500 (--max-pixels)",
        "wide.webp": "too many pixels: over the limit of 1,500 (--max-pixels)",
        "big.png": f"too large: {len(png) + 10_000:,} bytes, over the limit of 8,000 "
                   f"(--max-image-bytes)",
        "sparse.png": "too large: 6,442,450,944 bytes, over the limit of 8,000 (--max-image-bytes)",
        "fifo.png": "a FIFO, not a regular file",
        "zero.png": "a character device, not a regular file",
    }
    val = tmp_path / "val.txt"
    evalkit.write_val(val, [(name, 4) for name in expected])
    documents = []
    for workers in ("0", "1"):
        results = tmp_path / f"r{workers}.json"
        args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", workers,
                                 "--max-pixels", "1500", "--max-image-bytes", "8000")
        args[args.index("--val") + 1], args[args.index("--root") + 1] = str(val), str(root)
        with deadline(10):
            assert cmd_eval.main(args) == 0
        documents.append(results.read_bytes())
        document = json.loads(documents[-1])
        assert {record["image"]: record["skipped"] for record in document["skipped"]} == {
            name: why for name, why in expected.items() if why}
        assert [record["image"] for record in document["images"]] == ["fits.png"]
        assert (document["settings"]["max_pixels"], document["settings"]["max_image_bytes"]) == (
            1500, 8000)
    # where images load does not change what is skipped
    assert documents[0] == documents[1]


def test_image_limits_are_settings_a_resumed_run_must_share(eval_dataset, tmp_path, capsys):
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")
    assert cmd_eval.main(args) == 0
    assert json.loads(results.read_text())["settings"]["max_pixels"] == 50_000_000
    fails_with(capsys, [*args, "--max-pixels", "60000000"],
               "max_pixels 50000000 there, 60000000 now; --max-pixels sets it")
    # a results file from before the limits: they were none
    document = json.loads(results.read_text())
    del document["settings"]["max_pixels"], document["settings"]["max_image_bytes"]
    results.write_text(json.dumps(document))
    fails_with(capsys, args, "max_image_bytes null there, 268435456 now; --max-image-bytes sets it "
                             "(none: no limit, as before there was one)")
    assert cmd_eval.main([*args, "--max-pixels", "none", "--max-image-bytes", "none"]) == 0
    assert "already complete" in capsys.readouterr().err


# --- command-line mistakes ---------------------------------------------------------------------

@pytest.mark.parametrize("change, fragment", [
    (["--mean", "1,2"], "argument --mean: expected 3 values"),
    (["--crops", "5"], "argument --crops: invalid choice: 5"),
    (["--batch", "0"], "argument --batch: expected a positive integer"),
    (["--topk", "1,x"], "argument --topk: expected comma-separated integers"),
    (["--topk", "11"], "--topk 11 exceeds the model's 10 classes"),
    (["--blob", "nope"], "the net has no blob 'nope'"),
    (["--crop-size", "24"], "--base-size 20 is smaller than the crop size 24"),
    (["--backend", "opencv", "--gpu", "0"], "--gpu needs --backend caffe"),
    (["--depth", "50"], "--depth: parameters apply only to .arch files, and "),
    (["--synset", "missing.txt"], "cannot read synset list"),
    (["--root", "/nonexistent"], "--root /nonexistent is not a directory"),
    (["--std", "57,0,58"], "argument --std: a std divides the pixels: expected non-zero numbers"),
    (["--mean", "nan"], "argument --mean: expected finite numbers"),
    (["--max-pixels", "0"], "argument --max-pixels: expected a positive integer, got 0"),
    (["--max-image-bytes", "lots"], "argument --max-image-bytes: expected an integer, got 'lots'"),
    (["--keep-batchnorm"], "--keep-batchnorm applies to --backend caffe; the opencv backend runs "
                           "BatchNorm its own way: drop --keep-batchnorm"),
])
def test_user_errors_are_one_line(eval_dataset, tmp_path, capsys, change, fragment):
    fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), *change),
               fragment)


def test_missing_files_are_one_line_errors(eval_dataset, tmp_path, capsys):
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"))
    for option, fragment in (("--val", "cannot read val list"), ("--weights", "cannot read")):
        changed = list(args)
        changed[changed.index(option) + 1] = str(tmp_path / "absent")
        fails_with(capsys, changed, fragment)
    fails_with(capsys, [str(tmp_path / "absent.prototxt")] + args[1:], "cannot read")


# --- results file: lock, resumption, failing output locations ----------------------------------

def test_a_second_eval_on_the_same_results_file_is_refused(eval_dataset, tmp_path, capsys):
    results = tmp_path / "r.json"
    lock = Lock(tmp_path / "r.json.lock", results)
    try:
        fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(results)),
                   f"in use by another archc eval (pid {os.getpid()})")
    finally:
        lock.release()
    assert not results.exists()


def test_resuming_with_other_settings_is_refused(eval_dataset, tmp_path, capsys):
    results = tmp_path / "r.json"
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")) == 0
    before = results.read_bytes()
    fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(results), "--crop-size", "20"),
               "crop_size 16 there, 20 now")
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(results))) == 0
    assert "already complete" in capsys.readouterr().err
    assert results.read_bytes() == before


def test_an_unwritable_results_location_fails_before_any_work(eval_dataset, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "file" / "r.json")),
               "cannot create")


@pytest.fixture(scope="module")
def uninterrupted(eval_dataset, tmp_path_factory):
    results = tmp_path_factory.mktemp("reference") / "r.json"
    assert cmd_eval.main(evalkit.eval_args(eval_dataset, "--results", str(results), "--batch", "2",
                                           "--workers", "0")) == 0
    return results.read_bytes()


def test_a_full_disk_mid_run_keeps_what_was_computed(eval_dataset, tmp_path, capsys, monkeypatch,
                                                     uninterrupted):
    results = tmp_path / "r.json"
    real_fsync, calls = os.fsync, []

    def fsync_until_full(descriptor):
        calls.append(descriptor)
        if len(calls) > 3:  # the header and two groups fit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(results_module.os, "fsync", fsync_until_full)
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--batch", "2", "--workers", "0")
    fails_with(capsys, args, "No space left on device; the 4 images finished before are kept")
    monkeypatch.setattr(results_module.os, "fsync", real_fsync)
    kept = (tmp_path / "r.json.partial").read_text().splitlines()
    assert len(kept) >= 3  # header + the two groups written before the failure
    assert cmd_eval.main(args) == 0
    assert results.read_bytes() == uninterrupted
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_a_failing_final_write_keeps_every_result(eval_dataset, tmp_path, capsys, monkeypatch,
                                                  uninterrupted):
    results = tmp_path / "r.json"

    def read_only(source, target):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(results_module.os, "replace", read_only)
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--batch", "2", "--workers", "0")
    fails_with(capsys, args, "Read-only file system; every image's result is kept in")
    monkeypatch.undo()
    assert len((tmp_path / "r.json.partial").read_text().splitlines()) == 1 + 6
    assert cmd_eval.main(args) == 0
    assert results.read_bytes() == uninterrupted


def test_a_full_disk_while_the_lock_is_written_is_a_message(eval_dataset, tmp_path, capsys,
                                                            monkeypatch):
    # found by fault injection (a full tmpfs): an internal error
    def disk_full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results_module.os, "pwrite", disk_full)
    fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json")),
               f"cannot write {tmp_path / 'r.json.lock'}: No space left on device: make room there "
               f"or choose another --results")
    assert os.listdir(tmp_path) == []


def _journal(document: dict, groups: list[dict | list], header: object = None) -> bytes:
    """A journal holding `groups` (lines after the header) of a run of `document`'s settings."""
    header = {"format": document["format"], "settings": document["settings"]} if header is None \
        else header
    return "".join(json.dumps(line) + "\n" for line in [header, *groups]).encode()


def _records(document: dict) -> list[dict]:
    return sorted(document["images"] + document["skipped"], key=lambda record: record["index"])


# Journals of a --batch 2 run (groups of two images) damaged as fault injection damaged them, and
# more of each kind; every one is refused, naming the file and the line, before any work.
DAMAGED_JOURNALS = {
    "invalid UTF-8": (lambda d: _journal(d, []) + b'{"group": 0, "records": ["\xff"]}\n',
                      "'utf-8' codec can't decode byte 0xff"),
    "settings a string": (lambda d: _journal(d, [{"group": 0, "records": _records(d)[:2]}],
                                             {"format": d["format"], "settings": "x"}),
                          "journal.json.partial holds no settings"),
    "settings a list": (lambda d: _journal(d, [{"group": 0, "records": _records(d)[:2]}],
                                           {"format": d["format"], "settings": [1]}),
                        "journal.json.partial holds no settings"),
    "a setting of another type": (
        lambda d: _journal(d, [{"group": 0, "records": _records(d)[:2]}],
                           {"format": d["format"], "settings": {**d["settings"], "model": 5}}),
        "holds a setting this archc does not write (model 5, not a string)"),
    "a header with more": (lambda d: _journal(d, [], {"format": d["format"], "settings": {},
                                                      "x": 1}), "line 1 is no archc eval header"),
    "a record missing keys": (lambda d: _journal(d, [{"group": 0, "records": [{"index": 0},
                                                                               _records(d)[1]]}]),
                              "line 2: a record with the keys index, not an image's"),
    "a record not an object": (lambda d: _journal(d, [{"group": 0, "records": [5, _records(d)[1]]}]),
                               "line 2: a record that is not an object: 5"),
    "a group number a string": (lambda d: _journal(d, [{"group": "0", "records": _records(d)[:2]}]),
                                "line 2: not a group's line"),
    "a group number true": (lambda d: _journal(d, [{"group": True, "records": _records(d)[2:4]}]),
                            "line 2: not a group's line"),
    "a line not an object": (lambda d: _journal(d, [[1, 2]]), "line 2: not a group's line"),
    "a line nested too deep": (lambda d: _journal(d, []) + b"[" * 100_000 + b"\n",
                               "journal.json.partial is not an intact archc eval journal"),
    # found by fault injection: exit 0 with 14 images counted for a 12-line list
    "a group outside the list": (
        lambda d: _journal(d, [{"group": 6, "records": _records(d)[:2]}]),
        "line 2: group 6, but the val list makes 6 groups"),
    "a group twice": (lambda d: _journal(d, [{"group": 1, "records": _records(d)[2:4]}] * 2),
                      "line 3: group 1 a second time"),
    "a group of another list": (lambda d: _journal(d, [{"group": 1, "records": _records(d)[:2]}]),
                                "line 2: the record for \"img/00.png\" (index 0) where the val "
                                "list has 'img/02.png' (index 2)"),
    "a group short of records": (lambda d: _journal(d, [{"group": 0, "records": _records(d)[:1]}]),
                                 "line 2: 1 records for group 0, which has 2 images"),
    "a label the list does not give": (
        lambda d: _journal(d, [{"group": 0, "records": [{**_records(d)[0], "label": 7},
                                                        _records(d)[1]]}]),
        "line 2: the label 7 for 'img/00.png', which the val list labels 0"),
    "scores that are no numbers": (
        lambda d: _journal(d, [{"group": 0, "records": [{**_records(d)[0], "scores": ["x"] * 5},
                                                        _records(d)[1]]}]),
        "line 2: the record for 'img/00.png' holds no 5 finite scores"),
}


@pytest.mark.parametrize("damage", DAMAGED_JOURNALS)
def test_a_damaged_journal_is_refused_naming_it_and_the_fix(eval_dataset, tmp_path, capsys,
                                                           uninterrupted, damage):
    make, fragment = DAMAGED_JOURNALS[damage]
    results = tmp_path / "journal.json"
    (tmp_path / "journal.json.partial").write_bytes(make(json.loads(uninterrupted)))
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--batch", "2", "--workers", "0")
    last = fails_with(capsys, args, fragment)
    assert last.endswith(": remove it or choose another --results")
    assert not results.exists()


# Complete results files damaged the same ways: refused, never reported as they stand.
DAMAGED_RESULTS = {
    "invalid UTF-8": (lambda d: json.dumps(d).encode()[:-1] + b'"\xff"}',
                      "exists and is not an intact archc results file ('utf-8' codec can't decode"),
    "settings a string": (lambda d: {**d, "settings": "x"}, "r.json holds no settings"),
    "settings a list": (lambda d: {**d, "settings": [1]}, "r.json holds no settings"),
    "no settings": (lambda d: {k: v for k, v in d.items() if k != "settings"},
                    "r.json holds no settings"),
    "a setting of another type": (lambda d: {**d, "settings": {**d["settings"], "crops": "1"}},
                                  "holds a setting this archc does not write (crops \"1\", not an "
                                  "integer)"),
    "no counts": (lambda d: {k: v for k, v in d.items() if k != "counts"},
                  "its counts and accuracies are not those of its records"),
    "counts that do not add up": (lambda d: {**d, "counts": {**d["counts"], "images": 13}},
                                  "its counts and accuracies are not those of its records"),
    "a record not an object": (lambda d: {**d, "skipped": [5]},
                               "a record for no image of the val list, or a second one: 5"),
    "a record twice": (lambda d: {**d, "skipped": d["images"][:1]},
                       "a record for no image of the val list, or a second one"),
    "a record missing": (lambda d: {**d, "images": d["images"][1:]}, "11 records for 12 images"),
    "images not a list": (lambda d: {**d, "images": {}}, "no list of images"),
    "a record of another image": (
        lambda d: {**d, "images": [{**d["images"][0], "image": "x.png"}, *d["images"][1:]]},
        "the record for \"x.png\" (index 0) where the val list has 'img/00.png' (index 0)"),
}


@pytest.mark.parametrize("damage", DAMAGED_RESULTS)
def test_a_damaged_results_file_is_refused_naming_it_and_the_fix(eval_dataset, tmp_path, capsys,
                                                                uninterrupted, damage):
    make, fragment = DAMAGED_RESULTS[damage]
    results = tmp_path / "r.json"
    damaged = make(json.loads(uninterrupted))
    results.write_bytes(damaged if isinstance(damaged, bytes) else json.dumps(damaged).encode())
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--batch", "2", "--workers", "0")
    last = fails_with(capsys, args, fragment)
    assert last.endswith(": remove it or choose another --results")


def test_a_complete_results_file_read_back_is_reported_as_it_was(eval_dataset, tmp_path, capsys,
                                                                 uninterrupted):
    results = tmp_path / "r.json"
    results.write_bytes(uninterrupted)
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--batch", "2", "--workers", "0")
    assert cmd_eval.main(args) == 0
    assert "top1   50.00%  (6/12)" in capsys.readouterr().out
    assert results.read_bytes() == uninterrupted


# --- presets and devices -------------------------------------------------------------------------

@pytest.mark.parametrize("name, preset", [
    ("deploy_inception-v3.prototxt", "inception-v3"), ("deploy_inception-resnet-v2.prototxt", "inception"),
    ("deploy_resnext50-32x4d.prototxt", "resnext"), ("deploy_wrn50-2.prototxt", "wrn"),
    ("deploy_resnet101-v2.prototxt", "resnet-v2"), ("deploy_densenet121.prototxt", None),
    ("resnet_v2.arch", "resnet-v2"), ("inception_resnet_v2.arch", "inception"),
    ("wide_resnet50_2.prototxt", "wrn"), ("resnet_v1.arch", None),
    ("resnet-152-v2.prototxt", "resnet-v2"), ("deploy_resnet-101-v2.prototxt", "resnet-v2"),
    # other families that merely share a word with one of the seed's
    ("mobilenet_v2.prototxt", None), ("wide_densenet.arch", None), ("shufflenet_v2.arch", None),
])
def test_presets_follow_the_model_file_name(name, preset):
    assert preset_for_model(name) == preset


def test_seed_values_per_family():
    assert PRESETS["resnet-v2"].mean == (102.9801, 115.9465, 122.7717)
    assert PRESETS["inception"].std == (128.0, 128.0, 128.0)
    assert PRESETS["resnext"].std == (57.375, 57.12, 58.395)
    assert [PRESETS["resnext"].base_for(size) for size in (224, 320, 288)] == [256, 320, 288]
    assert [PRESETS["inception"].base_for(size) for size in (299, 395)] == [320, 395]


def test_a_model_without_preset_needs_mean_and_std(eval_dataset, tmp_path, capsys):
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"))
    del args[args.index("--mean"):args.index("--mean") + 2]
    fails_with(capsys, args, "no preset for tiny.prototxt: pass --preset")


def test_mean_and_std_without_a_preset_take_nothing_from_one(eval_dataset, tmp_path, capsys):
    # tiny.prototxt names no family: its preprocessing is --mean and --std alone, and the base
    # size follows the crop size rather than a preset's pairing (224 from 256)
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")
    del args[args.index("--base-size"):args.index("--base-size") + 2]
    args[args.index("--crop-size") + 1] = "224"
    assert cmd_eval.main(args) == 0
    settings = json.loads(results.read_text())["settings"]
    assert (settings["preset"], settings["crop_size"], settings["base_size"]) == (None, 224, 224)
    assert "preset" not in capsys.readouterr().err
    # nor a crop size, where the net declares none
    wide = tmp_path / "wide.prototxt"
    wide.write_text((eval_dataset / "tiny.prototxt").read_text()
                    .replace("dim: 16 dim: 16", "dim: 16 dim: 20"))
    del args[args.index("--crop-size"):args.index("--crop-size") + 2]
    fails_with(capsys, [str(wide), *args[1:]],
               f"{wide} declares no square input and no preset names a crop size: pass --crop-size")


def test_a_net_of_fewer_than_5_classes_reports_the_accuracies_it_has(eval_dataset, tmp_path):
    model = tmp_path / "two.prototxt"
    model.write_text((eval_dataset / "tiny.prototxt").read_text()
                     .replace(f"num_output: {evalkit.CLASSES}", "num_output: 2"))
    weights_path = tmp_path / "two.caffemodel"  # class 0 always wins
    write_caffemodel(weights_path, [("fc", "InnerProduct", [np.zeros((2, 3), np.float32),
                                                            np.array([1, 0], np.float32)])])
    val = tmp_path / "val.txt"
    evalkit.write_val(val, [("img/00.png", 0), ("img/01.png", 0), ("img/02.png", 1)])
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")
    args[0] = str(model)
    args[args.index("--weights") + 1], args[args.index("--val") + 1] = str(weights_path), str(val)
    assert cmd_eval.main(args) == 0
    document = json.loads(results.read_text())
    assert document["settings"]["topk"] == [1] and document["correct"] == {"top1": 2}


def test_the_inception_v3_preset_remaps_2012_labels(eval_dataset, tmp_path, capsys, reference_cls,
                                                    monkeypatch):
    monkeypatch.setenv("ARCHC_REFERENCE_DIR", str(reference_cls.parent))
    fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"),
                                         "--preset", "inception-v3"),
               "the synset remap has 1000 classes but the model outputs 10")


def test_gpu_on_a_cpu_only_caffe_is_a_clear_error(caffe, eval_dataset, tmp_path, capsys):
    from archc.runtime.caffe_env import caffe_info
    if caffe_info().gpu:
        pytest.skip("this Caffe has GPU support")
    fails_with(capsys, evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"),
                                         "--gpu", "0", backend="caffe"),
               "--gpu 0: the Caffe at")


def test_a_crop_size_the_net_cannot_take_is_refused_before_caffe_sees_it(eval_dataset, tmp_path,
                                                                         capsys):
    fixed = tmp_path / "fixed.prototxt"
    fixed.write_text((eval_dataset / "tiny.prototxt").read_text()
                     .replace("global_pooling: true", "kernel_size: 16"))
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--crop-size", "20")
    fails_with(capsys, [str(fixed)] + args[1:],
               "the net cannot take 20x20 input: layer 'fc' would need weights 10 x 75, 10 instead of "
               "10 x 3, 10")


def test_images_smaller_than_the_crop_are_resized_up_as_the_seed_does(eval_dataset, tmp_path):
    # the dataset's images are 40 x 30: a 64 crop from a 72 base means enlarging every one
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")
    args[args.index("--crop-size") + 1], args[args.index("--base-size") + 1] = "64", "72"
    assert cmd_eval.main(args) == 0
    document = json.loads(results.read_text())
    lines = (eval_dataset / "val.txt").read_text().splitlines()
    assert document["skipped"] == [] and len(document["images"]) == len(lines)


def test_scores_that_are_not_numbers_stop_the_run(eval_dataset, tmp_path, capsys):
    weights_path = tmp_path / "nan.caffemodel"
    fc = [np.full((evalkit.CLASSES, 3), np.nan, np.float32), np.zeros(evalkit.CLASSES, np.float32)]
    write_caffemodel(weights_path, [("fc", "InnerProduct", fc)])
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "0")
    args[args.index("--weights") + 1] = str(weights_path)
    fails_with(capsys, args, "are not all finite (NaN or infinity): check the weights")


def test_a_run_that_failed_to_start_does_not_block_the_corrected_command(eval_dataset, tmp_path,
                                                                         capsys):
    wrong = tmp_path / "wrong.caffemodel"
    write_caffemodel(wrong, [("fc_renamed", "InnerProduct", [np.zeros((evalkit.CLASSES, 3), np.float32),
                                                             np.zeros(evalkit.CLASSES, np.float32)])])
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "0")
    right = args[args.index("--weights") + 1]
    args[args.index("--weights") + 1] = str(wrong)
    assert cmd_eval.main(args) == 2
    assert "wrong.caffemodel does not fit the net" in capsys.readouterr().err
    args[args.index("--weights") + 1] = right
    assert cmd_eval.main(args) == 0


def test_shape_errors_keep_their_place_in_the_prototxt(eval_dataset, tmp_path, capsys):
    text = (eval_dataset / "tiny.prototxt").read_text().replace('global_pooling: true',
                                                                'kernel_size: 64')
    model = tmp_path / "tiny.prototxt"
    model.write_text(text)
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"))
    assert cmd_eval.main([str(model), *args[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{model}:4:1: error: Pooling layer 'pool'") and "Traceback" not in err


def test_allow_missing_says_which_layers_run_on_fillers(caffe, eval_dataset, tmp_path, capsys):
    renamed = tmp_path / "renamed.caffemodel"
    write_caffemodel(renamed, [("fc_renamed", "InnerProduct",
                                [np.zeros((evalkit.CLASSES, 3), np.float32),
                                 np.zeros(evalkit.CLASSES, np.float32)])])
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0",
                             "--allow-missing", backend="caffe")
    args[args.index("--weights") + 1] = str(renamed)
    assert cmd_eval.main(args) == 0
    assert ("archc: warning: 1 layer(s) have no weights and run on their random fillers: fc"
            in capsys.readouterr().err)
    assert json.loads(results.read_text())["settings"]["layers_without_weights"] == ["fc"]
    # OpenCV cannot run a layer without weights: said before the run, not inside a forward pass
    args[args.index("--backend") + 1] = "opencv"
    args[args.index("--results") + 1] = str(tmp_path / "opencv.json")
    fails_with(capsys, args, "the OpenCV backend cannot run layers without weights (fc)")


def test_the_inception_v3_preset_remaps_only_a_val_list_not_already_in_2015_order(
        reference_cls, monkeypatch, capsys):
    monkeypatch.setenv("ARCHC_REFERENCE_DIR", str(reference_cls.parent))
    preset = PRESETS["inception-v3"]
    published = {order: parse_val_list((reference_cls / f"ILSVRC{order}_val.txt").read_text())[:40]
                 for order in ("2012", "2015")}
    # the seed's README evaluates Inception-v3 with ILSVRC2015_val.txt: no remap, not a double one
    assert val_list_order([(line.path, line.label) for line in published["2015"]]) == "2015"
    assert cmd_eval.preset_remap(preset, published["2015"], "ILSVRC2015_val.txt") is None
    assert cmd_eval.preset_remap(preset, published["2012"], "ILSVRC2012_val.txt") == ("2012", "2015")
    assert capsys.readouterr().err == ""
    # images the published lists do not hold: the preset's assumption, said out loud
    own = parse_val_list("my/cat.jpg 3\nmy/dog.jpg 5\n")
    assert cmd_eval.preset_remap(preset, own, "mine.txt") == ("2012", "2015")
    assert "taking mine.txt's labels to be in ILSVRC2012 order" in capsys.readouterr().err


def test_an_arch_model_is_evaluated_at_the_size_it_was_compiled_for(eval_dataset, tmp_path):
    arch = tmp_path / "tiny.arch"
    arch.write_text('param size: int = 16\n'
                    'net {\n  input "data" [1, 3, size, size]\n  conv(4, 3) as "c"\n'
                    '  avepool(global = true) as "pool"\n  fc(10) as "fc"\n  softmax as "prob"\n}\n')
    net = load_model(arch, {"size": "24"}).net
    weights_path = tmp_path / "tiny.caffemodel"
    write_caffemodel(weights_path, initial_weights(infer_shapes(net)))
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0")
    for option in ("--crop-size", "--base-size"):
        del args[args.index(option):args.index(option) + 2]
    args[0], args[args.index("--weights") + 1] = str(arch), str(weights_path)
    assert cmd_eval.main([args[0], "--size", "24", *args[1:]]) == 0
    settings = json.loads(results.read_text())["settings"]
    assert (settings["crop_size"], settings["base_size"]) == (24, 24)


def test_a_run_from_before_folding_resumes_with_keep_batchnorm(caffe, eval_dataset, tmp_path, capsys):
    # results files written before these settings existed ran BatchNorm as written and allowed
    # no missing weights
    results = tmp_path / "r.json"
    args = evalkit.eval_args(eval_dataset, "--results", str(results), "--workers", "0",
                             "--nets", "1", backend="caffe")
    assert cmd_eval.main([*args, "--keep-batchnorm"]) == 0
    document = json.loads(results.read_text())
    for key in ("fold_batchnorm", "layers_without_weights"):
        del document["settings"][key]
    results.write_text(json.dumps(document))
    capsys.readouterr()
    assert cmd_eval.main(args) == 2
    assert ("fold_batchnorm false there, true now; --keep-batchnorm runs BatchNorm as written"
            in capsys.readouterr().err)
    assert cmd_eval.main([*args, "--keep-batchnorm"]) == 0
    assert "already complete for these settings" in capsys.readouterr().err
