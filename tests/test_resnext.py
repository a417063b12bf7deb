"""ResNeXt and WRN-50-2 (ResNeXt with cardinality 1): stages, widths and sizes (the golden
comparisons with the published files are in test_golden.py)."""
import pytest

from golden import generate, output_shape


@pytest.mark.parametrize("card, inner", [(32, 128), (64, 256)])
def test_resnext101_stages_and_widths(card, inner):
    net, _ = generate("resnext.arch", depth=101, card=card)
    names = [layer.name for layer in net.layers]
    # stages 3, 4, 23, 3: 33 bottlenecks, projections at the first block of each stage
    assert sum(name.endswith("_elewise") for name in names) == 33
    assert [n for n in names if n.endswith("match_conv")] == [
        "resx1_match_conv", "resx4_match_conv", "resx8_match_conv", "resx31_match_conv"]
    conv2 = next(layer for layer in net.layers if layer.name == "resx1_conv2")
    assert (conv2.op.num_output, conv2.op.group) == (inner, card)


def test_classes_sets_the_classifier_width():
    net, _ = generate("resnext.arch", depth=50, card=32, classes=10)
    assert [(layer.name, layer.op.num_output) for layer in net.layers
            if layer.type == "InnerProduct"] == [("classifier", 10)]
    assert output_shape("resnext.arch", depth=50, card=32, classes=10) == (1, 10)
