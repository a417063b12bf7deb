"""ResNeXt and WRN-50-2 (ResNeXt with cardinality 1) against the published deploy files."""
import pytest

from golden import assert_matches, generate, output_shape


def test_resnext50_32x4d(reference_cls):
    _, text = generate("resnext.arch", depth=50, card=32)
    assert_matches(text, reference_cls / "resnext" / "deploy_resnext50-32x4d.prototxt")


def test_wrn50_2_is_resnet50_1x128d(reference_cls):
    _, text = generate("resnext.arch", depth=50, card=1, width=128)
    assert_matches(text, reference_cls / "wider-resnet" / "deploy_wrn50-2.prototxt")


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


def test_size_changes_only_the_input_shape(reference_cls):
    net224, text224 = generate("resnext.arch", depth=50, card=32)
    net320, text320 = generate("resnext.arch", depth=50, card=32, size=320)
    assert net320.inputs == {"data": (1, 3, 320, 320)}
    assert text320.replace("dim: 320", "dim: 224") == text224
    assert output_shape("resnext.arch", depth=50, card=32, size=320) == (1, 1000)
