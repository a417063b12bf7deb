"""Prototxt -> IR import: Caffe's spellings and defaults normalised, positions kept, clear errors."""
from __future__ import annotations

import pytest

from archc.codegen.parse import REFUSED_TYPES, import_net, top_level_fields
from archc.ir import ArchError, infer_shapes

HEADER = 'input: "data"\ninput_shape { dim: 1 dim: 3 dim: 32 dim: 32 }\n'


def net_of(body: str, header: str = HEADER):
    return import_net(header + body, "t.prototxt")


def conv(extra: str, name: str = "c", bottom: str = "data") -> str:
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: 8 {extra} }} }}\n')


def test_every_reference_file_imports_and_infers(reference_cls):
    for path in sorted(reference_cls.glob("*/*.prototxt")):
        net = import_net(path.read_text(), str(path))
        shaped = infer_shapes(net)
        assert shaped.layers[-1].output == (1, 1000), path


def test_resnext50_shapes(reference_cls):
    path = reference_cls / "resnext" / "deploy_resnext50-32x4d.prototxt"
    shaped = infer_shapes(import_net(path.read_text(), str(path)))
    assert shaped.blobs["pool1"] == (1, 64, 56, 56)  # floor rounding via `ceil_mode: false`
    assert shaped.blobs["pool_ave"] == (1, 2048, 1, 1)
    assert shaped.blobs["prob"] == (1, 1000)


def test_kernel_spellings_are_one_op():
    square = net_of(conv("kernel_size: 3 stride: 2 pad: 1")).layers[0].op
    split = net_of(conv("kernel_h: 3 kernel_w: 3 stride_h: 2 stride_w: 2 pad_h: 1 pad_w: 1")).layers[0].op
    repeated = net_of(conv("kernel_size: 3 kernel_size: 3 stride: 2 pad: 1 pad: 1")).layers[0].op
    assert square == split == repeated
    assert (square.kernel_h, square.stride_w, square.pad_h, square.group) == (3, 2, 1, 1)


def test_rectangular_kernel_and_defaults():
    op = net_of(conv("kernel_h: 1 kernel_w: 7 pad_h: 0 pad_w: 3 bias_term: false")).layers[0].op
    assert (op.kernel_h, op.kernel_w, op.pad_h, op.pad_w, op.stride_h) == (1, 7, 0, 3, 1)
    assert op.bias_term is False


def test_both_kernel_spellings_at_once_is_an_error():
    with pytest.raises(ArchError, match="kernel_size or kernel_h/kernel_w, not both"):
        net_of(conv("kernel_size: 3 kernel_h: 3 kernel_w: 3"))


def test_input_forms_agree():
    body = conv("kernel_size: 1")
    by_shape = net_of(body)
    by_dim = net_of(body, 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 32\ninput_dim: 32\n')
    by_layer = net_of(body, 'layer { name: "data" type: "Input" top: "data" '
                            'input_param { shape { dim: 1 dim: 3 dim: 32 dim: 32 } } }\n')
    assert by_shape.inputs == by_dim.inputs == by_layer.inputs == {"data": (1, 3, 32, 32)}
    def wiring(net):
        return [(layer.name, layer.op, layer.bottoms, layer.tops) for layer in net.layers]
    assert wiring(by_shape) == wiring(by_dim) == wiring(by_layer)


def test_pooling_rounding_dialects_agree():
    pool = 'layer {{ name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param {{ kernel_size: 3 stride: 2 {} }} }}'
    floor_ceil_mode = net_of(pool.format("ceil_mode: false")).layers[0].op
    floor_round_mode = net_of(pool.format("round_mode: FLOOR")).layers[0].op
    ceil_default = net_of(pool.format("")).layers[0].op
    assert floor_ceil_mode == floor_round_mode
    assert (floor_ceil_mode.rounding, ceil_default.rounding) == ("floor", "ceil")


def test_layer_spans_point_at_the_layer_keyword():
    text = HEADER + "# a comment with layer { braces }\n" + conv("kernel_size: 1") + "\n  layer {\n" \
        + conv("kernel_size: 1", name="d", bottom="c")[len("layer {"):]
    net = import_net(text, "t.prototxt")
    assert [(l.span.line, l.span.column) for l in net.layers] == [(4, 1), (6, 3)]
    assert net.input_span.line == 1


def test_top_level_fields_skip_strings_and_nesting():
    found = top_level_fields('name: "layer {"\nlayer { name: "x" layer_like { } }\n', "f")
    assert [(s.line, s.column) for s in found["layer"]] == [(2, 1)]
    assert "layer_like" not in found


def test_unsupported_type_names_the_layer_and_line():
    text = HEADER + 'layer {\n  name: "fused"\n  type: "Axpy"\n  bottom: "data"\n  top: "fused"\n}\n'
    with pytest.raises(ArchError, match="'fused' has type 'Axpy', which archc does not support") as caught:
        import_net(text, "t.prototxt")
    assert caught.value.span.line == 3


def test_training_only_layers_are_skipped():
    body = conv("kernel_size: 1") + 'layer { name: "drop" type: "Dropout" bottom: "c" top: "c" include { phase: TRAIN } }'
    assert [layer.name for layer in net_of(body).layers] == ["c"]


def test_missing_num_output_is_an_error():
    with pytest.raises(ArchError, match="num_output is required"):
        net_of('layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" }')


def test_missing_input_is_an_error():
    with pytest.raises(ArchError, match="declares no input"):
        net_of(conv("kernel_size: 1"), header="")


def test_float_fields_read_back_as_written():
    body = ('layer { name: "bn" type: "BatchNorm" bottom: "data" top: "data" batch_norm_param { eps: 0.001 } }'
            'layer { name: "s" type: "Eltwise" bottom: "data" bottom: "data" top: "s" '
            'eltwise_param { coeff: 1 coeff: 0.17 } }')
    bn, eltwise = net_of(body).layers
    assert bn.op.eps == 0.001 and bn.op.use_global_stats is True
    assert eltwise.op.coeff == (1.0, 0.17)


POOL = 'layer {{ name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param {{ {} }} }}'


@pytest.mark.parametrize("body, message", [
    # Each of these makes Caffe abort the process; the importer names the problem instead.
    (POOL.format("pool: MAX kernel_size: 2 pad_h: 1"), "give both pad_h and pad_w"),
    (POOL.format("pool: AVE global_pooling: true stride: 2"), "global pooling takes no stride or pad"),
    (POOL.format("pool: AVE global_pooling: true pad: 1"), "global pooling takes no stride or pad"),
    (conv("kernel_size: 1") + 'layer { name: "cat" type: "Concat" bottom: "c" bottom: "data" '
     'top: "cat" concat_param { axis: 1 concat_dim: 1 } }', "give axis or concat_dim, not both"),
    (conv("kernel_size: 1").replace('top: "c"', 'top: "c" top: "d"'), "has 2 top blobs"),
    ('layer { name: "r" type: "ReLU" bottom: "data" }', "has 0 top blobs"),
    # Caffe would run this layer in training mode, or share these weights: archc models neither.
    (conv("kernel_size: 1").replace('type: "Convolution"', 'type: "Convolution" phase: TRAIN'),
     "sets phase: TRAIN"),
    (conv("kernel_size: 1", "a").replace('top: "a"', 'top: "a" param { name: "w" }')
     + conv("kernel_size: 1", "b").replace('top: "b"', 'top: "b" param { name: "w" }'),
     "'b' shares weights with layer 'a'"),
    ('layer { name: "r" type: "ReLU" bottom: "data" top: "r" include { phase: TEST } '
     'exclude { phase: TRAIN } }', "both include and exclude rules"),
    (conv("kernel_size: 1 bias_term: false").replace('top: "c"', 'top: "c" param { } param { }'),
     "gives 2 param specs for its 1 parameter blob"),
    ('layer { name: "s" type: "Scale" bottom: "data" bottom: "data" top: "s" param { } '
     'scale_param { axis: 0 } }', "gives 1 param specs for its 0 parameter blob"),
    (conv("kernel_size: 1").replace('top: "c"', 'top: "c" param { name: "w" } param { name: "w" }'),
     "names one param blob twice"),
    ('layer { name: "r" type: "ReLU" bottom: "data" top: "r" propagate_down: true '
     'propagate_down: false }', "gives 2 propagate_down values for 1 bottom"),
    ('layer { name: "r" type: "ReLU" bottom: "data" top: "r" loss_weight: 1 loss_weight: 2 }',
     "gives 2 loss_weight values for 1 top"),
    ('layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }',
     "declares input 'data' a second time"),
    ('layer { name: "in" type: "Input" bottom: "data" top: "y" input_param { shape { dim: 1 } } }',
     "takes no bottom blobs"),
])
def test_nets_caffe_would_abort_on_or_run_differently_are_refused(body, message):
    with pytest.raises(ArchError, match=message):
        infer_shapes(net_of(body))


def test_an_input_dimension_below_1_is_refused():
    with pytest.raises(ArchError, match=r"input 'data' has shape \(1, 3, -1, 32\)"):
        net_of(conv("kernel_size: 1"), header='input: "data"\ninput_shape { dim: 1 dim: 3 dim: -1 dim: 32 }\n')


def test_the_files_stages_choose_layers_as_pycaffe_does():
    body = ('state { stage: "deploy" }\n' + conv("kernel_size: 1")
            + 'layer { name: "r" type: "ReLU" bottom: "c" top: "c" include { stage: "deploy" } }\n'
            + 'layer { name: "d" type: "Dropout" bottom: "c" top: "c" exclude { stage: "deploy" } }\n'
            + 'layer { name: "s" type: "Softmax" bottom: "c" top: "c" include { not_stage: "train" } }\n')
    net = net_of(body)
    assert [layer.name for layer in net.layers] == ["c", "r", "s"]
    assert net.layers[2].in_place  # Caffe runs Softmax in place
    infer_shapes(net)


def test_pooled_size_is_computed_in_float32_as_caffe_does():
    # (16777220 - 3) / 2 = 8388608.5 exactly, but 16777217 is not a float32: Caffe divides
    # 16777216 by 2 and gets 8388608, so its ceil gives 8388609 windows, not 8388610.
    header = 'input: "data"\ninput_shape { dim: 1 dim: 1 dim: 16777220 dim: 1 }\n'
    body = POOL.format("pool: MAX kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1")
    assert infer_shapes(net_of(body, header)).blobs["p"] == (1, 1, 8388609, 1)


def test_an_in_place_rewrite_after_another_reader_is_refused():
    # Caffe would split 'c' between the pooling and the ReLU, making the ReLU a second producer
    body = (conv("kernel_size: 1")
            + 'layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX kernel_size: 1 } }\n'
            + 'layer { name: "r" type: "ReLU" bottom: "c" top: "c" }\n'
            + 'layer { name: "e" type: "Eltwise" bottom: "c" bottom: "p" top: "e" }\n')
    with pytest.raises(ArchError, match="'r' rewrites blob 'c' in place after layer 'p' read it") as error:
        infer_shapes(net_of(body))
    assert error.value.span.line == 5  # header 2 lines, conv, pooling, then the ReLU


def test_a_window_overhanging_by_less_than_a_stride_gives_one_output_as_in_caffe():
    # Caffe's C division truncates: (4 - 5) / 2 + 1 = 1, and the overhang reads zeros
    net = net_of(conv("kernel_size: 5 stride: 2"), header=HEADER.replace("dim: 32 dim: 32", "dim: 4 dim: 4"))
    assert infer_shapes(net).blobs["c"] == (1, 8, 1, 1)
    with pytest.raises(ArchError, match="the 5 x 5 convolution window is larger than the padded 4 x 4"):
        infer_shapes(net_of(conv("kernel_size: 5"), header=HEADER.replace("dim: 32 dim: 32", "dim: 4 dim: 4")))


def test_an_im2col_buffer_beyond_a_caffe_blob_is_refused():
    header = 'input: "data"\ninput_shape { dim: 1 dim: 64 dim: 1024 dim: 1024 }\n'
    with pytest.raises(ArchError, match=r"im2col buffer \(3288334336 values\) exceeds"):
        infer_shapes(net_of(conv("kernel_size: 7 pad: 3"), header))


def test_a_pooling_window_starting_past_the_input_is_refused():
    # ceil rounding, stride 2 over kernel 1, no padding: the 5th window would start at 8
    header = 'input: "data"\ninput_shape { dim: 1 dim: 1 dim: 8 dim: 8 }\n'
    with pytest.raises(ArchError, match="the last pooling window would start past the input"):
        infer_shapes(net_of(POOL.format("pool: MAX kernel_size: 1 stride: 2"), header))
    floor = POOL.format("pool: MAX kernel_size: 1 stride: 2 round_mode: FLOOR")
    assert infer_shapes(net_of(floor, header)).blobs["p"] == (1, 1, 4, 4)


def test_the_pooling_stride_is_a_float32_too():
    # Caffe divides 16777216 by float(16777217) = 16777216: 1, so 2 windows, the second starting
    # past the input (pycaffe allocates 1 x 2 and pools nothing there): refused, not miscounted
    header = 'input: "data"\ninput_shape { dim: 1 dim: 1 dim: 1 dim: 16777217 }\n'
    body = POOL.format("pool: MAX kernel_h: 1 kernel_w: 1 stride_h: 1 stride_w: 16777217 round_mode: FLOOR")
    with pytest.raises(ArchError, match="16777217 wide, stride 16777217"):
        infer_shapes(net_of(body, header))


def test_an_input_layer_after_a_reader_of_its_blob_is_refused():
    body = ('layer { name: "r" type: "ReLU" bottom: "x" top: "r" }\n'
            'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }\n')
    with pytest.raises(ArchError, match="provides 'x' after a layer already read it"):
        net_of(body)
    with pytest.raises(ArchError, match="an input is declared twice"):
        net_of(conv("kernel_size: 1"), header=HEADER + HEADER)


@pytest.mark.parametrize("caffe_type", sorted(REFUSED_TYPES))
def test_training_only_and_python_layers_are_refused_with_the_reason(caffe_type):
    text = HEADER + f'layer {{\n  name: "x"\n  type: "{caffe_type}"\n  bottom: "data"\n  top: "x"\n}}\n'
    with pytest.raises(ArchError, match=f"'x' has type '{caffe_type}', ") as caught:
        import_net(text, "t.prototxt")
    reason = "never imports or runs code" if caffe_type == "Python" else "training-only"
    assert reason in caught.value.message and caught.value.span.line == 3


def test_training_layers_a_deploy_net_leaves_out_are_read_and_skipped():
    net = net_of('layer { name: "train_data" type: "Data" top: "data" top: "label" '
                 'include { phase: TRAIN } data_param { source: "train_lmdb" batch_size: 64 } '
                 'transform_param { mirror: true } }\n'
                 'layer { name: "relu" type: "ReLU" bottom: "data" top: "data" }\n'
                 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" '
                 'top: "loss" include { phase: TRAIN } }')
    assert [layer.name for layer in net.layers] == ["relu"]
