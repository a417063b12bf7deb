"""`archc diff`: crafted differences on the reference files, equivalent spellings, exit statuses."""
from __future__ import annotations

import pytest

from archc.analysis.diff import diff_texts
from archc.cli.cmd_diff import main as diff_main

RESNEXT = "resnext/deploy_resnext50-32x4d.prototxt"
INCEPTION_V3 = "inception/deploy_inception-v3.prototxt"


def edited(text: str, old: str, new: str, count: int = 1) -> str:
    assert text.count(old) >= count, f"{old!r} not found"
    return text.replace(old, new, count)


@pytest.fixture
def run_diff(tmp_path, capsys):
    """Write two texts to files, diff them, return (exit status, stdout lines)."""
    def run(text_a: str, text_b: str):
        path_a, path_b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
        path_a.write_text(text_a)
        path_b.write_text(text_b)
        status = diff_main([str(path_a), str(path_b)])
        captured = capsys.readouterr()
        run.stderr = captured.err
        return status, captured.out.splitlines()
    return run


@pytest.fixture(scope="module")
def resnext(reference_cls) -> str:
    return (reference_cls / RESNEXT).read_text()


def test_every_reference_file_equals_itself(reference_cls, capsys):
    for path in sorted(reference_cls.glob("*/*.prototxt")):
        assert diff_main([str(path), str(path)]) == 0, path
        out = capsys.readouterr().out.splitlines()
        assert len(out) == 1 and out[0].startswith("no differences"), out


def test_changed_group_names_the_layer(resnext, run_diff):
    status, out = run_diff(resnext, edited(resnext, "group: 32", "group: 16"))
    assert status == 1
    assert out[0] == "layer 'resx1_conv2': convolution_param.group: 32 in A, 16 in B"
    assert len(out) == 2  # the difference and the count


def test_renamed_layer_is_missing_on_one_side_and_extra_on_the_other(resnext, run_diff):
    status, out = run_diff(resnext, edited(resnext, 'name: "resx3_conv1_bn"', 'name: "resx3_conv1_batchnorm"'))
    assert status == 1
    assert out[:-1] == ["layer 'resx3_conv1_bn': only in A (BatchNorm)",
                        "layer 'resx3_conv1_batchnorm': only in B (BatchNorm)"]


def test_swapped_eltwise_operands_are_equal(resnext, run_diff):
    swapped = edited(resnext, 'bottom: "resx1_match_conv"\n  bottom: "resx1_conv3"',
                     'bottom: "resx1_conv3"\n  bottom: "resx1_match_conv"')
    assert run_diff(resnext, swapped)[0] == 0


def test_swapped_eltwise_operands_keep_their_coefficients(run_diff):
    net = ('input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
           'input: "y" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
           'layer { name: "s" type: "Eltwise" bottom: "%s" bottom: "%s" top: "s" '
           'eltwise_param { coeff: %s coeff: %s } }')
    assert run_diff(net % ("x", "y", 1, 0.17), net % ("y", "x", 0.17, 1))[0] == 0
    status, out = run_diff(net % ("x", "y", 1, 0.17), net % ("y", "x", 1, 0.17))
    assert status == 1 and out[0].startswith("layer 's': eltwise_param.coeff")


def test_swapped_concat_operands_differ(reference_cls, run_diff):
    text = (reference_cls / INCEPTION_V3).read_text()
    swapped = edited(text, 'bottom: "inception_a1_1x1"\n  bottom: "inception_a1_5x5"',
                     'bottom: "inception_a1_5x5"\n  bottom: "inception_a1_1x1"')
    status, out = run_diff(text, swapped)
    assert status == 1
    assert out[0].startswith("layer 'inception_a1_output': bottoms ['inception_a1_1x1', 'inception_a1_5x5'")


def test_equivalent_spellings_are_equal(resnext, run_diff):
    respelled = edited(resnext, "ceil_mode: false", "round_mode: FLOOR")
    respelled = edited(respelled, 'input: "data"\ninput_shape {\n  dim: 1\n  dim: 3\n  dim: 224\n  dim: 224\n}',
                       'layer { name: "input" type: "Input" top: "data" '
                       'input_param { shape { dim: 1 dim: 3 dim: 224 dim: 224 } } }')
    respelled = edited(respelled, "kernel_size: 7\n    stride: 2\n    pad: 3",
                       "kernel_h: 7 kernel_w: 7 stride_h: 2 stride_w: 2 pad: 3 pad: 3 group: 1 "
                       "weight_filler { type: \"msra\" } engine: CAFFE")
    respelled = edited(respelled, "use_global_stats: true", "", count=3)
    respelled = edited(respelled, 'type: "Eltwise"', 'type: "Eltwise"  param { lr_mult: 0 }')
    respelled = edited(respelled, "operation: SUM", "operation: SUM coeff: 1 coeff: 1")
    status, out = run_diff(resnext, respelled)
    assert (status, len(out)) == (0, 1), out


def test_changed_input_size_is_reported(resnext, run_diff):
    status, out = run_diff(resnext, edited(resnext, "dim: 224\n  dim: 224", "dim: 320\n  dim: 320"))
    assert status == 1
    assert out[0] == "input 'data': shape 1 x 3 x 224 x 224 in A, 1 x 3 x 320 x 320 in B"


def test_fields_outside_the_ir_are_compared(resnext, run_diff):
    changed = edited(resnext, "use_global_stats: true", "use_global_stats: true moving_average_fraction: 0.9")
    status, out = run_diff(resnext, changed)
    assert status == 1
    assert out[0] == "layer 'conv1_bn': batch_norm_param.moving_average_fraction: 0.999 in A, 0.9 in B"


def test_reordered_in_place_layers_differ(run_diff):
    head = 'input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
    scale = 'layer { name: "sc" type: "Scale" bottom: "x" top: "x" }\n'
    relu = 'layer { name: "r" type: "ReLU" bottom: "x" top: "x" }\n'
    status, out = run_diff(head + scale + relu, head + relu + scale)
    assert status == 1
    assert out[0].startswith("layer 'sc': reads blob 'x' at another point of its in-place chain")


def test_unreadable_inputs_exit_2(resnext, tmp_path, run_diff, capsys):
    assert diff_main([str(tmp_path / "missing.prototxt"), str(tmp_path / "missing.prototxt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    status, _ = run_diff(resnext, edited(resnext, "num_output: 64", "num_outputs: 64"))
    assert status == 2
    assert 'no field named "num_outputs"' in run_diff.stderr


def test_diff_texts_api_for_golden_tests(resnext):
    assert diff_texts(resnext, resnext) == []
    differences = diff_texts(resnext, edited(resnext, "group: 32", "group: 16"))
    assert [str(d) for d in differences] == ["layer 'resx1_conv2': convolution_param.group: 32 in A, 16 in B"]


SMALL = ('input: "x" input_shape {{ dim: 1 dim: 2 dim: 3 dim: 3 }}\n'
         '{state}'
         'layer {{ name: "c1" type: "Convolution" bottom: "x" top: "c1" {param1}'
         'convolution_param {{ num_output: 2 kernel_size: 1 }} }}\n'
         'layer {{ name: "c2" type: "Convolution" bottom: "x" top: "c2" {param2}'
         'convolution_param {{ num_output: 2 kernel_size: 1 }} }}\n'
         'layer {{ name: "bn" type: "BatchNorm" bottom: "c1" top: "c1" {phase}}}\n'
         'layer {{ name: "r" type: "ReLU" bottom: "c2" top: "c2" {include}}}\n')


def small(**parts: str) -> str:
    return SMALL.format(**{"state": "", "param1": "", "param2": "", "phase": "", "include": "",
                           **parts})


@pytest.mark.parametrize("changed, detail", [
    # a layer's own phase: TRAIN runs it in training mode (batch statistics) in a deploy net
    ({"phase": "phase: TRAIN "}, "phase: TEST in A, TRAIN in B"),
    # named parameter blobs are shared between the layers naming them
    ({"param1": 'param { name: "w" } ', "param2": 'param { name: "w" } '}, "param[0].name"),
    # the net's stages decide which layers a deploy net has
    ({"state": 'state { stage: "deploy" }\n', "include": 'include { stage: "deploy" } '},
     "only in B"),
])
def test_differences_that_change_what_caffe_computes_are_reported(run_diff, changed, detail):
    status, out = run_diff(small(include='include { stage: "deploy" } '
                                 if "state" in changed else ""), small(**changed))
    assert status == 1 and any(detail in line for line in out), out


def test_training_multipliers_stay_ignored_and_layers_of_other_stages_stay_out(run_diff):
    multipliers = 'param { lr_mult: 1 decay_mult: 1 } '
    assert run_diff(small(), small(param1=multipliers, phase="phase: TEST "))[0] == 0
    # a param name no other layer gives shares nothing
    assert run_diff(small(), small(param1='param { name: "cw" lr_mult: 1 } '))[0] == 0
    assert run_diff(small(include="exclude { stage: \"train\" } "),
                    small(state='state { stage: "deploy" }\n'))[0] == 0
    not_stage = small(state='state { stage: "deploy" }\n',
                      include='include { not_stage: "deploy" } ')
    status, out = run_diff(small(), not_stage)
    assert status == 1 and out[0] == "layer 'r': only in A (ReLU)"


@pytest.mark.parametrize("operation, coefficients", [("SUM", "coeff: 1"), ("MAX", "coeff: 1 coeff: 1"),
                                                     ("PROD", "coeff: 1 coeff: 1")])
def test_coefficients_caffe_refuses_are_not_normalised_away(run_diff, operation, coefficients):
    net = ('input: "x" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
           'input: "y" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
           'layer { name: "s" type: "Eltwise" bottom: "x" bottom: "y" top: "s" '
           'eltwise_param { operation: %s %s } }')
    status, out = run_diff(net % (operation, ""), net % (operation, coefficients))
    assert status == 1 and out[0].startswith("layer 's': eltwise_param.coeff")


def test_an_arch_file_with_its_parameters_is_compared_as_compiled(reference_cls, capsys):
    from conftest import REPO
    reference = str(reference_cls / "vgg" / "deploy_vgg16bn-pytorch.prototxt")
    vgg = str(REPO / "archs" / "vgg.arch")
    assert diff_main([vgg, "--depth", "16", "--bn=true", reference]) == 0
    assert capsys.readouterr().out.startswith("no differences: 65 layers")
    # the parameters belong to the model they follow: here B's, and A is plain VGG-16
    assert diff_main([reference, vgg, "--depth", "16"]) == 1
    assert "only in A (BatchNorm)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["a.prototxt"], "diff compares two nets (1 given: a.prototxt)"),
    (["a", "b", "c"], "diff compares two nets (3 given: a, b, c)"),
    (["--depth", "3", "a", "b"], "--depth comes before any MODEL"),
    (["a.arch", "--depth"], "--depth needs a value"),
])
def test_models_and_their_parameters_are_read_in_order(argv, message, capsys):
    assert diff_main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_reader_that_stops_early_still_gets_status_1(resnext, tmp_path):
    import subprocess
    import sys
    a, b = tmp_path / "a.prototxt", tmp_path / "b.prototxt"
    a.write_text(resnext)
    b.write_text(edited(resnext, "group: 32", "group: 16", count=16))
    # the reader is gone before the differences are written (as `| head` can be)
    script = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'archc', 'diff', "
              f"{str(a)!r}, {str(b)!r}], stdout=subprocess.PIPE); "
              "p.stdout.close(); sys.exit(p.wait())")
    assert subprocess.run([sys.executable, "-c", script]).returncode == 1


TWO_INPUTS = ('input: "x" input_shape { dim: 1 dim: 2 dim: 6 dim: 6 }\n'
              'input: "y" input_shape { dim: 1 dim: 2 dim: 6 dim: 6 }\n')


@pytest.mark.parametrize("operation, name", [("SUM", "the sum"), ("PROD", "the product"),
                                             ("MAX", "the maximum")])
def test_operand_order_is_explained_for_each_operation(run_diff, operation, name):
    layer = ('layer { name: "e" type: "Eltwise" bottom: "%s" bottom: "%s" top: "e" '
             'eltwise_param { operation: ' + operation + ' } }')
    status, out = run_diff(TWO_INPUTS + layer % ("x", "y"), TWO_INPUTS + layer % ("x", "x"))
    assert status == 1 and out[:1] == [f"layer 'e': bottoms ['x', 'y'] in A, ['x', 'x'] in B "
                                   f"(operand order ignored: {name} is commutative)"]


def test_differences_are_reported_in_the_files_spelling(run_diff):
    conv = ('layer { name: "c" type: "Convolution" bottom: "x" top: "c" '
            'convolution_param { num_output: 2 %s } }')
    square = TWO_INPUTS + conv % "kernel_size: 3 stride: 2"
    status, out = run_diff(square, TWO_INPUTS + conv % "kernel_size: 3 stride: 1")
    assert status == 1 and out[:1] == ["layer 'c': convolution_param.stride: 2 in A, 1 in B"]
    status, out = run_diff(square, TWO_INPUTS + conv % "kernel_h: 1 kernel_w: 3 stride: 2")
    assert status == 1 and out[:1] == ["layer 'c': convolution_param.kernel_size: 3 in A, "
                                   "kernel_h 1, kernel_w 3 in B"]
    # the same values in either spelling are no difference
    assert run_diff(square, TWO_INPUTS + conv % "kernel_h: 3 kernel_w: 3 stride_h: 2 stride_w: 2")[0] == 0


def test_layers_of_any_caffe_type_are_compared_field_by_field(run_diff):
    """Caffe's whole schema is read, training layers' parameters included, so a training net
    diffs too."""
    data = ('layer { name: "d" type: "Data" top: "x" top: "label" '
            'data_param { source: "train_lmdb" backend: LMDB batch_size: %d } }\n')
    status, out = run_diff(TWO_INPUTS + data % 64, TWO_INPUTS + data % 32)
    assert status == 1 and out[:1] == ["layer 'd': data_param.batch_size: 64 in A, 32 in B"]
    assert run_diff(TWO_INPUTS + data % 64, TWO_INPUTS + data % 64)[0] == 0
