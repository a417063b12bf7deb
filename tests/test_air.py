"""AIR (Aligned Inception-ResNet) against the published air50-1x32d; the held-back depths and
widths compile, infer and keep the unit's shape."""
import pytest

from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "air.arch"
STAGES = {14: [1, 1, 1, 1], 26: [2, 2, 2, 2], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}


def test_generated_equals_published(reference_cls):
    _, text = generate(ARCH, depth=50, width=32)
    assert_matches(text, reference_cls / "air" / "deploy_air50-1x32d.prototxt")


# The zoo's other AIRs (held back): air14-1x8d/1x16d, air26-1x16d/1x32d, air50-1x16d.
HELD_BACK = [(14, 8), (14, 16), (26, 16), (26, 32), (50, 16)]


@pytest.mark.parametrize("depth, width", HELD_BACK)
def test_held_back_variants_infer_to_the_classes(depth, width):
    assert output_shape(ARCH, depth=depth, width=width) == (1, 1000)


@pytest.mark.parametrize("depth, width", [*HELD_BACK, (50, 32), (101, 64)])
def test_units_towers_and_widths(depth, width):
    net, _ = generate(ARCH, depth=depth, width=width)
    layers = layers_by_name(net)
    shapes = {row.layer.name: row.outputs[0] for row in infer_shapes(net).layers}
    # the stem is the published one whatever the width
    assert (layers["conv1"].op.num_output, layers["conv1"].op.kernel_h) == (64, 7)
    assert [layer.name for layer in net.layers if layer.type == "Eltwise"] == [
        f"air{n}" for n in range(1, sum(STAGES[depth]) + 1)]
    first, side = 1, 56
    for stage, units in enumerate(STAGES[depth]):
        w = width * 2 ** stage
        p = f"air{first}"
        # towers of w and w/2, concatenated, normalised, expanded to 4w
        assert layers[f"{p}_cat"].bottoms == (f"{p}_conv1_2", f"{p}_conv2_3")
        assert shapes[f"{p}_cat"] == (1, w + w // 2, side, side)
        assert shapes[p] == (1, 4 * w, side, side)
        stride = 1 if stage == 0 else 2
        assert {layers[f"{p}_{c}"].op.stride_h for c in ("conv1_2", "conv2_2")} == {stride}
        # a stage's first unit projects its shortcut, unless it keeps the stem's 64 channels
        projects = stage > 0 or 4 * w != 64
        assert (f"{p}_match_conv" in layers) == projects
        if projects:
            assert shapes[f"{p}_match_conv"] == shapes[p]
            assert layers[f"{p}_match_conv"].op.stride_h == stride
        for n in range(first + 1, first + units):
            assert f"air{n}_match_conv" not in layers
        first += units
        side //= 2
    assert layers["classifier"].bottoms == ("ave_pool",)


@pytest.mark.parametrize("depth, width", [(50, 32), (14, 8), (26, 16)])
def test_size_changes_only_the_input_shape(depth, width):
    assert_only_input_size_changes(ARCH, 320, depth=depth, width=width)


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, depth=14, width=8, classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe):
    net, text = generate(ARCH, depth=14, width=8)
    assert_caffe_allocates_the_inferred_shapes(net, text)
