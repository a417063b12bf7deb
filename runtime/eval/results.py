"""The results file: locked, written incrementally, resumable, and identical however often the
run was interrupted.

While a run is going, progress lives in a journal next to the results file (`FILE.partial`): a
header line with the settings, then one JSON line per finished group of images, appended and
fsync'ed. A kill can only leave a last line without its newline, which resuming drops. When every
group is done the final JSON document is written to a temporary file and renamed over `FILE`, then
the journal is removed. Resuming checks that the settings match, so a resumed run computes exactly
what an uninterrupted one would. `FILE.lock` (flock, released by the kernel even on SIGKILL) keeps
two runs from writing the same file.
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from archc.files import write_atomically
from archc.runtime.eval.errors import EvalError
from archc.runtime.eval.settings import EvalSettings

FORMAT = "archc-eval/1"


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


def read_journal(partial: Path) -> tuple[dict | None, dict[int, list[dict]], int]:
    """(settings, groups, length of the intact part); a header cut short reads as no journal."""
    data = partial.read_bytes()
    intact = data[:data.rfind(b"\n") + 1]
    lines = intact.decode("utf-8").splitlines()
    if not lines:
        return None, {}, 0
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("no archc eval header")
        groups = {}
        for line in lines[1:]:
            entry = json.loads(line)
            groups[entry["group"]] = entry["records"]
    except (ValueError, KeyError, TypeError) as error:
        raise EvalError(f"{partial} is not an intact archc eval journal ({error}): remove it or "
                        f"choose another --results") from None
    return header["settings"], groups, len(intact)


def open_journal(results: Path, settings: EvalSettings) -> Journal | dict:
    """The finished document if `results` is already complete for these settings, else the journal
    to continue (created, or resumed after checking its settings)."""
    if results.exists():
        try:
            document = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EvalError(f"{results} exists and is not an archc results file ({error}): remove "
                            f"it or choose another --results") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise EvalError(f"{results} exists and is not an archc results file: remove it or "
                            f"choose another --results")
        _check_same(results, EvalSettings.from_json(document["settings"], results), settings)
        # a run killed between writing the document and removing its journal
        results.with_name(results.name + ".partial").unlink(missing_ok=True)
        return document
    journal = Journal(results, settings)
    try:
        if journal.partial.exists():
            old_settings, groups, intact = read_journal(journal.partial)
            # a journal of a run that finished nothing (it failed to start, say) holds nothing
            # to keep: a corrected command starts afresh over it
            if old_settings is not None and groups:
                resumed = EvalSettings.from_json(old_settings, journal.partial)
                _check_same(journal.partial, resumed, settings)
                os.truncate(journal.partial, intact)
                journal.settings, journal.groups = resumed, groups
                return journal
        with open(journal.partial, "w", encoding="utf-8") as handle:
            handle.write(dump_line({"format": FORMAT, "settings": settings.to_json()}))
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        raise EvalError(f"cannot write {journal.partial}: {_reason(error)}") from None
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
