"""Compiler fuzzing: generated and mutated .arch inputs, and the property every input must satisfy.

Shared by `tests/test_fuzz_compiler.py` (a bounded run in the test suite) and `bench/fuzz_soak.py`
(the long run). Inputs come from three sources:

- `ProgramGenerator`: grammar-aware random programs that are likely to compile (it tracks the
  cursor's shape to pick fitting kernels, groups and merges), with garbage mixed in;
- `mutate`: the model library (`archs/`) with tokens deleted, duplicated, swapped or replaced
  by 0, negatives, huge values, unicode, very long names, deep nesting or huge repeats;
- hypothesis' `from_lark` over `dsl/grammar.lark` (in the test only).

The property (`check`): the CLI either writes a prototxt that parses with the Caffe schema and
whose shapes the IR infers, or exits 2 with exactly one `FILE:LINE:COL: error:` line whose
position lies inside that file; never a traceback or internal error, never a hang (a per-input
deadline), never an output file, partial or not, after a failure.
"""
from __future__ import annotations

import contextlib
import io
import random
import re
import shutil
import signal
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from archc.cli import main as cli
from archc.codegen.parse import import_net
from archc.codegen.schema import parse_prototxt
from archc.dsl.primitives import PLACEMENT_PARAMS, PRIMITIVES
from archc.ir import ArchError, infer_shapes
from archc.model import fork_types

REPO = Path(__file__).resolve().parent.parent
LIBRARY = REPO / "archs"
DIAGNOSTIC = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): error: ")
UNKNOWN_PARAMETER = re.compile(r"archc: error: --\w+ is not a parameter of [^\n]+; "
                               r"(did you mean --\w+\?|its parameters are [^\n]+)")


@dataclass
class Case:
    """One fuzz input: file contents (relative paths under the workspace), the model, CLI args."""

    files: dict[str, str | bytes]
    model: str
    args: list[str] = field(default_factory=list)
    origin: str = ""


class Hang(BaseException):
    """The per-input deadline passed (a BaseException so the CLI's catch-all cannot swallow it)."""


def _on_alarm(signum, frame):
    raise Hang()


# ----- running an input -------------------------------------------------------------------------

class Workspace:
    """A scratch copy of the model library where cases are written, restored between cases."""

    def __init__(self, root: Path):
        self.root = root
        self.pristine = {str(p.relative_to(LIBRARY)): p.read_text(encoding="utf-8")
                         for p in LIBRARY.rglob("*.arch")}
        shutil.rmtree(root, ignore_errors=True)
        for relative, text in self.pristine.items():
            self._write(relative, text)
        self.dirty: set[str] = set()
        self.out_dir = root / "out"
        self.out_dir.mkdir(exist_ok=True)

    def _write(self, relative: str, content: str | bytes) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            # surrogatepass: a lone surrogate from a generator becomes bytes that are not UTF-8
            path.write_bytes(content.encode("utf-8", "surrogatepass"))

    def load(self, case: Case) -> None:
        for relative in self.dirty - set(case.files):
            if relative in self.pristine:
                self._write(relative, self.pristine[relative])
            else:
                (self.root / relative).unlink(missing_ok=True)
        for relative, content in case.files.items():
            self._write(relative, content)
        self.dirty = set(case.files)
        for leftover in self.out_dir.iterdir():
            leftover.unlink()

    def text(self, relative: str) -> str:
        data = (self.root / relative).read_bytes()
        return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


@dataclass
class Outcome:
    code: int | None
    stderr: str
    problem: str | None  # None: the property holds


def call_cli(argv: list[str], deadline_s: float) -> tuple[int | None, str, str, str | None]:
    """`archc ARGV` in-process under a deadline: (exit status, stdout, stderr, what went wrong
    beyond the status: a hang or an exception escaping the CLI's handler)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with deadline(deadline_s), contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            return cli.main(argv), stdout.getvalue(), stderr.getvalue(), None
    except Hang:
        return None, stdout.getvalue(), stderr.getvalue(), f"no result within {deadline_s} s"
    except BaseException:  # noqa: BLE001 - anything escaping main() is the bug we look for
        return None, stdout.getvalue(), stderr.getvalue(), ("exception escaped: "
                                                            + traceback.format_exc())


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise Hang in this (main) thread once `seconds` have passed."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(case: Case, workspace: Workspace, deadline_s: float) -> Outcome:
    """Compile `case` in-process through the CLI entry point and check the property."""
    workspace.load(case)
    out = workspace.out_dir / "out.prototxt"
    code, _, stderr, problem = call_cli([str(workspace.root / case.model), *case.args, "-o", str(out)],
                                        deadline_s)
    if problem:
        return Outcome(None, stderr, problem)
    dialect = "round_mode" if "round_mode" in case.args else "ceil_mode"
    return Outcome(code, stderr, _problem(code, stderr, out, workspace, dialect))


def _problem(code: int, stderr: str, out: Path, workspace: Workspace, dialect: str) -> str | None:
    if "Traceback" in stderr or "internal error" in stderr:
        return "crashed"
    leftovers = sorted(p.name for p in workspace.out_dir.iterdir() if p != out)
    if leftovers:
        return f"left files behind: {leftovers}"
    if code == 0:
        if not out.is_file():
            return "exit 0 without an output file"
        text = out.read_text(encoding="utf-8")
        try:
            parse_prototxt(text, dialect)
            infer_shapes(import_net(text, types=fork_types()))  # as archc reads any prototxt
        except ArchError as error:
            return f"the output does not load back: {error.render()}"
        return None
    if code != 2:
        return f"exit status {code}"
    if out.exists():
        return "an output file after a failure"
    return diagnostic_problem(stderr, workspace)


def diagnostic_problem(stderr: str, workspace: Workspace) -> str | None:
    """None when stderr holds exactly one `FILE:LINE:COL: error:` inside a workspace file, or is
    the one line that refuses a parameter the file does not declare (a command-line mistake, with
    no place in the file to show)."""
    if UNKNOWN_PARAMETER.fullmatch(stderr.strip()):
        return None
    found = [m for m in map(DIAGNOSTIC.match, stderr.splitlines()) if m]
    if len(found) != 1:
        return f"{len(found)} positioned diagnostics"
    match = found[0]
    try:
        relative = str(Path(match["path"]).resolve().relative_to(workspace.root.resolve()))
    except ValueError:
        return f"diagnostic names a file outside the workspace: {match['path']}"
    if not (workspace.root / relative).is_file():
        return f"diagnostic names no file: {match['path']}"
    lines = workspace.text(relative).split("\n")
    line, column = int(match["line"]), int(match["column"])
    if not 1 <= line <= len(lines):
        return f"line {line} outside 1..{len(lines)}"
    if not 1 <= column <= len(lines[line - 1]) + 1:
        return f"column {column} outside 1..{len(lines[line - 1]) + 1} on line {line}"
    return None


# ----- generated programs -----------------------------------------------------------------------

class ProgramGenerator:
    """Random .arch programs that mostly compile: it follows the cursor's shape as it writes."""

    def __init__(self, rng: random.Random, garbage: float = 0.04):
        self.rng = rng
        self.garbage = garbage
        self.uid = 0
        self.blocks: list[str] = []

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def name(self, stem: str) -> str:
        """A fresh name; the `L` prefix keeps it apart from automatic names (conv1, relu2...)."""
        self.uid += 1
        return f"L{self.uid}_{stem}"

    # expressions -------------------------------------------------------------------------------

    def int_expr(self, value: int, depth: int = 0) -> str:
        """An expression that evaluates to `value` (rarely, on purpose, to something else)."""
        rng = self.rng
        if self.chance(self.garbage / 4):
            value = rng.choice([0, -1, value + 1, 2 ** 31, 10 ** 9])
        if depth > 2 or self.chance(0.6):
            return str(value)
        a = rng.randint(0, 9)
        forms = [
            lambda: f"{self.int_expr(value - a, depth + 1)} + {a}",
            lambda: f"({self.int_expr(value * 2, depth + 1)}) // 2",
            lambda: f"[{a}, {self.int_expr(value, depth + 1)}][1]",
            lambda: f"{{{a}: {self.int_expr(value, depth + 1)}}}[{a}]",
            lambda: f"({a} < {a + 1} ? {self.int_expr(value, depth + 1)} : {a})",
            lambda: f"max({self.int_expr(value, depth + 1)}, {min(a, value)})",
            lambda: f"abs({-value})",
            lambda: f"int(float({value}))",
            lambda: f"sum([{value - a}, {a}])",
            lambda: f"len(range({value}))" if 0 <= value <= 64 else str(value),
        ]
        return rng.choice(forms)()

    def garbage_expr(self, depth: int = 0) -> str:
        """A random expression of any type: mostly wrong where it is used, sometimes not."""
        rng = self.rng
        leaves = ['"x"', '"data"', "true", "[]", "{}", "1.5", "0", "1", "-3", "7", "2147483648",
                  "1e-5", "1e39", "nope", "current", "input", "size", '"{1 +}"', '"{x}"']
        if depth > 2 or self.chance(0.4):
            return rng.choice(leaves)
        sub = lambda: self.garbage_expr(depth + 1)  # noqa: E731
        return rng.choice([
            lambda: f"{sub()} {rng.choice(['+', '-', '*', '/', '//', '%', '**'])} {sub()}",
            lambda: f"{sub()} {rng.choice(['<', '==', '!=', '>=', '..', '..='])} {sub()}",
            lambda: f"{sub()} {rng.choice(['and', 'or'])} {sub()}",
            lambda: f"not {sub()}", lambda: f"-{sub()}",
            lambda: f"{sub()} ? {sub()} : {sub()}",
            lambda: f"[{', '.join(sub() for _ in range(rng.randint(0, 3)))}]",
            lambda: f"{{{sub()}: {sub()}}}",
            lambda: f"{sub()}[{sub()}]", lambda: f"{sub()}[{sub()}:]",
            lambda: f"{sub()}.{rng.choice(['c', 'h', 'shape', 'name', 'x'])}",
            lambda: f"{rng.choice(['len', 'sum', 'min', 'max', 'abs', 'range', 'str', 'int', 'float', 'letter', 'conv', 'nope'])}"
                    f"({', '.join(sub() for _ in range(rng.randint(0, 3)))})",
            lambda: f'"n{{{sub()}}}"',
        ])()

    # Argument values by kind (see dsl.primitives): (values that fit, values of the right kind
    # that the op or Caffe refuses). Wrong kinds come from `garbage_expr`.
    ARGUMENTS = {
        "int": (["1", "3", "8", "2", "4"], ["0", "-1", "7", "2147483647", "2147483648"]),
        "pair": (["1", "3", "[1, 3]", "[3, 1]", "[2, 2]"], ["0", "-1", "[0, 2]", "[1, 2, 3]", "99"]),
        "number": (["0.5", "0.1", "1e-5", "0"], ["1.5", "-0.1", "1e39", "1"]),
        "bool": (["true", "false"], ["1"]),
        "ints": (["[0, -1]", "[1, -1]", "[0, 0, 0, 0]"],
                 ["[-1, -1]", "[5, -1]", "[0, 0, 0, 0, 0]", "[1, 2]", "[]", "[-2]", "[0, 0]"]),
        "numbers": (["[1, 0.5]", "[1, 1]", "[]"], ["[1]", "[1, 2, 3]"]),
        "choice": (['"ceil"', '"floor"'], ['"up"']),
        "string": ([f'"t{n}"' for n in range(5)], ['"data"', '""', "current.name", '"a\\\\b"']),
    }

    def argument(self, kind: str) -> str:
        fitting, edge = self.ARGUMENTS.get(kind, (["1"], ["0"]))
        roll = self.rng.random()
        if roll < 0.05:
            return self.garbage_expr()
        return self.rng.choice(edge if roll < 0.3 else fitting)

    def garbage_statement(self) -> str:
        """A near miss: a real op with arguments that fit or not, names, branches."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.15:
            return rng.choice([
                f"from {self.garbage_expr()}",
                f"let {rng.choice(['x', 'size', 'y', 'conv'])} = {self.garbage_expr()}",
                f'input "{rng.choice(["data", "x", "y"])}" {rng.choice(["[4]", "[2, 10]", "[1, 2, 3]", "[1, 0, 2, 2]", self.garbage_expr()])}',
                f"if {self.garbage_expr()} {{ relu }}",
                f"for q in {self.garbage_expr()} {{ relu(inplace = false) }}",
                "for q in 0..100000 { if big == big2 { } }",  # work on large values, unpaid?
                f"{rng.choice(['convv', 'bottleneck', 'unit', 'size', 'x'])}({self.garbage_expr()})",
            ])
        prim = rng.choice(list(PRIMITIVES.values()))
        params = list(prim.params)
        required = sum(param.required for param in params)
        args = [self.argument(param.kind)
                for param in params[:rng.randint(required if self.chance(0.8) else 0, len(params))]]
        if self.chance(0.05):
            args.append(self.garbage_expr())
        keyword_params = (params if self.chance(0.1) else params[len(args):]) + list(PLACEMENT_PARAMS)
        for param in rng.sample(keyword_params, rng.randint(0, min(2, len(keyword_params)))):
            args.append(f"{param.name} = {self.argument(param.kind)}")
        if self.chance(0.1):
            args.append(f"{rng.choice(['strides', 'padding', 'kernel'])} = 1")
        text = prim.name + (f"({', '.join(args)})" if args or self.chance(0.5) else "")
        if self.chance(0.4):
            count = (2 if prim.name == "bn" else 1) if self.chance(0.7) else rng.randint(1, 3)
            names = [rng.choice(['"dup"', '"x"', '"a b"', '"é"', '"data"', '"L1_conv"', '""', "3"])
                     for _ in range(count)]
            text += " as " + ", ".join(names)
        if prim.merge or self.chance(0.05):
            branches = [rng.choice(["", "relu(inplace = false)", "conv(4, 1)", "maxpool(2, stride = 2)",
                                    "conv(4, 3, pad = 1)", "bn"])
                        for _ in range(rng.randint(1, 3))]
            text += " { " + " ".join(f"branch {{ {b} }}" for b in branches) + " }"
        return text

    # statements --------------------------------------------------------------------------------

    def statements(self, shape: list[int], budget: int, indent: str) -> list[str]:
        """Statements applied to a cursor of `shape` ([c, h, w]); updates `shape` in place."""
        out: list[str] = []
        for _ in range(self.rng.randint(1, max(1, budget))):
            out.extend(self.statement(shape, budget - 1, indent))
        return out

    def statement(self, shape: list[int], budget: int, indent: str) -> list[str]:
        rng = self.rng
        if self.chance(self.garbage):
            return [indent + self.garbage_statement()]
        kinds = ["conv", "conv", "unary", "unary", "pool", "merge", "loop", "if", "let", "block",
                 "stages"]
        if budget <= 0:
            kinds = ["conv", "unary", "pool"]
        kind = rng.choice(kinds)
        return getattr(self, f"_{kind}")(shape, budget, indent)

    def _as(self, stem: str, loop_var: str | None = None) -> str:
        if self.chance(0.5):
            return ""
        suffix = f"_{{{loop_var}}}" if loop_var else ""
        return f' as "{self.name(stem)}{suffix}"'

    def _conv(self, shape, budget, indent, loop_var=None, keep=False):
        rng = self.rng
        c, h, w = shape
        out_c = c if keep else rng.choice([c, c * 2, 8, 16, 3])
        kernel = rng.choice([1, 3, 3, 5, [1, 3], [3, 1], 7])
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        stride = 1 if keep else rng.choice([1, 1, 2])
        dilation = 1 if keep or self.chance(0.8) else 2
        pad_h, pad_w = dilation * (kh // 2), dilation * (kw // 2)
        if not keep and self.chance(0.2):
            pad_h = pad_w = 0
        groups = [g for g in (1, 2, 4, 8) if c % g == 0 and out_c % g == 0]
        group = rng.choice(groups)
        new_h = (h + 2 * pad_h - dilation * (kh - 1) - 1) // stride + 1
        new_w = (w + 2 * pad_w - dilation * (kw - 1) - 1) // stride + 1
        if new_h < 1 or new_w < 1:
            kernel, kh, kw, pad_h, pad_w, stride, dilation, new_h, new_w = 1, 1, 1, 0, 0, 1, 1, h, w
        kernel_text = f"[{kh}, {kw}]" if kh != kw else self.int_expr(kh)
        args = [self.int_expr(out_c), kernel_text]
        if stride != 1:
            args.append(f"stride = {self.int_expr(stride)}")
        if (pad_h, pad_w) != (0, 0):
            args.append(f"pad = {self.int_expr(pad_h)}" if pad_h == pad_w else f"pad = [{pad_h}, {pad_w}]")
        if group != 1:
            args.append(f"group = {self.int_expr(group)}")
        if dilation != 1:
            args.append(f"dilation = {dilation}")
        if self.chance(0.3):
            args.append(f"bias = {rng.choice(['true', 'false'])}")
        shape[:] = [out_c, new_h, new_w]
        return [f"{indent}conv({', '.join(args)}){self._as('conv', loop_var)}"]

    def _unary(self, shape, budget, indent, loop_var=None):
        rng = self.rng
        op = rng.choice(["bn", "relu", "relu(slope = 0.1)", "scale", "batchnorm(eps = 0.001)",
                         "dropout(ratio = 0.3)", "bn(eps = 1e-3)"])
        extra = ""
        if self.chance(0.15):
            extra = "inplace = false"
        elif self.chance(0.1):
            extra = f'top = "{self.name("blob")}"'
        if extra:
            op = f"{op[:-1]}, {extra})" if op.endswith(")") else f"{op}({extra})"
        if op.startswith("bn"):  # two layers, so two names or none
            if self.chance(0.5):
                return [f"{indent}{op}"]
            stem = self.name("bn")
            suffix = f"_{{{loop_var}}}" if loop_var else ""
            return [f'{indent}{op} as "{stem}{suffix}", "{stem}_scale{suffix}"']
        return [f"{indent}{op}{self._as(op.split('(')[0], loop_var)}"]

    def _pool(self, shape, budget, indent, loop_var=None):
        rng = self.rng
        c, h, w = shape
        op = rng.choice(["maxpool", "avepool"])
        if self.chance(0.15):
            shape[:] = [c, 1, 1]
            return [f"{indent}{op}(global = true){self._as('pool', loop_var)}"]
        kernel = rng.choice([1, 2, 3])
        stride = rng.choice([1, 2])
        pad = rng.randint(0, kernel - 1)
        rounding = rng.choice(["ceil", "floor"])

        def pooled(size):
            span = size + 2 * pad - kernel
            out = (-(-span // stride) if rounding == "ceil" else span // stride) + 1
            return out - 1 if pad and (out - 1) * stride >= size + pad else out
        new_h, new_w = pooled(h), pooled(w)
        if min(new_h, new_w) < 1:
            return []
        args = [self.int_expr(kernel)]
        if stride != 1:
            args.append(f"stride = {stride}")
        if pad:
            args.append(f"pad = {pad}")
        if rounding == "floor" or self.chance(0.2):
            args.append(f'round = "{rounding}"')
        shape[:] = [c, new_h, new_w]
        return [f"{indent}{op}({', '.join(args)}){self._as('pool', loop_var)}"]

    def _keep_shape(self, shape, budget, indent, loop_var):
        """Statements that leave the cursor's shape as it is (for sums and loops)."""
        lines = []
        for _ in range(self.rng.randint(0, 2)):
            if self.chance(0.5):
                lines += self._conv(shape, 0, indent, loop_var, keep=True)
            else:
                lines += self._unary(shape, 0, indent, loop_var)
        return lines

    def _merge(self, shape, budget, indent, loop_var=None):
        rng = self.rng
        c, h, w = shape
        inner = indent + "    "
        branches: list[list[str]] = []
        if self.chance(0.5):
            op = rng.choice(["sum", "sum", "product", "maximum"])
            count = rng.randint(2, 3)
            for _ in range(count):
                branches.append(self._keep_shape(list(shape), budget, inner, loop_var))
            if op == "sum" and self.chance(0.3):
                coeffs = ", ".join(rng.choice(["1", "0.5", "-1", "0.17"]) for _ in range(count))
                op = f"sum(coeff = [{coeffs}])"
        else:
            op = "concat"
            total = 0
            for _ in range(rng.randint(1, 3)):
                branch_shape = list(shape)
                lines = self._keep_shape(branch_shape, budget, inner, loop_var)
                if self.chance(0.6):
                    width = rng.choice([4, 8, 12])
                    lines += [f"{inner}conv({width}, 1){self._as('proj', loop_var)}"]
                    branch_shape[0] = width
                if self.chance(0.2):  # the branch forks again: its sub-branches join the concat
                    lines += [f"{inner}branch {{", f"{inner}  conv(4, [1, 3], pad = [0, 1])",
                              f"{inner}}}", f"{inner}branch {{", f"{inner}}}"]
                    branch_shape[0] += 4
                total += branch_shape[0]
                branches.append(lines)
            shape[0] = total
        body = []
        for lines in branches:
            body += [f"{indent}  branch {{", *lines, f"{indent}  }}"]
        return [f"{indent}{op}{self._as('merge', loop_var)} {{", *body, f"{indent}}}"]

    def _loop(self, shape, budget, indent, loop_var=None):
        rng = self.rng
        var = self.name("i")
        count = rng.choice([1, 2, 3, 4])
        if self.chance(0.03):
            count = rng.choice([100000, 10 ** 9, 2 ** 53])
        iterable = rng.choice([f"0..{count}", f"range({count})", f"0..={count - 1}"])
        body = self._keep_shape(shape, budget, indent + "  ", var) or [indent + "  relu"]
        return [f"{indent}for {var} in {iterable} {{", *body, f"{indent}}}"]

    def _if(self, shape, budget, indent, loop_var=None):
        threshold = self.rng.choice([1, 4, 8, 16, 64])
        taken = shape[0] > threshold
        before = list(shape)
        then_lines = self.statements(shape if taken else list(before), budget - 1, indent + "  ")
        else_lines = self.statements(list(before) if taken else shape, budget - 1, indent + "  ")
        return [f"{indent}if current.c > {threshold} {{", *then_lines,
                f"{indent}}} else {{", *else_lines, f"{indent}}}"]

    def _let(self, shape, budget, indent, loop_var=None):
        saved = self.name("t")
        before = list(shape)
        lines = [f"{indent}let {saved} = current"]
        lines += self.statements(shape, budget - 1, indent)
        if self.chance(0.6):
            lines.append(f"{indent}from {saved}")
            shape[:] = before
        return lines

    def _stages(self, shape, budget, indent, loop_var=None):
        """`for stage, width in {...}`: a table loop whose names come from the key and value."""
        c, h, w = shape
        widths = [self.rng.choice([4, 8, 16]) for _ in range(self.rng.randint(1, 3))]
        table = ", ".join(f"{i}: {width}" for i, width in enumerate(widths))
        stem = self.name("stage")
        lines = [f"{indent}for k, width in {{{table}}} {{",
                 f'{indent}  conv(width, 3, stride = k == 0 ? 1 : 2, pad = 1) as "{stem}_{{k}}_{{width}}"',
                 f'{indent}  relu as "{stem}_{{letter(k)}}_relu"',
                 f"{indent}}}"]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            c, h, w = width, (h - 1) // stride + 1, (w - 1) // stride + 1
        shape[:] = [c, h, w]
        return lines

    def _block(self, shape, budget, indent, loop_var=None):
        if not self.blocks:
            return self._unary(shape, budget, indent, loop_var)
        block = self.rng.choice(self.blocks)
        if block == "common":  # conv_bn from the model library's lib/common.arch
            c = shape[0]
            return [f'{indent}conv_bn("{self.name("cb")}", {self.int_expr(c)}, 3, pad = 1, '
                    f'relu = {self.rng.choice(["true", "false"])})']
        if block == "repeat":  # a block that calls itself with a counter
            times = self.rng.choice([0, 1, 3, 70])  # 70: past the 64-call limit
            return [f'{indent}repeat("{self.name("rep")}", {times})']
        if block == "unit":  # conv 3x3 pad 1 + bn + relu with a name prefix: shape kept
            return [f'{indent}unit("{self.name("u")}", {self.int_expr(shape[0])})']
        c, h, w = shape  # "down": a strided conv, names from a counter
        shape[:] = [c * 2, (h - 1) // 2 + 1, (w - 1) // 2 + 1]
        return [f'{indent}down(n = {self.uid + 1000}, out = {c * 2})']

    BLOCKS = {
        "unit": ['block unit(name, c, k = 3) {',
                 '  conv(c, k, pad = k // 2) as "{name}_conv"',
                 '  bn as "{name}_bn", "{name}_scale"',
                 '  relu as "{name}_relu"',
                 '}'],
        "down": ['block down(n, out) {',
                 '  conv(out, 3, stride = 2, pad = 1) as "down{n}"',
                 '  if input.c > 1000 { relu }',
                 '}'],
        "common": ['import "lib/common.arch"'],
        "repeat": ['block repeat(name, times) {',
                   '  if times > 0 {',
                   '    relu(inplace = false) as "{name}_{times}"',
                   '    repeat(name, times - 1)',
                   '  }',
                   '}'],
    }

    def program(self) -> str:
        rng = self.rng
        lines: list[str] = []
        size = rng.choice([1, 2, 7, 8, 16, 32, 33])
        channels = rng.choice([1, 3, 4, 8])
        if self.chance(0.5):
            lines.append(f'param size: int = {size} in [1, 2, 7, 8, 16, 32, 33] "input side"')
            size_expr = "size"
        else:
            size_expr = self.int_expr(size)
        if self.chance(0.3):
            lines.append('param classes: int = 10 "classes"')
        if self.chance(0.3):
            lines.append('let widths = {1: [8, 16], 2: [16, 32]}[1]')
        if self.garbage and self.chance(0.2):
            lines += ["let big = range(90000)", "let big2 = range(90000)"]
        self.blocks = rng.sample(sorted(self.BLOCKS), rng.randint(0, 2))
        for block in self.blocks:
            lines += self.BLOCKS[block]
        shape = [channels, size, size]
        body = self.statements(shape, rng.randint(1, 4), "  ")
        tail = []
        if self.chance(0.5):
            tail = ["  avepool(global = true)", "  fc(classes)" if any(
                "classes" in line for line in lines) else "  fc(10)", "  softmax as \"prob\""]
        elif self.chance(0.2):
            tail = [rng.choice(["  flatten", "  reshape([0, -1])", "  fc(4)"])]
        inputs = [f'  input "data" [1, {channels}, {size_expr}, {size_expr}]']
        if self.chance(0.1):  # a second input, then back to the first
            inputs += ['  let data = current', '  input "label" [1, 1]', '  from data']
        lines += ["net {", *inputs, *body, *tail, "}"]
        return "\n".join(lines) + "\n"


# ----- mutations of the model library -----------------------------------------------------------

TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z_0-9]*|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
                   r'|\.\.=?|\*\*|//|[=!<>]=|\s+|#[^\n]*|.', re.S)
NUMBERS = ["0", "-1", "1", "2", "3", "-7", "2147483648", "9007199254740993", "1000000000",
           "1" + "0" * 30, "1e400", "0.5", "-0.0", "1" * 5000]
INSERTIONS = ["{", "}", "(", ")", "[", "]", ",", "=", ":", "?", "..", "branch", "if", "for", "net",
              "block", "let", "from", "as", "'x'", '"', "#", "\x00", "\u2028", "\f", "\r", "\t",
              "é", "😀", "\ufeff", '"{', '}"', 'import "lib/common.arch"', 'import "../../x.arch"',
              'import "/etc/passwd"', "input", "current", "**", "//", "not", "and", "else"]


def mutate(text: str, rng: random.Random) -> str | bytes:
    """1 to 4 random edits of a source text; occasionally an invalid UTF-8 byte."""
    tokens = TOKEN.findall(text)
    solid = [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]
    for _ in range(rng.randint(1, 4)):
        if not solid:
            break
        i = rng.choice(solid)
        token = tokens[i]
        move = rng.randrange(9)
        if move == 0:
            tokens[i] = ""
        elif move == 1:
            tokens[i] = token + " " + token
        elif move == 2:
            j = rng.choice(solid)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif move == 3 and token[:1].isdigit():
            tokens[i] = rng.choice(NUMBERS)
        elif move == 3 or move == 4:
            tokens[i] = rng.choice(INSERTIONS) + (" " if rng.random() < 0.5 else "") + token
        elif move == 5 and token[:1].isalpha():
            tokens[i] = rng.choice([token * 400, "x" * 600, token + "é", "net", "input", "current",
                                    tokens[rng.choice(solid)]])
        elif move == 5 and token.startswith('"'):
            tokens[i] = rng.choice(['"' + "n" * 3000 + '"', '"😀"', '"a{b"', '"{x}"', '""', '"\\"',
                                    '"{' * 120 + '1' + '}"' * 120, '"{1/0}"'])
        elif move == 6:
            depth = rng.choice([50, 101, 400, 3000])
            opener, closer = rng.choice([("(", ")"), ("[", "][0]"), ("-", ""), ("-(", ")")])
            if token[:1].isdigit():
                tokens[i] = opener * depth + token + closer * depth
        elif move == 7 and token in ("..", "..="):
            tokens[i] = token + rng.choice(["1000000000 + ", "100000 * ", "-"])
        elif move == 7 and token == "{" and rng.random() < 0.5:
            tokens[i] = "{ for zz in 0..100000 { relu } "
        elif move == 8:
            tokens[i] = token + rng.choice(INSERTIONS)
    mutated = "".join(tokens)
    if rng.random() < 0.03:
        data = mutated.encode("utf-8")
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + data[at:]
    return mutated


def _params_of(text: str) -> list[str]:
    return re.findall(r"^param\s+([A-Za-z_]\w*)", text, re.M)


def random_overrides(text: str, rng: random.Random) -> list[str]:
    """A few `--name value` pairs: the file's own parameters or not, fitting values or not."""
    names = sorted(set(_params_of(text)) | {"nope", "size_", "depth"})
    args: list[str] = []
    for name in rng.sample(names, min(len(names), rng.randint(1, 3))):
        value = rng.choice(["0", "-1", "1", "32", "50", "101", "224", "1e3", "true", "x", "",
                            "2147483648", "99999999999999999999", "1" * 5000, "nan", "inf",
                            "é", "3.5", " 7", "0x10"])
        args += [f"--{name}", value] if rng.random() < 0.7 else [f"--{name}={value}"]
    return args


def library_models() -> list[str]:
    return sorted(str(p.relative_to(LIBRARY)) for p in LIBRARY.glob("*.arch"))


def random_case(rng: random.Random, workspace: Workspace) -> Case:
    """One fuzz input: a generated program, or a mutated library file (a model or a library)."""
    roll = rng.random()
    if roll < 0.45:
        text = ProgramGenerator(rng, garbage=rng.choice([0.0, 0.05, 0.2])).program()
        args = random_overrides(text, rng) if rng.random() < 0.1 else []
        if rng.random() < 0.2:  # BVLC master's spelling of floor rounding
            args += ["--pool-rounding", "round_mode"]
        return Case({"fuzz.arch": text}, "fuzz.arch", args, "generated")
    models = library_models()
    model = rng.choice(models)
    target = model
    if roll > 0.9:  # mutate a library file instead, and compile a model that imports it
        target = rng.choice(sorted(set(workspace.pristine) - set(models)) or [model])
    pristine = workspace.pristine[target]
    args = random_overrides(workspace.pristine[model], rng) if rng.random() < 0.2 else []
    if roll < 0.5:  # only the command line is wrong
        return Case({}, model, args or random_overrides(pristine, rng), "overrides")
    return Case({target: mutate(pristine, rng)}, model, args, f"mutated {target}")
