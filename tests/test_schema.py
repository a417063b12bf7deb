"""The Caffe schema archc carries: real field numbers, both pooling dialects, clean errors."""
from __future__ import annotations

import pytest

from archc.codegen import schema
from archc.ir import ArchError


def test_every_reference_prototxt_parses_in_the_ceil_mode_dialect(reference_cls):
    files = sorted(reference_cls.glob("*/*.prototxt"))
    assert files, f"no prototxt under {reference_cls}"
    for path in files:
        net = schema.parse_prototxt(path.read_text(), "ceil_mode", str(path))
        assert len(net.layer) > 30, path  # the smallest, VGG-16, has 39
        assert list(net.input) == ["data"], path


def test_round_mode_dialect_reads_floor_rounding():
    text = 'layer { name: "pool1" type: "Pooling" pooling_param { pool: AVE round_mode: FLOOR } }'
    pooling = schema.parse_prototxt(text, "round_mode").layer[0].pooling_param
    assert pooling.round_mode == schema.message_class("PoolingParameter", "round_mode").FLOOR
    assert pooling.pool == schema.message_class("PoolingParameter", "round_mode").AVE


def test_dialects_reject_each_others_spelling():
    with pytest.raises(ArchError, match="ceil_mode"):
        schema.parse_prototxt("layer { pooling_param { ceil_mode: false } }", "round_mode")
    with pytest.raises(ArchError, match="round_mode"):
        schema.parse_prototxt("layer { pooling_param { round_mode: FLOOR } }", "ceil_mode")


def test_caffe_defaults_are_declared():
    pooling = schema.message_class("PoolingParameter", "ceil_mode")()
    assert pooling.ceil_mode is True and pooling.stride == 1
    assert schema.message_class("PoolingParameter", "round_mode")().round_mode == 0  # CEIL
    convolution = schema.message_class("ConvolutionParameter")()
    assert convolution.bias_term is True and convolution.group == 1
    assert schema.message_class("BatchNormParameter")().eps == pytest.approx(1e-5)
    assert schema.message_class("EltwiseParameter")().operation == 1  # SUM


def test_unknown_field_error_names_the_field_and_its_place():
    text = 'layer {\n  name: "conv1"\n  kernel_size: 3\n}\n'
    with pytest.raises(ArchError) as caught:
        schema.parse_prototxt(text, "ceil_mode", "net.prototxt")
    error = caught.value
    assert "kernel_size" in error.message
    assert (error.span.path, error.span.line, error.span.column) == ("net.prototxt", 3, 3)


def test_binary_encoding_uses_caffes_field_numbers():
    # Hand-encoded bytes: NetParameter.layer (field 100) holding LayerParameter.name (1) "a" and
    # one BlobProto (field 7) with shape (7) {dim (1): [2]} and packed float data (5) [1.0, 2.0].
    shape = bytes([0x0A, 0x01, 0x02])
    blob = bytes([0x3A, len(shape)]) + shape + bytes([0x2A, 0x08]) + bytes.fromhex("0000803f00000040")
    layer = bytes([0x0A, 0x01]) + b"a" + bytes([0x3A, len(blob)]) + blob
    data = bytes([0xA2, 0x06, len(layer)]) + layer
    net = schema.parse_caffemodel(data)
    assert net.layer[0].name == "a"
    assert list(net.layer[0].blobs[0].shape.dim) == [2]
    assert list(net.layer[0].blobs[0].data) == [1.0, 2.0]


def test_legacy_v1_layers_decode():
    net = schema.parse_prototxt('layers { name: "fc" type: INNER_PRODUCT blobs { num: 1 } }')
    assert net.layers[0].type == schema.message_class("V1LayerParameter").INNER_PRODUCT


def test_unknown_dialect_is_refused():
    with pytest.raises(ValueError, match="dialect"):
        schema.net_parameter_class("caffe2")
