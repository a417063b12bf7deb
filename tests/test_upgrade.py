"""Caffe's V0 and V1 formats: read as Caffe reads them, `archc upgrade`, and the BVLC model zoo's
files as they were published before 2015, all checked against real Caffe's own upgrade.

Real Caffe is the judge: it loads an old file itself (upgrading it on the way) and the file archc
upgraded, and both nets must have the same layers, with the same parameters, blobs and shapes.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import reference_root
from legacy_formats import V1_TYPE_NAMES, NotExpressible, to_v0, to_v1
from test_op_definitions import CASES, one_layer_net

from archc.analysis.diff import diff_texts
from archc.cli.cmd_diff import main as diff_main
from archc.cli.cmd_upgrade import main as upgrade_main
from archc.cli.cmd_weights import main as weights_main
from archc.codegen import render, schema, upgrade
from archc.codegen.parse import import_net, read_prototxt
from archc.ir import OPS, ArchError, infer_shapes

BVLC_MODELS = ["bvlc_alexnet", "bvlc_googlenet", "bvlc_reference_caffenet",
               "bvlc_reference_rcnn_ilsvrc13", "finetune_flickr_style"]


@pytest.fixture(scope="session")
def bvlc() -> Path:
    """The BVLC model zoo's current deploy files; tests using them skip, visibly, where absent."""
    path = reference_root() / "bvlc" / "models"
    if not path.is_dir():
        pytest.skip(f"BVLC reference models not found at {path} (set ARCHC_REFERENCE_DIR)")
    return path


def upgraded(text: str) -> upgrade.UpgradedNet:
    return upgrade.upgrade_net(schema.parse_prototxt(text))


def wiring(net) -> list:
    return [(layer.name, layer.op, layer.bottoms, layer.tops) for layer in net.layers]


# ----- reading old files ------------------------------------------------------------------------

V1_NET = '''name: "v1"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 8
input_dim: 8
layers {
  name: "conv"
  type: CONVOLUTION
  bottom: "data"
  top: "conv"
  param: "conv_w"
  blobs_lr: 1
  blobs_lr: 2
  weight_decay: 1
  weight_decay: 0
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 }
}
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "train_only" type: DROPOUT bottom: "conv" top: "conv" include { phase: TRAIN } }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
'''
CURRENT_NET = '''name: "v1"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer {
  name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { name: "conv_w" lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 }
}
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "train_only" type: "Dropout" bottom: "conv" top: "conv" include { phase: TRAIN } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
'''


def test_v1_file_imports_as_its_current_form():
    assert wiring(import_net(V1_NET, "v1.prototxt")) == wiring(import_net(CURRENT_NET))
    assert diff_texts(V1_NET, CURRENT_NET) == []
    proto = read_prototxt(V1_NET, "v1.prototxt")
    assert proto.upgrades == ("V1 layers",)
    conv = proto.message.layer[0]
    assert (conv.type, [(p.name, p.lr_mult, p.decay_mult) for p in conv.param]) == \
        ("Convolution", [("conv_w", 1, 1), ("", 2, 0)])
    # spans point at each `layers` keyword of the old file
    assert [span.line for span in proto.layer_spans] == [7, 19, 20, 21]


def test_summary_of_an_old_file_is_that_of_its_current_form(tmp_path, capsys):
    from archc.cli.cmd_summary import main as summary_main

    tables = []
    for name, text in (("old", V1_NET), ("current", CURRENT_NET)):
        path = tmp_path / f"{name}.prototxt"
        path.write_text(text)
        assert summary_main([str(path)]) == 0
        tables.append(capsys.readouterr().out.split("\n", 1)[1])   # after the title with the path
    assert tables[0] == tables[1]


def test_v0_padding_layer_merges_into_the_convolution_that_reads_it():
    text = ('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
            'layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }\n'
            'layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 5 biasterm: false '
            'blobs_lr: 1. weight_decay: 0. } bottom: "pad1" top: "conv1" }\n'
            'layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 2 pad: 1 } '
            'bottom: "conv1" top: "pool1" }\n')
    proto = read_prototxt(text, "v0.prototxt")
    assert proto.upgrades == ("V0 padding layers", "V0 layers", "V1 layers")
    assert [span.line for span in proto.layer_spans] == [7, 8]   # conv1 and pool1
    conv, pool = proto.message.layer
    assert (list(conv.bottom), list(conv.convolution_param.pad), conv.convolution_param.bias_term) \
        == (["data"], [2], False)
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 0)]
    assert (pool.pooling_param.pad, pool.pooling_param.pool) == (1, pool.pooling_param.AVE)
    shaped = infer_shapes(import_net(text))
    assert shaped.blobs["conv1"] == (1, 4, 8, 8) and shaped.blobs["pool1"] == (1, 4, 5, 5)


@pytest.mark.parametrize("text, message, line", [
    ('layer { name: "a" type: "ReLU" bottom: "data" top: "a" }\n'
     'layers { name: "b" type: RELU bottom: "a" top: "b" }\n',
     "mixes current `layer", 2),
    ('layers { layer { name: "a" type: "relu" } bottom: "data" top: "a" }\n'
     'layers { name: "b" type: RELU bottom: "a" top: "b" }\n',
     "layers entry 'b' is in the V1 format but others are V0", 2),
    ('layers { layer { name: "a" type: "rectify" } bottom: "data" top: "a" }\n',
     "V0 layer 'a' has type \"rectify\", which Caffe does not know", 1),
    ('layers { layer { name: "a" type: "relu" kernelsize: 3 } bottom: "data" top: "a" }\n',
     "V0 layer 'a' (type \"relu\") sets `kernelsize`, which Caffe's upgrade drops: only \"conv\" "
     "and \"pool\" layers take it; remove it", 1),
    ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "data" top: "p" }\n'
     'layers { layer { name: "c" type: "conv" num_output: 2 kernelsize: 3 } bottom: "p" top: "c" }\n'
     'layers { layer { name: "d" type: "dropout" dropout_ratio: 0.2 group: 2 } bottom: "c" top: "c" }\n',
     "V0 layer 'd' (type \"dropout\") sets `group`, which Caffe's upgrade drops: only \"conv\" "
     "layers take it", 3),
    ('layers { layer { name: "a" type: "relu" } bottom: "nowhere" top: "a" }\n',
     "V0 layer 'a' reads blob 'nowhere', which no input or earlier layer provides", 1),
    ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "data" top: "p" }\n'
     'layers { layer { name: "a" type: "relu" } bottom: "p" top: "a" }\n',
     "V0 layer 'a' (type \"relu\") reads padding layer 'p': Caffe merges padding only into a conv "
     "or pool layer", 2),
])
def test_old_format_problems_name_the_construct_and_the_line(text, message, line):
    header = 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
    with pytest.raises(ArchError) as caught:
        read_prototxt(header + text, "old.prototxt")
    assert message in caught.value.message
    assert caught.value.span.line == 5 + line


def test_a_v1_type_spelled_as_a_string_is_explained():
    with pytest.raises(ArchError, match="a legacy `layers` entry takes a V1 type such as CONVOLUTION"):
        read_prototxt('layers { name: "c" type: "Convolution" }')


def test_data_layer_transformation_fields_move_to_transform_param():
    net = upgraded('layers { name: "d" type: DATA top: "d" data_param { source: "db" scale: 0.5 '
                   'mirror: true batch_size: 4 } }\n'
                   'layers { name: "i" type: IMAGE_DATA top: "i" }\n').net
    data, images = net.layer
    assert (data.transform_param.scale, data.transform_param.mirror) == (0.5, True)
    assert not data.data_param.HasField("scale") and data.data_param.batch_size == 4
    # Caffe's upgrade touches every data layer's two messages: present, if empty
    assert images.HasField("transform_param") and images.HasField("image_data_param")


def test_input_fields_become_an_input_layer_first():
    result = upgraded(V1_NET)
    assert [layer.name for layer in result.net.layer][:2] == ["input", "conv"]
    assert list(result.net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]
    assert not result.net.input and not result.net.input_dim
    assert result.origins == (None, 0, 1, 2, 3)
    with pytest.raises(upgrade.UpgradeError, match="1 inputs need 4 input_dim values, got 3"):
        upgraded('input: "data" input_dim: 1 input_dim: 3 input_dim: 8')


def test_old_batch_norm_param_specs_are_frozen():
    result = upgraded('layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" '
                      'param { lr_mult: 1 name: "m" } param { lr_mult: 1 } param { decay_mult: 1 } }')
    assert result.steps == ("BatchNorm param specs",)
    assert [(p.name, p.lr_mult, p.decay_mult) for p in result.net.layer[0].param] == \
        [("m", 0, 0), ("", 0, 0), ("", 0, 0)]


def test_a_current_file_is_left_as_it_is():
    message = schema.parse_prototxt(CURRENT_NET)
    result = upgrade.upgrade_net(message)
    assert result.net is message and result.steps == () and result.origins == (0, 1, 2, 3, 4)


def test_caffemodel_parameters_the_schema_lacks_move_byte_for_byte():
    # power_param (V1 field 21, current 122) is in Caffe's schema but not in archc's: it stays an
    # unknown field of the V1 layer and moves to its LayerParameter number.
    power = schema.length_delimited(1, bytes([0x0D]) + np.float32(2).tobytes())
    v1 = schema.length_delimited(4, b"p") + bytes([5 << 3, 26]) + schema.length_delimited(21, power)
    net = upgrade.upgrade_net(schema.parse_caffemodel(schema.length_delimited(2, v1))).net
    assert net.layer[0].type == "Power"
    assert net.layer[0].SerializeToString().endswith(schema.length_delimited(122, power))


# ----- the BVLC model zoo, as published before 2015 ------------------------------------------

@pytest.mark.parametrize("model, form", [(model, "V1") for model in BVLC_MODELS]
                         + [("bvlc_reference_caffenet", "V0")])
def test_old_bvlc_deploy_files_diff_equal_to_the_current_ones(bvlc, tmp_path, capsys, model, form):
    current = bvlc / model / "deploy.prototxt"
    old = tmp_path / f"{model}_{form}.prototxt"
    old.write_text((to_v1 if form == "V1" else to_v0)(current.read_text()))
    assert diff_main([str(old), str(current)]) == 0
    assert capsys.readouterr().out.startswith("no differences:")


def test_old_googlenet_has_what_v1_googlenet_had(bvlc):
    text = to_v1((bvlc / "bvlc_googlenet" / "deploy.prototxt").read_text())
    for construct in ("type: CONCAT", "type: DROPOUT", "type: LRN", "type: POOLING", "pad: 1",
                      "blobs_lr: 2.", "input_dim: 224"):
        assert construct in text


def test_old_caffenet_v0_has_padding_layers_and_v0_spellings(bvlc):
    text = to_v0((bvlc / "bvlc_reference_caffenet" / "deploy.prototxt").read_text())
    for construct in ('type: "padding"', 'type: "conv"', "kernelsize: 11", 'type: "innerproduct"',
                      'type: "lrn"', 'bottom: "pad2"', "input_dim: 227"):
        assert construct in text
    assert "\nlayer {" not in text   # every V0 `layer` nested in a `layers` entry


# ----- archc upgrade ----------------------------------------------------------------------------

def test_upgrade_writes_the_current_format(tmp_path, capsys):
    old, new = tmp_path / "old.prototxt", tmp_path / "new.prototxt"
    old.write_text(V1_NET)
    assert upgrade_main([str(old), "-o", str(new)]) == 0
    assert capsys.readouterr().out == (f"upgraded {old} (V1 layers, input fields) -> {new}: "
                                       f"5 layers\n")
    written = schema.parse_prototxt(new.read_text())
    assert not written.layers and not written.input
    assert written == upgraded(V1_NET).net
    assert diff_main([str(old), str(new)]) == 0


def test_upgrade_of_a_current_file_says_so(tmp_path, capsys):
    old, new = tmp_path / "current.prototxt", tmp_path / "copy.prototxt"
    old.write_text(CURRENT_NET)
    assert upgrade_main([str(old), f"--output={new}"]) == 0
    assert "is already in Caffe's current format" in capsys.readouterr().out
    assert schema.parse_prototxt(new.read_text()) == schema.parse_prototxt(CURRENT_NET)


@pytest.mark.parametrize("source, output, message", [
    ("old.prototxt", "old.prototxt", "-o {dir}/old.prototxt is the file being upgraded"),
    ("old.prototxt", "new.caffemodel", "is a text prototxt, and so is its upgrade"),
    ("old.caffemodel", "new.prototxt", "is a binary .caffemodel, and so is its upgrade"),
])
def test_upgrade_refuses_to_overwrite_its_input_or_change_encoding(tmp_path, capsys, source,
                                                                    output, message):
    (tmp_path / source).write_text(V1_NET)
    assert upgrade_main([str(tmp_path / source), "-o", str(tmp_path / output)]) == 2
    assert message.format(dir=tmp_path) in capsys.readouterr().err
    assert (tmp_path / source).read_text() == V1_NET


def test_upgrade_problems_name_the_construct_and_write_nothing(tmp_path, capsys):
    old, new = tmp_path / "old.prototxt", tmp_path / "new.prototxt"
    old.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
                   'layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "data" top: "r" }\n')
    assert upgrade_main([str(old), "-o", str(new)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{old}:6:1: error: V0 layer 'r' (type \"relu\") sets `num_output`")
    assert not new.exists()
    old.write_text('input: "data"\ninput_dim: 1\ninput_dim: 3\n')
    assert upgrade_main([str(old), "-o", str(new)]) == 2
    assert f"{old}:1:1: error: 1 inputs need 4 input_dim values, got 2" in capsys.readouterr().err


# ----- real Caffe -------------------------------------------------------------------------------

@dataclass
class BuiltNet:
    """What Caffe builds from a file (after its own upgrade, its include/exclude filter, its
    Split layers and each layer's phase)."""

    layers: list       # each LayerParameter as Caffe saves it, without weights
    blobs: dict        # blob name -> shape
    params: dict       # layer name -> parameter blob shapes


def built_by_caffe(caffe, path: Path) -> BuiltNet:
    from caffe.proto import caffe_pb2

    net = caffe.Net(str(path), caffe.TEST)
    with tempfile.TemporaryDirectory() as directory:
        saved_path = Path(directory) / "saved.caffemodel"
        net.save(str(saved_path))
        saved = caffe_pb2.NetParameter.FromString(saved_path.read_bytes())
    for layer in saved.layer:
        layer.ClearField("blobs")
    return BuiltNet(list(saved.layer),
                    {name: tuple(blob.data.shape) for name, blob in net.blobs.items()},
                    {name: [tuple(p.data.shape) for p in params] for name, params in net.params.items()})


def check_upgrade_against_caffe(caffe, old: Path, tmp_path: Path) -> BuiltNet:
    """`archc upgrade` the old file: Caffe builds the same net from the result as from the old
    file, which it upgrades itself, layer for layer and field for field."""
    new = tmp_path / f"{old.stem}_upgraded.prototxt"
    assert upgrade_main([str(old), "-o", str(new)]) == 0
    built = built_by_caffe(caffe, old)
    assert built_by_caffe(caffe, new) == built
    return built


def in_caffes_dialect(text: str) -> str:
    from archc.runtime.caffe_env import caffe_info
    from archc.runtime.pool_rounding import translate_rounding

    return translate_rounding(text, caffe_info().pool_dialect)


def test_schema_tables_agree_with_real_caffe(caffe):
    from caffe.proto import caffe_pb2

    v1, current = caffe_pb2.V1LayerParameter.DESCRIPTOR, caffe_pb2.LayerParameter.DESCRIPTOR
    assert set(schema.V1_LAYER_PARAMS) == {f.name for f in v1.fields if f.name.endswith("_param")}
    for name, param in schema.V1_LAYER_PARAMS.items():
        assert v1.fields_by_name[name].number == param.v1_number, name
        assert current.fields_by_name[name].number == param.number, name
        assert current.fields_by_name[name].message_type.name == param.message, name
    v1_types = v1.enum_types_by_name["LayerType"].values_by_name
    assert set(upgrade.V1_LAYER_TYPES) == set(v1_types)
    # every type Caffe registers, but for the two it registers only when built with OpenCV
    unregistered = set(upgrade.V1_LAYER_TYPES.values()) - {""} - set(caffe.layer_type_list())
    assert unregistered <= {"ImageData", "WindowData"}
    # two transcriptions of caffe.proto agree: archc's and this test's
    assert {v1_name: type_ for type_, v1_name in V1_TYPE_NAMES.items()} == \
        {v1_name: type_ for v1_name, type_ in upgrade.V1_LAYER_TYPES.items() if type_}
    assert set(upgrade.V0_LAYER_TYPES.values()) <= set(v1_types)
    v0 = caffe_pb2.V0LayerParameter.DESCRIPTOR.fields_by_name
    for field, targets in upgrade.V0_FIELD_TARGETS.items():
        for target in targets.values():
            message = v1
            for part in target.split("."):
                descriptor = message.fields_by_name[part]
                message = descriptor.message_type
            # the same type, but for V0's int32 new_height and new_width going to uint32 fields
            assert descriptor.type == v0[field].type or (field, descriptor.type) in (
                ("new_height", descriptor.TYPE_UINT32), ("new_width", descriptor.TYPE_UINT32)), target


def _old_forms(op, inputs) -> list[tuple[str, str, str]]:
    """(form, old text, current text) of an op sample, for each old form that can express it."""
    current = render(one_layer_net(op, inputs))
    forms = []
    for form, write in (("V1", to_v1), ("V0", to_v0)):
        try:
            forms.append((form, write(current), current))
        except NotExpressible:
            pass
    return forms


OLD_CASES = [(caffe_type, index, *old) for caffe_type, index, op, inputs in CASES
             for old in _old_forms(op, inputs)]


def test_every_v1_type_archc_knows_has_old_samples():
    assert {t for t, _, form, _, _ in OLD_CASES if form == "V1"} == \
        {caffe_type for caffe_type in OPS if caffe_type in V1_TYPE_NAMES}
    assert {"Convolution", "Pooling", "InnerProduct", "ReLU", "Softmax", "Dropout", "Concat"} <= \
        {t for t, _, form, _, _ in OLD_CASES if form == "V0"}


@pytest.mark.parametrize("caffe_type, index, form, old, current", OLD_CASES,
                         ids=[f"{t}-{i}-{form}" for t, i, form, _, _ in OLD_CASES])
def test_every_old_op_sample_upgrades_as_caffe_upgrades_it(caffe, tmp_path, caffe_type, index,
                                                          form, old, current):
    imported = import_net(old, "old")
    assert wiring(imported) == wiring(import_net(current, "current"))
    old_path = tmp_path / "old.prototxt"
    old_path.write_text(in_caffes_dialect(old))
    built = check_upgrade_against_caffe(caffe, old_path, tmp_path)
    shaped = infer_shapes(imported)
    assert {name: built.blobs[name] for name in shaped.blobs} == shaped.blobs
    assert built.params.get("layer", []) == [tuple(s) for s in shaped.layers[0].param_shapes]


@pytest.mark.parametrize("model, form", [(model, "V1") for model in BVLC_MODELS]
                         + [("bvlc_reference_caffenet", "V0")])
def test_caffe_builds_old_bvlc_files_as_archc_upgrades_them(caffe, bvlc, tmp_path, model, form):
    current = bvlc / model / "deploy.prototxt"
    old = tmp_path / f"{model}_{form}.prototxt"
    old.write_text((to_v1 if form == "V1" else to_v0)(current.read_text()))
    built = check_upgrade_against_caffe(caffe, old, tmp_path)
    built_current = built_by_caffe(caffe, current)
    assert (built.blobs, built.params) == (built_current.blobs, built_current.params)


V1_WEIGHTS_NET = '''name: "old_weights"
input: "data"
input_dim: 2
input_dim: 3
input_dim: 10
input_dim: 10
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv" blobs_lr: 1 blobs_lr: 2
  convolution_param { num_output: 6 kernel_size: 3 pad: 1 group: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "halves" type: SLICE bottom: "conv" top: "a" top: "b" slice_param { slice_point: 2 } }
layers { name: "side" type: CONVOLUTION bottom: "a" top: "side"
  convolution_param { num_output: 4 kernel_size: 1 } }
layers { name: "sum" type: ELTWISE bottom: "side" bottom: "b" top: "sum" }
layers { name: "both" type: CONCAT bottom: "sum" bottom: "a" top: "both" }
layers { name: "pool" type: POOLING bottom: "both" top: "pool"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layers { name: "sigmoid" type: SIGMOID bottom: "pool" top: "pool" }
layers { name: "flat" type: FLATTEN bottom: "pool" top: "flat" }
layers { name: "fc" type: INNER_PRODUCT bottom: "flat" top: "fc" inner_product_param { num_output: 5 } }
layers { name: "drop" type: DROPOUT bottom: "fc" top: "fc" }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
'''


def v1_caffemodel(caffe, prototxt: Path) -> bytes:
    """Random weights for the V1 net as old Caffe stored them: every layer as a V1 `layers`
    entry, each blob as num/channels/height/width."""
    params = built_by_caffe(caffe, prototxt).params
    old = schema.parse_prototxt(prototxt.read_text())
    model = schema.net_parameter_class()(name=old.name)
    rng = np.random.default_rng(7)
    for layer in old.layers:
        stored = model.layers.add(name=layer.name, type=layer.type)
        for shape in params.get(layer.name, []):
            num, channels, height, width = (1,) * (4 - len(shape)) + shape
            blob = stored.blobs.add(num=num, channels=channels, height=height, width=width)
            blob.data.extend(rng.standard_normal(int(np.prod(shape))).astype(np.float32))
    return model.SerializeToString()


def test_v1_caffemodel_gives_identical_outputs_after_upgrade(caffe, tmp_path, capsys):
    old_net, old_weights = tmp_path / "old.prototxt", tmp_path / "old.caffemodel"
    new_net, new_weights = tmp_path / "new.prototxt", tmp_path / "new.caffemodel"
    old_net.write_text(V1_WEIGHTS_NET)
    old_weights.write_bytes(v1_caffemodel(caffe, old_net))
    assert upgrade_main([str(old_net), "-o", str(new_net)]) == 0
    assert upgrade_main([str(old_weights), "-o", str(new_weights)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == \
        f"upgraded {old_weights} (V1 layers) -> {new_weights}: 12 layers"
    image = np.random.default_rng(1).standard_normal((2, 3, 10, 10)).astype(np.float32)
    outputs = []
    for prototxt, caffemodel in ((old_net, old_weights), (new_net, new_weights)):
        net = caffe.Net(str(prototxt), caffe.TEST, weights=str(caffemodel))
        net.blobs["data"].data[...] = image
        outputs.append({name: blob.copy() for name, blob in net.forward(blobs=["conv", "fc"]).items()})
    assert outputs[0].keys() == {"conv", "fc", "prob"}
    for name in outputs[0]:
        assert np.abs(outputs[0][name] - outputs[1][name]).max() == 0, name
    # the weights, old or upgraded, fit either form of the net, layer by layer
    for caffemodel in (old_weights, new_weights):
        for prototxt in (old_net, new_net):
            assert weights_main([str(caffemodel), "--check", str(prototxt)]) == 0
            assert capsys.readouterr().out.endswith(f"ok: {caffemodel} fits {prototxt}\n")


def test_an_old_net_runs_at_another_batch_size(caffe):
    """Caffe's V0 upgrade keeps `input_dim` only: a new batch size must be written there."""
    from archc.runtime.loader import load_net_text

    text = ('input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
            'layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }\n'
            'layers { layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 } '
            'bottom: "pad1" top: "conv1" }\n')
    loaded = load_net_text(text, "<v0>", batch=3).net
    assert loaded.blobs["conv1"].data.shape == (3, 4, 8, 8)
