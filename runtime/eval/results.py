"""The results file: locked, written incrementally, resumable, and identical however often the
run was interrupted.

While a run is going, progress lives in a journal next to the results file (`FILE.partial`): a
header line with the settings, then one JSON line per finished group of images, appended and
fsync'ed. A kill can only leave a last line without its newline, which resuming drops. When every
group is done the final JSON document is written to a temporary file and renamed over `FILE`, then
the journal is removed. Resuming checks that the settings match, so a resumed run computes exactly
what an uninterrupted one would. Nothing read back is trusted: every setting is checked for its
type, every record against the val list entry it must be about, and a complete file's counts and
accuracies against its records, so a damaged file is a message naming it, never wrong counts.
`FILE.lock` (flock, released by the kernel even on SIGKILL) keeps two runs from writing the same
file.
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from archc.files import read_regular_file, write_atomically
from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.metrics import FORMAT, record_problem, results_document
from archc.runtime.eval.settings import EvalSettings, is_integer
from archc.runtime.eval.vallist import Entry


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def dump_line(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True) + "\n"


class Lock:
    """An exclusive, non-blocking flock on FILE.lock, holding the owner's pid for the message."""

    def __init__(self, path: Path, results: Path):
        while True:
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise EvalError(f"cannot create {path}: {_reason(error)}") from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(descriptor)
                raise EvalError(f"{results} is in use by another archc eval (pid {owner}); wait "
                                f"for it to finish or choose another --results") from None
            # A finishing run unlinks its lock file; if that happened between our open and flock,
            # we hold a lock nobody else sees: start again on the current file.
            try:
                if os.stat(path).st_ino == os.fstat(descriptor).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(descriptor)
        self.path, self.descriptor = path, descriptor
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        except OSError as error:  # a full disk, say
            self.release()
            raise EvalError(f"cannot write {path}: {_reason(error)}: make room there or choose "
                            f"another --results") from None

    def __enter__(self) -> "Lock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    def release(self) -> None:
        if self.descriptor is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass  # the lock is the flock, not the file: a leftover file is harmless
        os.close(self.descriptor)
        self.descriptor = None


@dataclass
class Journal:
    """The partial results of one run: settings plus the finished groups' records."""

    results: Path
    settings: EvalSettings
    groups: dict[int, list[dict]] = field(default_factory=dict)

    @property
    def partial(self) -> Path:
        return self.results.with_name(self.results.name + ".partial")

    def records(self) -> list[dict]:
        return [record for group in sorted(self.groups) for record in self.groups[group]]

    def append(self, group: int, records: list[dict]) -> None:
        line = dump_line({"group": group, "records": records})
        try:
            with open(self.partial, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise EvalError(f"cannot write {self.partial}: {_reason(error)}; the "
                            f"{sum(map(len, self.groups.values()))} images finished before are kept "
                            f"there: fix this and rerun the same command to resume") from None
        self.groups[group] = records

    def discard(self) -> None:
        """Drop the journal: its records are not worth resuming from."""
        self.partial.unlink(missing_ok=True)


def read_journal(partial: Path) -> tuple[object, list[tuple[int, object]], int]:
    """(the header's settings, the number and JSON value of each later line, the length of the
    intact part), their contents still to be checked; a header cut short reads as no journal."""
    try:
        data = read_regular_file(partial)
    except OSError as error:
        raise EvalError(f"cannot read {partial}: {_reason(error)}: remove it or choose another "
                        f"--results") from None
    intact = data[:data.rfind(b"\n") + 1]
    try:
        lines = intact.decode("utf-8").split("\n")[:-1]
        if not lines:
            return None, [], 0
        header = json.loads(lines[0])
        if not isinstance(header, dict) or set(header) != {"format", "settings"} \
                or header["format"] != FORMAT:
            raise ValueError("line 1 is no archc eval header")
        values = [(number, json.loads(line)) for number, line in enumerate(lines[1:], start=2)]
    except (ValueError, RecursionError) as error:  # JSON's errors, UTF-8's, nesting too deep
        raise _not_intact(partial, str(error)) from None
    return header["settings"], values, len(intact)


def _journal_groups(partial: Path, lines: list[tuple[int, object]], groups: list[list[Entry]],
                    max_k: int) -> dict[int, list[dict]]:
    """The finished groups a journal's lines record, each checked against the val list's group of
    that number: a record for another image, or a group the list does not make, means the
    journal was damaged or is another list's (its counts would be wrong)."""
    found: dict[int, list[dict]] = {}
    for number, line in lines:
        if not isinstance(line, dict) or set(line) != {"group", "records"} \
                or not is_integer(line["group"]) or not isinstance(line["records"], list):
            problem = "not a group's line"
        elif not 0 <= line["group"] < len(groups):
            problem = f"group {line['group']}, but the val list makes {len(groups)} groups"
        elif line["group"] in found:
            problem = f"group {line['group']} a second time"
        elif len(line["records"]) != len(groups[line["group"]]):
            problem = (f"{len(line['records'])} records for group {line['group']}, which has "
                       f"{len(groups[line['group']])} images")
        else:
            problem = next(filter(None, (record_problem(record, entry, max_k) for record, entry
                                         in zip(line["records"], groups[line["group"]]))), None)
        if problem:
            raise _not_intact(partial, f"line {number}: {problem}")
        found[line["group"]] = line["records"]
    return found


def _not_intact(partial: Path, problem: str) -> EvalError:
    return EvalError(f"{partial} is not an intact archc eval journal ({problem}): remove it or "
                     f"choose another --results")


def read_document(results: Path, settings: EvalSettings, groups: list[list[Entry]]) -> dict:
    """A complete results file for these settings and this list: its records checked against
    the list, and everything else (counts, accuracies) against what its records give."""
    try:
        document = json.loads(read_regular_file(results).decode("utf-8"))
    except OSError as error:
        raise EvalError(f"cannot read {results}: {_reason(error)}: remove it or choose another "
                        f"--results") from None
    except (ValueError, RecursionError) as error:  # JSON's errors, UTF-8's, nesting too deep
        raise _not_results(results, str(error)) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _not_results(results, f"no {FORMAT} document")
    stored = EvalSettings.from_json(document.get("settings"), results)
    _check_same(results, stored, settings)
    entries = [entry for group in groups for entry in group]
    by_index: dict[int, object] = {}
    for key in ("skipped", "images"):
        if not isinstance(document.get(key), list):
            raise _not_results(results, f"no list of {key}")
        for record in document[key]:
            index = record.get("index") if isinstance(record, dict) else None
            if not (is_integer(index) and 0 <= index < len(entries)) or index in by_index:
                raise _not_results(results, f"a record for no image of the val list, or a second "
                                            f"one: {json.dumps(record)[:80]}")
            by_index[index] = record
    problem = (f"{len(by_index)} records for {len(entries)} images" if len(by_index) < len(entries)
               else next(filter(None, (record_problem(by_index[entry.index], entry, max(settings.topk))
                                       for entry in entries)), None))
    if problem:
        raise _not_results(results, problem)
    if {**results_document(stored, list(by_index.values())), "settings": document["settings"]} \
            != document:
        raise _not_results(results, "its counts and accuracies are not those of its records")
    return document


def _not_results(results: Path, problem: str) -> EvalError:
    return EvalError(f"{results} exists and is not an intact archc results file ({problem}): "
                     f"remove it or choose another --results")


def open_journal(results: Path, settings: EvalSettings, groups: list[list[Entry]]) -> Journal | dict:
    """The finished document if `results` is already complete for these settings, else the journal
    to continue (created, or resumed after checking its settings and its groups, which must be
    the val list's `groups`)."""
    partial = results.with_name(results.name + ".partial")
    if results.exists():
        document = read_document(results, settings, groups)
        try:  # a run killed between writing the document and removing its journal
            partial.unlink(missing_ok=True)
        except OSError as error:
            raise EvalError(f"cannot remove {partial}: {_reason(error)}") from None
        return document
    journal = Journal(results, settings)
    if partial.exists():
        old_settings, lines, intact = read_journal(partial)
        # a journal of a run that finished nothing (it failed to start, say) holds nothing
        # to keep: a corrected command starts afresh over it
        if old_settings is not None and lines:
            resumed = EvalSettings.from_json(old_settings, partial)
            _check_same(partial, resumed, settings)
            journal.groups = _journal_groups(partial, lines, groups, max(settings.topk))
            journal.settings = resumed
            try:
                os.truncate(partial, intact)
            except OSError as error:
                raise EvalError(f"cannot write {partial}: {_reason(error)}") from None
            return journal
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            handle.write(dump_line({"format": FORMAT, "settings": settings.to_json()}))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise EvalError(f"cannot write {partial}: {_reason(error)}: make room there or choose "
                        f"another --results") from None
    return journal


def _check_same(where: Path, old: EvalSettings, new: EvalSettings) -> None:
    difference = old.difference(new)
    if difference:
        raise EvalError(f"{where} holds a run with other settings ({difference}): rerun with the "
                        f"same settings to resume it, or choose another --results")


def format_document(document: dict) -> str:
    """JSON with one top-level key per line and one list item (an image's record) per line:
    readable, diffable, and compact for 50,000 images."""
    parts = []
    for key in sorted(document):
        value = document[key]
        if isinstance(value, list) and value:
            items = ",\n".join("  " + json.dumps(item, sort_keys=True) for item in value)
            parts.append(f" {json.dumps(key)}: [\n{items}\n ]")
        else:
            parts.append(f" {json.dumps(key)}: {json.dumps(value, sort_keys=True)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def write_final(journal: Journal, document: dict) -> None:
    """Atomically replace FILE with the document, then drop the journal."""
    try:
        write_atomically(journal.results, format_document(document).encode("utf-8"))
    except OSError as error:
        raise EvalError(f"cannot write {journal.results}: {_reason(error)}; every image's result "
                        f"is kept in {journal.partial}: fix this and rerun the same command to "
                        f"write it") from None
    journal.partial.unlink(missing_ok=True)
