"""Two rules beyond the stage order (`test_import_graph.py`): the runtime never compiles an .arch
file (it is handed a loaded model), and commands that need no compiler start without it."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

# `python -m archc` is the command line's entry point, kept in the foundation package's folder.
ENTRY_POINTS = {REPO / "archc" / "__main__.py"}
# What compiles an .arch file: the DSL, and the model loader that calls it.
COMPILERS = {"archc.dsl", "archc.model.load_model"}


def archc_imports(path) -> set[str]:
    """Every archc module, and `module.name` imported from one, that the file imports anywhere
    (function-local imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("archc."))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                (node.module == "archc" or node.module.startswith("archc.")):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(stage: str):
    return sorted(path for path in (REPO / stage).rglob("*.py") if path not in ENTRY_POINTS)


def test_the_runtime_neither_reaches_the_command_line_nor_compiles():
    wrong = [f"{path.relative_to(REPO)} imports {module}"
             for path in sources("runtime") for module in archc_imports(path)
             if module.startswith("archc.cli") or
             any(module == name or module.startswith(name + ".") for name in COMPILERS)]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_function_local_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from archc import dsl\n    import archc.cli.main\n")
    assert archc_imports(source) == {"archc", "archc.dsl", "archc.cli.main"}


def test_commands_without_the_compiler_start_without_lark_and_jinja2():
    # what `archc doctor` and `archc --help` import
    script = ("import sys\n"
              "from archc.cli import cmd_doctor, main\n"
              "import archc.model\n"
              "print(sorted({'lark', 'jinja2'} & set(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
