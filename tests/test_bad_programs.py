"""Every diagnostic the compiler gives, from a wrong program in tests/bad/, through the real CLI.

Each `tests/bad/*.arch` starts with header comments:

    # expect: LINE:COL: a stable part of the message
    # args: --depth 34                 (optional: command-line parameters)
    # expect-file: lib/broken.arch     (optional: the error lies in this file, not the model)

and must end in exit status 2 with exactly one `FILE:LINE:COL: error:` line at that place, the
source line and a caret under the column, no traceback, and no output file.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from archc.cli import main as cli

BAD = Path(__file__).resolve().parent / "bad"
HEADER = re.compile(r"^# (expect|args|expect-file): (.*)$")
EXPECT = re.compile(r"^(\d+):(\d+): (.+)$")
DIAGNOSTIC = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): error: (?P<message>.*)$")


def _header(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_bytes().decode("utf-8", errors="replace").split("\n"):
        match = HEADER.match(line)
        if not match:
            break
        fields[match[1]] = match[2]
    return fields


CASES = sorted(BAD.glob("*.arch"))


def test_the_corpus_is_there():
    assert len(CASES) > 100


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_program(path: Path, tmp_path: Path, capsys):
    fields = _header(path)
    assert "expect" in fields, f"{path.name} has no `# expect: LINE:COL: message` header"
    line, column, message = EXPECT.match(fields["expect"]).groups()
    line, column = int(line), int(column)
    at = BAD / fields["expect-file"] if "expect-file" in fields else path
    out = tmp_path / "out.prototxt"

    code = cli.main([str(path), *fields.get("args", "").split(), "-o", str(out)])

    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr
    lines = stderr.splitlines()
    found = [(i, m) for i, m in enumerate(map(DIAGNOSTIC.match, lines)) if m]
    assert len(found) == 1, stderr
    index, diagnostic = found[0]
    assert Path(diagnostic["path"]).resolve() == at.resolve(), stderr
    assert (int(diagnostic["line"]), int(diagnostic["column"])) == (line, column), stderr
    assert message in diagnostic["message"], stderr
    source_line = at.read_bytes().decode("utf-8", errors="replace").split("\n")[line - 1]
    assert lines[index + 1] == "    " + source_line.rstrip("\r").expandtabs(1), stderr
    assert lines[index + 2].startswith("    " + " " * (column - 1) + "^"), stderr
    assert list(tmp_path.iterdir()) == [], "a failed compile left files behind"
