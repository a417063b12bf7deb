"""Fuzzing what `archc eval` reads besides the model: val lists, journals and results files.

Shared by `tests/test_fuzz_eval_files.py` (a bounded run) and `bench/fuzz_soak.py` (the long run).
Each case is the tiny net and dataset of `evalkit` with one file mutated: the val list (lines with
extra or missing fields, labels out of range, NUL bytes, a byte-order mark, bytes that are not
UTF-8, paths climbing out of the root or naming a FIFO or /dev/zero), or the journal or the
results file of an earlier run of the same command (values swapped for values of other types,
keys dropped or added, lines duplicated or cut, group numbers and records moved, bytes flipped).

The property (`run_case`): `archc eval` (OpenCV, images loaded in-process) exits 0, with a
results file whose every record is the val list's image at its place and whose counts add up
to the list, or 2 with its last line one `archc: error:`; never an internal error or a
traceback, never a hang.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import evalkit
from archc.runtime.eval.vallist import parse_val_list
from archfuzz import Case, Outcome, call_cli

BATCH = "2"   # groups of two images: a journal of several lines


class Dataset:
    """The tiny net, its images (and a FIFO and a link to /dev/zero among them), the pristine
    val list, and the journal and results file an uninterrupted run writes."""

    def __init__(self, directory: Path):
        self.directory = directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        evalkit.write_tiny_net(directory)
        self.val = evalkit.write_dataset(directory).read_text()
        os.mkfifo(directory / "img" / "fifo.png")
        os.symlink("/dev/zero", directory / "img" / "zero.png")
        self.work = directory / "work"
        self.work.mkdir()
        (self.work / "val.txt").write_text(self.val)
        code, _, stderr, problem = call_cli(self.argv(), 60)
        assert code == 0 and problem is None, stderr
        self.results = self.results_path().read_bytes()
        document = json.loads(self.results)
        records = sorted(document["images"] + document["skipped"], key=lambda r: r["index"])
        size = int(BATCH)
        lines = [{"format": document["format"], "settings": document["settings"]}] + [
            {"group": start // size, "records": records[start:start + size]}
            for start in range(0, len(records) - size, size)]   # the last group not yet done
        self.journal = "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines).encode()
        self.results_path().unlink()

    def results_path(self) -> Path:
        return self.work / "r.json"

    def argv(self) -> list[str]:
        args = evalkit.eval_args(self.directory, "--results", str(self.results_path()),
                                 "--batch", BATCH, "--workers", "0")
        args[args.index("--val") + 1] = str(self.work / "val.txt")
        return ["eval", *args]


# ----- mutations ---------------------------------------------------------------------------------

VAL_LINES = ["img/00.png 0 1", "img/00.png", "img/00.png -1", "img/00.png 10", "img/00.png 1e3",
             "img/\x0000.png 0", "../img/00.png 0", "/img/00.png 0", "img/fifo.png 3",
             "img/zero.png 3", "img/ 3", ". 3", "img/00.png 99999999999999999999999",
             "# img/00.png 0", "", "img/00.png\t\t0", "img/00.png 0\r", "\ufeffimg/00.png 0",
             "img/00.png ٣", "x" * 5000 + " 0", "img/missing.png 0", "img/00.png 0 # note"]
JSON_VALUES = [None, True, False, 0, -1, 1.5, 2 ** 64, "", "x", "img/00.png", [], [1], {}, {"a": 1},
               float("inf"), float("nan"), [[[]]], "\u2028", "\udcff"]


def mutate_val(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(lines) + 1)
        move = rng.randrange(4)
        if move == 0:
            lines.insert(at, rng.choice(VAL_LINES))
        elif move == 1 and lines:
            lines[min(at, len(lines) - 1)] = rng.choice(VAL_LINES)
        elif move == 2 and lines:
            del lines[min(at, len(lines) - 1)]
        else:
            lines.insert(at, rng.choice(lines or VAL_LINES))
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + rng.choice([b"\n", b"", b"\r\n"])
    if rng.random() < 0.1:
        data = rng.choice([b"\xef\xbb\xbf", b"\xff\xfe", b""]) + data
    return _byte_edit(data, rng) if rng.random() < 0.1 else data


def _mutate_json(value, rng: random.Random, depth: int = 0):
    """The value with one part replaced, dropped, added or duplicated, somewhere inside."""
    if isinstance(value, dict) and value and (depth > 3 or rng.random() < 0.3) or \
            not isinstance(value, (dict, list)) or not value:
        return _replace(value, rng)
    if isinstance(value, dict):
        key = rng.choice(sorted(value))
        return {**value, key: _mutate_json(value[key], rng, depth + 1)}
    index = rng.randrange(len(value))
    return [*value[:index], _mutate_json(value[index], rng, depth + 1), *value[index + 1:]]


def _replace(value, rng: random.Random):
    if isinstance(value, dict) and value and rng.random() < 0.5:
        key = rng.choice(sorted(value))
        return {k: v for k, v in value.items() if k != key} if rng.random() < 0.5 else \
            {**value, key + rng.choice(["", "x"]): rng.choice(JSON_VALUES)}
    if isinstance(value, list) and value and rng.random() < 0.5:
        return value + [rng.choice(value)] if rng.random() < 0.5 else value[1:]
    if isinstance(value, int) and not isinstance(value, bool) and rng.random() < 0.5:
        return value + rng.choice([-1, 1, 40, 10 ** 6])
    return rng.choice(JSON_VALUES)


def _dumps(value) -> bytes:
    return json.dumps(value, sort_keys=True).encode("utf-8", "surrogatepass")


def _byte_edit(data: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(data) + 1)
    return rng.choice([
        lambda: data[:at],
        lambda: data[:at] + rng.choice([b"\xff", b"\x00", b"\n", b"[" * 5000, b"}"]) + data[at:],
        lambda: data[:at] + data[at + 1:],
        lambda: data + data[:at],
    ])()


def mutate_journal(journal: bytes, rng: random.Random) -> bytes:
    lines = [json.loads(line) for line in journal.splitlines()]
    move = rng.randrange(6)
    if move < 3:
        index = rng.randrange(len(lines))
        lines[index] = _mutate_json(lines[index], rng)
    elif move == 3 and len(lines) > 1:
        lines.append(rng.choice(lines[1:]))
    elif move == 4 and len(lines) > 2:
        first, second = rng.sample(range(1, len(lines)), 2)
        lines[first]["group"], lines[second]["group"] = lines[second]["group"], lines[first]["group"]
    else:
        return _byte_edit(journal, rng)
    return b"".join(_dumps(line) + b"\n" for line in lines)


def mutate_results(results: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.2:
        return _byte_edit(results, rng)
    return _dumps(_mutate_json(json.loads(results), rng))


def random_case(rng: random.Random, dataset: Dataset) -> Case:
    """The val list, a journal or a results file mutated; the others as an honest run has them."""
    kind = rng.choice(["val", "journal", "results"])
    files: dict[str, bytes] = {"val.txt": dataset.val.encode()}
    if kind == "val":
        files["val.txt"] = mutate_val(dataset.val, rng)
    elif kind == "journal":
        files["r.json.partial"] = mutate_journal(dataset.journal, rng)
    else:
        files["r.json"] = mutate_results(dataset.results, rng)
    return Case(files, "tiny.prototxt", [], f"{kind} mutated")


# ----- the property ------------------------------------------------------------------------------

def run_case(case: Case, dataset: Dataset, deadline_s: float) -> Outcome:
    for leftover in dataset.work.iterdir():
        leftover.unlink()
    for name, content in case.files.items():
        (dataset.work / name).write_bytes(content)
    code, _, stderr, problem = call_cli(dataset.argv(), deadline_s)
    if problem:
        return Outcome(code, stderr, problem)
    last = (stderr.strip().splitlines() or [""])[-1]
    try:
        stderr.encode("utf-8")
    except UnicodeEncodeError:
        return Outcome(code, stderr, f"stderr that a UTF-8 terminal cannot take: {last[:300]!r}")
    if "Traceback" in stderr or "internal error" in stderr:
        return Outcome(code, stderr, f"exit {code}: {last[:300]}")
    if code == 2:
        return Outcome(code, stderr, None if last.startswith("archc: error: ") else
                       f"exit 2 without one error line: {last[:300]!r}")
    if code != 0:
        return Outcome(code, stderr, f"exit {code}: {last[:300]}")
    return Outcome(code, stderr, _results_problem(dataset, case.files["val.txt"]))


def _results_problem(dataset: Dataset, val: bytes) -> str | None:
    """None when the results file holds one record per val list line, in place, counted right."""
    lines = parse_val_list(val.decode("utf-8-sig"))
    try:
        document = json.loads(dataset.results_path().read_bytes())
        records = sorted(document["images"] + document["skipped"], key=lambda r: r["index"])
        places = [(record["index"], record["image"]) for record in records]
        counts = document["counts"]
        counted = (counts["images"], counts["evaluated"], counts["skipped"])
    except (KeyError, TypeError, ValueError) as error:
        return f"exit 0 with a results file archc does not write ({error!r})"
    if places != [(index, line.path) for index, line in enumerate(lines)]:
        return f"the results' records are not the val list's {len(lines)} images"
    if counted != (len(lines), len(document["images"]), len(document["skipped"])):
        return f"counts {counts} for {len(lines)} images"
    return None
