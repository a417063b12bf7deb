"""The .arch language's semantics: expressions, scopes, blocks, merges, names, imports, errors."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from archc import dsl
from archc.codegen import render
from archc.codegen.parse import import_net
from archc.codegen.schema import parse_prototxt
from conftest import REPO
from golden import assert_caffe_allocates_the_inferred_shapes
from archc.errors import ArchError


def compile_text(tmp_path: Path, text: str, name: str = "model.arch", **overrides):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return dsl.compile_file(str(path), {k: str(v) for k, v in overrides.items()})


def layers(net) -> dict:
    return {layer.name: layer for layer in net.layers}


def error_of(tmp_path: Path, text: str, **overrides) -> ArchError:
    with pytest.raises(ArchError) as caught:
        compile_text(tmp_path, text, **overrides)
    return caught.value


def test_expressions_tables_ranges_and_interpolation(tmp_path):
    net = compile_text(tmp_path, """
        param depth: int = 101 in [50, 101]
        let blocks = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[depth]
        let total = sum(blocks[:3]) + 7 // 2 * 2 ** 3 - 10 % 4
        net {
          input "data" [1, 3, 8, 8]
          conv(total, 1) as "c{total}_{letter(2)}{len(blocks)}"
          conv(depth > 60 and not false ? 5 : 6, [1, 3], pad = [0, 1]) as "r{{x}}"
          for i in 0..=2 { relu as "relu{i}" }
        }
    """)
    names = [layer.name for layer in net.layers]
    total = 3 + 4 + 23 + 7 // 2 * 2 ** 3 - 10 % 4
    assert names == [f"c{total}_c4", "r{x}", "relu0", "relu1", "relu2"]
    conv = net.layers[1].op
    assert (conv.num_output, conv.kernel_h, conv.kernel_w, conv.pad_h, conv.pad_w) == (5, 1, 3, 0, 1)


def test_for_over_list_and_table_binds_index_and_value(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 3, 8, 8]
          for i, width in [4, 8] { conv(width, 1) as "list{i}" }
          for key, width in {"a": 2, "b": 6} { conv(width, 1) as "table_{key}" }
        }
    """)
    assert [(l.name, l.op.num_output) for l in net.layers] == [
        ("list0", 4), ("list1", 8), ("table_a", 2), ("table_b", 6)]


def test_blocks_defaults_scoping_and_tensor_attributes(tmp_path):
    net = compile_text(tmp_path, """
        let prefix = "blk"
        block widen(n, factor = 2) {
          conv(input.c * factor, 3, pad = 1) as "{prefix}{n}"
        }
        net {
          input "data" [1, 3, 8, 8]
          widen(1)
          widen(n = 2, factor = 3)
          conv(current.h, 1) as "height"
        }
    """)
    assert [(l.name, l.op.num_output) for l in net.layers] == [("blk1", 6), ("blk2", 18), ("height", 8)]


def test_merges_branches_in_order_with_identity_and_coefficients(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 4, 8, 8]
          concat as "cat" {
            branch { conv(2, 1) as "a" }
            branch { }
            branch { maxpool(3, stride = 1, pad = 1) as "p" }
          }
          sum(coeff = [1, 0.17]) as "res" { branch { } branch { conv(10, 1) as "up" } }
        }
    """)
    by_name = layers(net)
    assert by_name["cat"].bottoms == ("a", "data", "p")
    assert by_name["res"].bottoms == ("cat", "up")
    assert by_name["res"].op.coeff == (1.0, 0.17)


def test_from_and_current_pick_the_input_of_the_next_op(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 4, 8, 8]
          conv(4, 1) as "raw"
          let raw = current
          bn(inplace = false) as "pre", "pre_scale"
          relu as "pre_relu"
          let pre = current
          sum as "s" {
            branch { from raw }
            branch { from pre  conv(4, 1) as "c" }
          }
        }
    """)
    by_name = layers(net)
    assert by_name["pre"].bottoms == ("raw",) and by_name["pre"].tops == ("pre",)
    assert by_name["pre_scale"].tops == ("pre",) and by_name["pre_relu"].tops == ("pre",)
    assert by_name["c"].bottoms == ("pre",)
    assert by_name["s"].bottoms == ("raw", "c")


def test_placement_top_and_inplace(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 4, 8, 8]
          relu as "r1"
          relu(inplace = false) as "r2"
          conv(4, 1, top = "blob") as "c"
          dropout(0.2) as "d"
        }
    """)
    assert [(l.bottoms, l.tops) for l in net.layers] == [
        (("data",), ("data",)), (("data",), ("r2",)), (("r2",), ("blob",)), (("blob",), ("blob",))]


def test_sigmoid_runs_in_place_unless_told_otherwise(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 4, 8, 8]
          sigmoid as "gate"
          sigmoid(inplace = false) as "gate2"
        }
    """)
    assert [(l.type, l.bottoms, l.tops) for l in net.layers] == [
        ("Sigmoid", ("data",), ("data",)), ("Sigmoid", ("data",), ("gate2",))]
    assert 'type: "Sigmoid"' in render(net) and "sigmoid_param" not in render(net)


def test_import_is_relative_and_confined(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text('block cr(n) { conv(n, 1) as "c{n}"  relu as "r{n}" }\n')
    net = compile_text(tmp_path, """
        import "lib/blocks.arch"
        net { input "data" [1, 3, 4, 4]  cr(5) }
    """)
    assert [l.name for l in net.layers] == ["c5", "r5"]
    inner = tmp_path / "inner"
    inner.mkdir()
    error = error_of(inner, 'import "../lib/blocks.arch"\nnet { input "data" [1, 3, 4, 4] }\n')
    assert "leaves the model's directory" in error.message
    assert (error.span.line, error.span.column) == (1, 8)


USES_CONV_BN = 'import "lib/common.arch"\nnet { input "data" [1, 3, 8, 8]  conv_bn("c", 4, 3) }\n'


def test_a_model_outside_the_library_imports_the_shipped_library(tmp_path):
    net = compile_text(tmp_path, USES_CONV_BN)
    assert [l.name for l in net.layers] == ["c", "c_bn", "c_scale", "c_relu"]


def test_a_models_own_library_file_shadows_the_shipped_one(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.arch").write_text('block conv_bn(name, c, k) { conv(c, k) as "own_{name}" }\n')
    assert [l.name for l in compile_text(tmp_path, USES_CONV_BN).layers] == ["own_c"]


def test_archc_path_directories_are_searched_after_the_shipped_library(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, name in ((first, "one"), (second, "two")):
        (directory / "lib").mkdir(parents=True)
        (directory / "lib" / "extra.arch").write_text(f'block extra() {{ relu as "{name}" }}\n')
        # never used: the shipped library has a lib/common.arch, and it comes first
        (directory / "lib" / "common.arch").write_text("block conv_bn() { relu }\n")
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("ARCHC_PATH", os.pathsep.join(["", str(first), str(second)]))
    net = compile_text(models, 'import "lib/extra.arch"\nimport "lib/common.arch"\n'
                               'net { input "data" [1, 3, 8, 8]  extra  conv_bn("c", 4, 3) }\n')
    assert [l.name for l in net.layers] == ["one", "c", "c_bn", "c_scale", "c_relu"]
    monkeypatch.setenv("ARCHC_PATH", str(second))
    assert compile_text(models, 'import "lib/extra.arch"\nnet { input "data" [1, 3, 8, 8]  extra }\n'
                        ).layers[0].name == "two"
    monkeypatch.delenv("ARCHC_PATH")
    error = error_of(models, 'import "lib/extra.arch"\nnet { input "data" [1, 3, 8, 8] }\n')
    assert "import 'lib/extra.arch': no such file in " in error.message
    assert "add the directory holding it to ARCHC_PATH" in error.message


def test_an_import_cannot_leave_the_directory_it_was_found_in(tmp_path, monkeypatch):
    tmp_path = tmp_path.resolve()  # messages name directories with symbolic links resolved
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.arch").write_text("block leak() { relu }\n")
    search = tmp_path / "search"
    (search / "lib").mkdir(parents=True)
    (search / "lib" / "up.arch").write_text('import "../../outside/secret.arch"\n')
    (search / "linked").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("ARCHC_PATH", str(search))
    models = tmp_path / "models"
    models.mkdir()
    # a library found on ARCHC_PATH cannot climb out of that directory...
    error = error_of(models, 'import "lib/up.arch"\nnet { input "data" [1, 3, 8, 8] }\n')
    assert f"leaves the ARCHC_PATH directory ({search})" in error.message
    assert (Path(error.span.path), error.span.line, error.span.column) == (search / "lib" / "up.arch", 1, 8)
    # ...nor follow a symbolic link out of it
    error = error_of(models, 'import "linked/secret.arch"\nnet { input "data" [1, 3, 8, 8] }\n')
    assert f"leaves the ARCHC_PATH directory ({search})" in error.message
    # and the model's own directory is left neither by '..' nor by an absolute path
    for target in ("../outside/secret.arch", str(outside / "secret.arch")):
        error = error_of(models, f'import "{target}"\nnet {{ input "data" [1, 3, 8, 8] }}\n')
        assert f"leaves the model's directory ({models})" in error.message


def test_parameter_overrides_types_and_allowed_values(tmp_path):
    text = """
        param width: int = 4 in 1..=8 "channels"
        param ratio: float = 0.5
        param label: str = "x"
        param bias: bool = true
        net { input "data" [1, 3, 4, 4]  conv(width, 1, bias = bias) as "{label}"  dropout(ratio) as "d" }
    """
    net = compile_text(tmp_path, text, width=8, ratio="0.25", label="y", bias="false")
    conv, drop = net.layers
    assert (conv.name, conv.op.num_output, conv.op.bias_term, drop.op.ratio) == ("y", 8, False, 0.25)
    error = error_of(tmp_path, text, width=9)
    assert "--width 9 is not an allowed value" in error.message
    assert (error.span.line, error.span.column) == (2, 25)
    assert "expects an int" in error_of(tmp_path, text, width="four").message


def test_a_float_parameter_with_an_integer_range_takes_those_integers(tmp_path):
    text = 'param f: float = 2.0 in 1..=3\nnet { input "data" [1, 3, 4, 4]  dropout(f / 4) as "d" }\n'
    assert compile_text(tmp_path, text, f="3").layers[0].op.ratio == 0.75
    assert "choose one of {1, 2, 3}" in error_of(tmp_path, text, f="2.5").message


@pytest.mark.parametrize("kind, text, message", [
    ("int", "99999999999999999999", "integer beyond the limit of 2**53"),
    ("int", "9" * 5000, "integer beyond the limit of 2**53"),
    ("int", "9007199254740993", "integer beyond the limit of 2**53"),
    ("float", "1e999", "number beyond float32's range"),
    ("float", "1e39", "number beyond float32's range"),
    ("float", "1e-320", "number below float32's normal range"),
    ("float", "1e-39", "number below float32's normal range"),
])
def test_overrides_keep_the_limits_of_literals(tmp_path, kind, text, message):
    """`--x TEXT` is refused exactly where `let y = TEXT` is: one limit for written numbers."""
    literal = error_of(tmp_path, f'let y = {text}\nnet {{ input "data" [1, 3, 4, 4] }}\n')
    assert literal.message.startswith(message)
    override = error_of(tmp_path, f'param x: {kind} = 1\nnet {{ input "data" [1, 3, 4, 4] }}\n', x=text)
    assert override.message == f"--x {text[:77] + '...' if len(text) > 80 else text}: {literal.message}"
    assert (override.span.line, override.span.column) == (1, 7)


@pytest.mark.parametrize("kind, text, value", [
    ("int", "9007199254740992", 2 ** 53), ("int", "-42", -42), ("int", "+7", 7),
    ("float", "3", 3.0), ("float", "-1.5e-38", -1.5e-38), ("float", "3.4e38", 3.4e38), ("float", "0.0", 0.0),
])
def test_overrides_within_the_limits_are_taken(tmp_path, kind, text, value):
    text_net = f'param x: {kind} = 1\nnet {{ input "data" [1, 3, 4, 4]  relu as "r{{x}}" }}\n'
    assert compile_text(tmp_path, text_net, x=text).layers[0].name == f"r{value!r}"


@pytest.mark.parametrize("kind, text", [("int", "1_000"), ("int", "\u0663"), ("int", " 5"), ("int", "5.0"),
                                        ("float", "inf"), ("float", "nan"), ("float", "1_0.5"),
                                        ("float", "0x10")])
def test_overrides_are_numbers_as_the_language_writes_them(tmp_path, kind, text):
    error = error_of(tmp_path, f'param x: {kind} = 1\nnet {{ input "data" [1, 3, 4, 4] }}\n', x=text)
    assert f"--x expects a{'n' if kind == 'int' else ''} {kind}, got '{text}'" == error.message


@pytest.mark.parametrize("declaration, column, message", [
    ("param flag: bool = true in [1, 2]", 29, "'flag' is a bool parameter: each allowed value must be "
                                              "true or false, got int 1"),
    ('param depth: int = 50 in [50, "101"]', 31, "each allowed value must be an int, got string"),
    ("param name: str = \"a\" in 1..=3", 26, "each allowed value must be a string, got int 1"),
    ("param on: bool = true in [true, 1]", 33, "must be true or false, got int 1"),
])
def test_allowed_values_have_the_parameters_type(tmp_path, declaration, column, message):
    error = error_of(tmp_path, declaration + '\nnet { input "data" [1, 3, 4, 4] }\n')
    assert message in error.message
    assert (error.span.line, error.span.column) == (1, column)


def test_membership_in_allowed_values_compares_types(tmp_path):
    text = ('param on: bool = true in [true]\nparam f: float = 1 in [1, 2.5]\n'
            'net { input "data" [1, 3, 4, 4]  conv(on ? 2 : 3, 1) as "c"  dropout(f / 4) as "d" }\n')
    net = compile_text(tmp_path, text, f=2.5)
    assert (net.layers[0].op.num_output, net.layers[1].op.ratio) == (2, 2.5 / 4)
    assert "choose one of {true}" in error_of(tmp_path, text, on="false").message
    assert compile_text(tmp_path, text, f=1).layers[1].op.ratio == 0.25


def test_help_never_lists_allowed_values_of_another_type(tmp_path):
    path = tmp_path / "m.arch"
    path.write_text('param flag: bool = true in [1, 2]\nnet { input "data" [1, 3, 4, 4] }\n')
    with pytest.raises(ArchError, match="each allowed value must be true or false"):
        dsl.file_params(str(path))


@pytest.mark.parametrize("allowed, value, shown", [
    ("1..=100000", 0, "choose an integer in [1, 100000]"),
    ("0..100000", 100000, "choose an integer in [0, 99999]"),
    ("range(0, 40, 2)", 3, "choose one of {0, 2, 4, ..., 36, 38}"),
    ("[1, 2, 4]", 3, "choose one of {1, 2, 4}"),
])
def test_allowed_values_are_checked_and_named_as_written(tmp_path, allowed, value, shown):
    text = f'param n: int = 2 in {allowed}\nnet {{ input "data" [1, 3, 4, 4]  conv(n, 1) as "c" }}\n'
    assert compile_text(tmp_path, text).layers[0].op.num_output == 2
    assert shown in error_of(tmp_path, text, n=value).message
    huge = text.replace("2 in", "99999 in")
    if "100000" in allowed:  # a large range is checked as a range: its end is allowed, one past is not
        assert compile_text(tmp_path, huge).layers[0].op.num_output == 99999


@pytest.mark.parametrize("source, line, column, fragment", [
    ('net {\n  input "data" [1, 3, 8, 8]\n  conv(4, 3) as "a"\n  conv(4, 3) as "a"\n}\n',
     4, 3, "duplicate layer name 'a'"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  conve(4, 3)\n}\n', 3, 3, "did you mean 'conv'"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  conv(4, stride = 2)\n}\n', 3, 3, "needs argument 'kernel'"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  conv(4, 3, stride = "2")\n}\n', 3, 14, "argument 'stride'"),
    ('net {\n  input "data" [1, 3, 4, 4]\n  maxpool(3, stride = 2)\n  conv(4, 3)\n}\n',
     4, 3, "the 3 x 3 convolution window is larger than the padded 2 x 2 input"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  concat as "c" {\n    branch { }\n    branch { maxpool(2, stride = 2) }\n  }\n}\n',
     3, 3, "concat inputs must agree"),
    ('let x = [1, 2][5]\n', 1, 16, "index 5 is out of range"),
    ('let x = 1 +\n', 1, 12, "unexpected end of input"),
    ('let x = 2 ** 100\n', 1, 9, "limit of 2**53"),
    ("let x = 'a'\n", 1, 9, "strings use double quotes"),
    ('let n = 1\nlet s = "a{n +}"\n', 2, 15, "unexpected"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  relu\n  conv(8, 1) "c"\n}\n', 4, 14,
     'layer names follow `as`'),
    ('net {\n  if 1 = 1 { }\n}\n', 2, 8, "compare with `==`"),
    ('let a = [1, 2 3]\n', 1, 15, "separate arguments and list items with commas"),
    ('net {\n  relu\n  branch { }\n}\n', 3, 3, "a `branch` belongs inside a merge"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  relu as "x" inplace = false\n}\n', 3, 23,
     'keyword arguments go in the parentheses right after the op: relu(inplace = false) as "x"'),
    ('net {\n  input "data" [1, 3, 8, 8]\n  concat as "c" {\n    branch { conv(8, 1) top = "t" }\n  }\n}\n',
     4, 29, "keyword arguments go in the parentheses right after the op"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  relu as "x"\n  y = 1\n}\n', 4, 5, "bind names with `let`"),
    ('net {\n  input "data" [1, 3, 8, 8]\n  conv(8, 3) as "c\n}\n', 3, 17, "unclosed string"),
])
def test_errors_point_at_the_construct(tmp_path, source, line, column, fragment):
    error = error_of(tmp_path, source)
    assert fragment in error.message
    assert (error.span.line, error.span.column) == (line, column), error.render(source)


def test_huge_repeat_is_refused_not_attempted(tmp_path):
    error = error_of(tmp_path, 'net {\n  input "data" [1, 3, 4, 4]\n  for i in 0..1000000000 { relu }\n}\n')
    assert "more than 100000 elements" in error.message
    error = error_of(tmp_path, 'net {\n  input "data" [1, 3, 4, 4]\n  for i in 0..99999 { for j in 0..99999 { relu } }\n}\n')
    assert "exceeds 50000 layers" in error.message


def test_recursive_block_is_bounded(tmp_path):
    error = error_of(tmp_path, 'block f(n) { relu  f(n + 1) }\nnet { input "data" [1, 3, 4, 4]  f(0) }\n')
    assert "nests more than 64 calls" in error.message


@pytest.mark.parametrize("dialect, spelled", [("ceil_mode", "ceil_mode: false"), ("round_mode", "round_mode: FLOOR")])
def test_rendered_text_parses_against_the_caffe_schema(tmp_path, dialect, spelled):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 3, 17, 17]
          conv(8, [1, 7], pad = [0, 3], group = 1, bias = false) as "c"
          bn(eps = 0.001) as "c_bn", "c_scale"
          maxpool(3, stride = 2, round = "floor") as "p"
          avepool(global = true) as "g"
          fc(10) as "fc"
          softmax as "prob"
        }
    """)
    text = render(net, dialect)
    assert spelled in text
    message = parse_prototxt(text, dialect)
    assert [layer.name for layer in message.layer] == [layer.name for layer in net.layers]
    assert render(net, dialect) == text  # deterministic


def test_a_branch_can_fork_again_into_the_enclosing_merge(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 8, 5, 5]
          concat as "cat" {
            branch { conv(4, 1) as "a" }
            branch {
              conv(6, 1) as "r"
              branch { conv(2, [1, 3], pad = [0, 1]) as "r_1x3" }
              branch { conv(2, [3, 1], pad = [1, 0]) as "r_3x1" }
            }
          }
        }
    """)
    assert [l.name for l in net.layers] == ["a", "r", "r_1x3", "r_3x1", "cat"]
    assert layers(net)["cat"].bottoms == ("a", "r_1x3", "r_3x1")
    assert layers(net)["r_3x1"].bottoms == ("r",)


def test_cli_pool_dialects_match_codegen():
    from archc.cli import main as cli
    from archc.codegen.render import POOL_DIALECTS

    assert cli.POOL_DIALECTS == POOL_DIALECTS


def test_output_files_get_the_usual_permissions(tmp_path):
    import os
    from archc.cli.main import main

    output = tmp_path / "net.prototxt"
    (tmp_path / "m.arch").write_text('net { input "data" [1, 3, 4, 4]  relu }\n')
    old = os.umask(0o022)
    try:
        assert main([str(tmp_path / "m.arch"), "-o", str(output)]) == 0
    finally:
        os.umask(old)
    assert output.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.arch", "net.prototxt"]


def test_version_and_usage(capsys):
    from archc.cli.main import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("archc 0.")
    assert main([]) == 2
    assert "usage: archc FILE.arch" in capsys.readouterr().err


def test_file_help_lists_parameters_with_defaults_allowed_values_and_docs(capsys):
    from archc.cli.main import main

    assert main([str(REPO / "archs" / "resnet_v2.arch"), "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("usage: archc ")
    # argparse's layout: options in one column, their help in the next; ranges as [low, high]
    assert lines[0] == (f"usage: archc {REPO / 'archs' / 'resnet_v2.arch'} [--PARAM VALUE ...] "
                        f"[-o OUT] [--pool-rounding {{ceil_mode,round_mode}}]")
    assert lines[2:] == [
        "parameters:",
        "  --depth {101, 152, 269}  number of layers (default: 101)",
        "  --size INT               input side (pixels) (default: 224; in [32, 1024])",
        "  --classes INT            number of classes (default: 1000; in [1, 100000])"]


def test_file_help_wraps_long_docs_in_their_column(tmp_path, capsys):
    from archc.cli.main import main

    path = tmp_path / "m.arch"
    path.write_text('param a_rather_long_parameter_name: float = 0.5 "' + " ".join(["word"] * 30) + '"\n'
                    'param flag: bool = true\nnet { input "data" [1, 3, 4, 4] }\n')
    assert main([str(path), "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()[3:]
    assert lines[0] == "  --a_rather_long_parameter_name FLOAT"
    assert all(line.startswith(" " * 32) and len(line) <= 100 for line in lines[1:-1])
    assert lines[-2].endswith("word word (default: 0.5)")
    assert lines[-1] == "  --flag BOOL                   (default: true)"


def test_a_value_survives_an_op_that_does_not_rewrite_it_in_place(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 4, 6, 6]
          conv(4, 3, pad = 1) as "c1"
          sum as "res" { branch { } branch { relu(inplace = false) as "r1"  conv(4, 1) as "c2" } }
          relu as "res_relu"
          let rewritten = current
          conv(4, 1) as "c3"
          from rewritten
          conv(4, 1) as "c4"
        }
    """)
    by_name = layers(net)
    assert by_name["r1"].tops == ("r1",) and by_name["res"].bottoms == ("c1", "c2")
    assert by_name["c4"].bottoms == ("res",)  # taken after the in-place ReLU: current


@pytest.mark.parametrize("condition, equal", [
    ("[1, 2] == [1.0, 2]", True), ("[1, 2] == [true, 2]", False), ("[[0]] == [[false]]", False),
    ('{1: "a"} == {1: "a"}', True), ('{1: "a"} == {true: "a"}', False),
    ('{"k": [1]} == {"k": [true]}', False), ("[1, 2] != [true, 2]", True),
])
def test_equality_is_strict_about_types_inside_lists_and_tables(tmp_path, condition, equal):
    net = compile_text(tmp_path, f'net {{ input "data" [1, 3, 4, 4]  conv({condition} ? 1 : 2, 1) as "c" }}')
    assert net.layers[0].op.num_output == (1 if equal else 2)


def test_a_table_cannot_key_on_both_true_and_1(tmp_path):
    error = error_of(tmp_path, 'let t = {1: "one", true: "yes"}\nnet { input "data" [1, 3, 4, 4] }\n')
    assert "cannot have both 1 and true as keys" in error.message
    assert (error.span.line, error.span.column) == (1, 20)


def test_cli_options_take_equals_forms_and_refuse_to_overwrite_the_source(tmp_path, capsys):
    from archc.cli.main import main

    source = tmp_path / "m.arch"
    source.write_text('net { input "data" [1, 3, 8, 8]  maxpool(2, stride = 2, round = "floor") as "p" }\n')
    output = tmp_path / "m.prototxt"
    assert main([str(source), f"--output={output}", "--pool-rounding=round_mode"]) == 0
    assert "round_mode: FLOOR" in output.read_text()
    before = source.read_text()
    assert main([str(source), "-o", str(source)]) == 2
    assert "is the source file itself" in capsys.readouterr().err
    assert main([str(source), "-o="]) == 2
    assert "-o needs a value" in capsys.readouterr().err
    assert source.read_text() == before


def test_a_let_cannot_hide_a_file_parameter(tmp_path):
    text = 'param size: int = 8\nnet {\n  let size = 16\n  input "data" [1, 3, size, size]\n}\n'
    error = error_of(tmp_path, text, size=32)
    assert "'size' is a parameter of this file: a `let` of that name would hide --size" in error.message
    assert (error.span.line, error.span.column) == (3, 7)
    # a block's own parameter of that name is the block's business
    net = compile_text(tmp_path, 'param size: int = 8\nblock b(size) { conv(size, 1) as "c" }\n'
                                 'net { input "data" [1, 3, size, size]  b(4) }\n')
    assert net.layers[0].op.num_output == 4


def test_automatic_names_skip_names_the_program_gave(tmp_path):
    net = compile_text(tmp_path, 'net { input "data" [1, 3, 8, 8]  conv(4, 1) as "conv1"  conv(4, 1) }')
    assert [layer.name for layer in net.layers] == ["conv1", "conv2"]


def test_an_axis_a_tensor_lacks_is_named_as_such(tmp_path):
    error = error_of(tmp_path, 'net { input "data" [2, 8]  fc(4) as "f{current.h}" }')
    assert "a tensor of shape [2, 8] has no axis 'h': n, c, h, w name the axes of a 4-D tensor" in error.message


def test_an_error_inside_a_block_says_where_the_block_was_called(tmp_path):
    text = ('block inner(w) { conv(w, 1, stride = "2") as "c" }\n'
            'block outer(w) { inner(w) }\n'
            'net {\n  input "data" [1, 3, 8, 8]\n  outer(4)\n}\n')
    error = error_of(tmp_path, text)
    assert (error.span.line, error.span.column) == (1, 29)
    model = tmp_path / "model.arch"
    assert error.notes == (f"in block 'inner' called at {model}:2:18",
                           f"in block 'outer' called at {model}:5:3")


@pytest.mark.parametrize("name, text, message, where", [
    ("a long string literal", 'let x = "' + "a" * 5000 + '"\n', "string literal of 5002 characters", (1, 9)),
    ("deep if nesting", 'net {\n' + "if true {\n" * 150 + "}\n" * 151, "nested more than 100 levels deep", (101, 9)),
    ("deep tables", "let x = " + "{1: " * 150 + "1" + "}" * 150 + "\n", "nested more than 100 levels deep", (1, 409)),
    ("a long operator chain", "let x = " + "-" * 30_000 + "1\n", "more than 20000 tokens", (1, 20_006)),
    ("many statements", "".join(f"let a{i} = {i}\n" for i in range(6000)), "more than 20000 tokens", (5001, 1)),
])
def test_oversized_input_is_refused_before_parsing(tmp_path, name, text, message, where):
    error = error_of(tmp_path, text)
    assert message in error.message, name
    assert (error.span.line, error.span.column) == where, name


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "huge.arch"
    path.write_text("# padding\n" * 20_000)
    with pytest.raises(ArchError, match="is larger than 128 KiB, the limit for an .arch file"):
        dsl.compile_file(str(path), {})


def test_an_op_with_several_tops_leaves_a_list_cursor(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 8, 4, 4]
          slice(points = [3, 5]) as "cut"
          let a, b, c = current
          from [c, a]
          concat as "joined"
          maxpool(2, stride = 2, top = ["pooled", "mask"]) as "pool"
          let pooled, mask = current
          from pooled
          relu as "r"
        }
    """)
    layers = {layer.name: layer for layer in net.layers}
    assert layers["cut"].tops == ("cut_1", "cut_2", "cut_3")
    assert layers["joined"].bottoms == ("cut_3", "cut_1")
    assert layers["pool"].tops == ("pooled", "mask")
    assert layers["r"].bottoms == ("pooled",)


def test_blocks_return_and_loops_carry_several_tensors(tmp_path):
    net = compile_text(tmp_path, """
        block step(n) {
          from [input[1], input[0]]   # swap the pair
          let swapped = current
          from swapped[0]
          relu(inplace = false) as "r{n}"
          from [current, swapped[1]]
        }
        net {
          input "data" [1, 4, 4, 4]
          slice(points = [2], top = ["x", "y"]) as "cut"
          for i in 0..3 { step(i) }
          sum as "out" { branch { } }
        }
    """)
    layers = {layer.name: layer for layer in net.layers}
    assert [layers[f"r{i}"].bottoms for i in range(3)] == [("y",), ("x",), ("r0",)]
    assert layers["out"].bottoms == ("r2", "r1")


def test_scale_and_bias_read_a_list_cursor_as_the_data_and_its_operand(tmp_path, caffe):
    net = compile_text(tmp_path, """
        net {
          input "gate" [2, 8]
          let gate = current
          input "data" [2, 8, 4, 4]
          let x = current
          avepool(global = true) as "pool"
          reshape([0, 0]) as "flat"
          from [x, current]
          scale(axis = 0, bias = false, top = "scaled") as "excite"
          let scaled = current
          from [scaled, gate]
          bias(axis = 0) as "shift"
        }
    """)
    ops = layers(net)
    assert (ops["excite"].bottoms, ops["excite"].tops) == (("data", "flat"), ("scaled",))
    assert (ops["excite"].op.axis, ops["excite"].op.bias_term) == (0, False)
    # in place on the data, as scale and bias alone
    assert (ops["shift"].bottoms, ops["shift"].tops) == (("scaled", "gate"), ("scaled",))
    text = render(net)
    assert render(import_net(text, "rendered.prototxt")) == text
    assert_caffe_allocates_the_inferred_shapes(net, text)


@pytest.mark.parametrize("text, message", [
    ('slice(points = [2])\n  conv(4, 1)', "'conv' applies to one tensor, and the cursor holds 2"),
    ('slice(points = [1, 2])\n  bias', "'bias' reads at most 2 tensors, [x, operand]"),
    ('crop', "'crop' reads 2 tensors, [data, reference], and the cursor holds 1: list them with "
             "`from [data, reference]` before it"),
    ('split(3, top = ["a", "b"])', "'split' writes 3 blobs here: give `top` a list of 3 names"),
    ('sum as "s"', "'sum' merges branches, or the tensors of a list cursor"),
    ('slice(points = [2], top = "x")', "'slice' writes 2 blobs here: give `top` a list of 2 names"),
    ('relu(top = ["a", "b"])', "'relu' writes one blob: give `top` one name"),
    ('slice(points = [2])\n  let a, b, c = current', "`let` with 3 names unpacks a list of 3 values, got a list of 2"),
    ('from [1, 2]', "`from` takes a tensor (e.g. a name bound with `let x = current`) or a list of them"),
])
def test_several_tensors_mistakes(tmp_path, text, message):
    error = error_of(tmp_path, 'net {\n  input "data" [1, 4, 4, 4]\n  ' + text + '\n}\n')
    assert message in error.message


def _assert_round_trip_and_caffe(net) -> None:
    text = render(net)
    assert render(import_net(text, "rendered.prototxt")) == text
    assert_caffe_allocates_the_inferred_shapes(net, text)


def test_split_silence_and_parameter_route_blobs(tmp_path, caffe):
    net = compile_text(tmp_path, """
        net {
          input "data" [2, 6, 8, 8]
          split as "fork"                          # two copies: fork_1, fork_2
          let a, b = current
          from a
          split(3, top = ["x", "y", "z"]) as "three"
          let x, y, z = current
          from [y, z] silence as "quiet"           # writes nothing: the cursor stays [y, z]
          concat as "joined"
          from b
          parameter(shape = [6]) as "gain"         # reads nothing: the cursor only follows it
          from [b, current] scale(bias = false, top = "scaled") as "scaled"
        }
    """)
    ops = layers(net)
    assert (ops["fork"].bottoms, ops["fork"].tops) == (("data",), ("fork_1", "fork_2"))
    assert (ops["three"].bottoms, ops["three"].tops) == (("fork_1",), ("x", "y", "z"))
    assert (ops["quiet"].bottoms, ops["quiet"].tops) == (("y", "z"), ())
    assert ops["joined"].bottoms == ("y", "z")
    assert (ops["gain"].bottoms, ops["gain"].tops, ops["gain"].op.shape) == ((), ("gain",), (6,))
    assert ops["scaled"].bottoms == ("fork_2", "gain")
    _assert_round_trip_and_caffe(net)


def test_crop_batch_reindex_and_filter_read_inputs_in_their_roles(tmp_path, caffe):
    net = compile_text(tmp_path, """
        net {
          input "data" [2, 6, 12, 12]
          let data = current
          input "reference" [2, 6, 8, 8]
          let reference = current
          input "indices" [3]
          let indices = current
          input "selector" [2, 1]
          let selector = current
          from [data, reference] crop(offset = [1, 3]) as "cropped"
          from [current, indices] batch_reindex as "gathered"
          from [data, selector] filter as "kept"                 # one data tensor: one top
          from [data, reference, selector] filter(top = ["kept_data", "kept_reference"]) as "both"
          let kept_data, kept_reference = current
        }
    """)
    ops = layers(net)
    assert (ops["cropped"].bottoms, ops["cropped"].op.offset) == (("data", "reference"), (1, 3))
    assert (ops["gathered"].bottoms, ops["gathered"].tops) == (("cropped", "indices"), ("gathered",))
    assert (ops["kept"].bottoms, ops["kept"].tops) == (("data", "selector"), ("kept",))
    assert ops["both"].tops == ("kept_data", "kept_reference")
    _assert_round_trip_and_caffe(net)


def test_recurrent_layers_read_x_and_cont_and_expose_their_state(tmp_path, caffe):
    net = compile_text(tmp_path, """
        net {
          input "x" [3, 2, 5]
          let x = current
          input "cont" [3, 2]
          let cont = current
          input "static" [2, 4]
          let static = current
          input "h0" [1, 2, 4]
          let h0 = current
          input "c0" [1, 2, 4]
          let c0 = current
          input "gates" [1, 2, 16]
          let gates = current
          input "cont_t" [1, 2]
          let cont_t = current
          from [x, cont] lstm(4) as "lstm"
          from [x, cont, static] rnn(4) as "rnn"
          from [x, cont, h0, c0] lstm(4, expose_hidden = true) as "stateful"
          let y, h, c = current
          from [c, gates, cont_t] lstm_unit(top = ["c_next", "h_next"]) as "step"
        }
    """)
    ops = layers(net)
    assert (ops["lstm"].tops, ops["rnn"].bottoms) == (("lstm",), ("x", "cont", "static"))
    assert ops["stateful"].tops == ("stateful_1", "stateful_2", "stateful_3")
    assert (ops["step"].bottoms, ops["step"].tops) == (("stateful_3", "gates", "cont_t"),
                                                       ("c_next", "h_next"))
    _assert_round_trip_and_caffe(net)


def test_elementwise_ops_write_their_input_where_the_gradient_allows(tmp_path):
    net = compile_text(tmp_path, """
        net {
          input "data" [1, 3, 8, 8]
          tanh as "t"
          prelu(shared = true) as "p"
          absval as "a"
          power(2, shift = 1) as "sq"
          log(base = 10, inplace = true) as "l"
          clip(0, 6) as "c"
        }
    """)
    tops = {layer.name: layer.tops[0] for layer in net.layers}
    assert tops == {"t": "data", "p": "data", "a": "a", "sq": "sq", "l": "sq", "c": "c"}
    ops = layers(net)
    assert (ops["p"].op.channel_shared, ops["sq"].op.power, ops["sq"].op.shift) == (True, 2.0, 1.0)
    assert (ops["l"].op.base, ops["c"].op.min, ops["c"].op.max) == (10.0, 0.0, 6.0)
    error = error_of(tmp_path, 'net { input "data" [1, 3, 8, 8]\n log(base = 1) }')
    assert "log base must be -1 (e) or positive, finite and not 1" in error.message
