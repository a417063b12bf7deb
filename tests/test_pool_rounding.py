"""Pooling rounding rewritten between Caffe's schema dialects, on the text, positions kept."""
from __future__ import annotations

import pytest

from archc.ir import ArchError
from archc.runtime.pool_rounding import find_rounding, translate_rounding

NET = """name: "t"   # pool2 keeps Caffe's default
layer {
  name: "pool1"
  type: "Pooling"
  bottom: "data" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 ceil_mode: false }
}
layer {
  type: "Pooling" bottom: "pool1" top: "pool2"
  pooling_param { pool: AVE kernel_size: 2 ceil_mode: true }
  name: "pool2"   # the name may come after the parameters
}
layer { name: "note" type: "Convolution" bottom: "pool2" top: "c"
  convolution_param { num_output: 1 kernel_size: 1 }  # ceil_mode: false in a comment stays
}
"""


def test_settings_are_found_with_their_layer_and_position():
    settings = find_rounding(NET, "net.prototxt")
    assert [(s.layer, s.field, s.rounding) for s in settings] == [
        ("pool1", "ceil_mode", "floor"), ("pool2", "ceil_mode", "ceil")]
    assert (settings[0].span.line, settings[0].span.column) == (6, 54)
    assert NET[settings[0].start:settings[0].end] == "ceil_mode: false"


def test_translation_to_round_mode_and_back_keeps_everything_else():
    to_round = translate_rounding(NET, "round_mode")
    assert "round_mode: FLOOR" in to_round and "round_mode: CEIL" in to_round
    assert to_round.count("\n") == NET.count("\n")
    assert "# ceil_mode: false in a comment stays" in to_round
    assert translate_rounding(to_round, "ceil_mode") == NET
    assert translate_rounding(NET, "ceil_mode") == NET


def test_equivalent_spellings_are_understood():
    text = 'layer { name: "p" pooling_param { round_mode: 1 } }\nlayer { name: "q" pooling_param { ceil_mode: f } }'
    assert [s.rounding for s in find_rounding(text)] == ["floor", "floor"]
    # Settings already in the target spelling are left exactly as written.
    assert translate_rounding(text, "round_mode") == text.replace("ceil_mode: f", "round_mode: FLOOR")
    assert translate_rounding(text, "ceil_mode") == text.replace("round_mode: 1", "ceil_mode: false")


def test_a_schema_without_rounding_drops_ceil_and_refuses_floor():
    only_ceil = 'layer { name: "p" type: "Pooling" pooling_param { pool: MAX ceil_mode: true } }'
    assert translate_rounding(only_ceil, "ceil_only") == (
        'layer { name: "p" type: "Pooling" pooling_param { pool: MAX  } }')
    with pytest.raises(ArchError, match="pooling layer 'pool1' asks for floor rounding") as refused:
        translate_rounding(NET, "ceil_only", "net.prototxt")
    assert (refused.value.span.line, refused.value.span.column) == (6, 54)


def test_bad_values_and_strings_are_reported_at_their_place():
    with pytest.raises(ArchError, match="round_mode: DOWN is not a pooling rounding") as bad:
        find_rounding('layer {\n name: "p"\n pooling_param { round_mode: DOWN } }', "x")
    assert (bad.value.span.line, bad.value.span.column) == (3, 18)
    with pytest.raises(ArchError, match="unterminated string"):
        find_rounding('layer { name: "p\n }')
