"""ResNet with basic blocks at any width (the zoo's resnetNN-1xWd) against the published
resnet18-1x64d, the paper's Table 1 and torchvision's parameter counts."""
import pytest

from archc.ir.net import infer_shapes
from golden import (assert_caffe_allocates_the_inferred_shapes, assert_matches,
                    assert_only_input_size_changes, generate, layers_by_name, output_shape)

ARCH = "resnet_basic.arch"
STAGES = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3]}
# torchvision's resnet18 and resnet34 (7x7 stem of 64) less that stem's convolution and BatchNorm
# weights (9,408 + 128): the body the zoo's 3x3 stem feeds is the same.
TORCHVISION_BODY = {18: 11_689_512 - 9_408 - 128, 34: 21_797_672 - 9_408 - 128}


def test_generated_equals_published(reference_cls):
    _, text = generate(ARCH, depth=18, width=64)
    assert_matches(text, reference_cls / "resnet" / "deploy_resnet18-1x64d.prototxt")


# The zoo's other widths (held back): resnet10-1x{32,48,64,96}d, resnet18-1x{16,32,48,96,128}d.
HELD_BACK = [(10, 32), (10, 48), (10, 64), (10, 96), (18, 16), (18, 32), (18, 48), (18, 96), (18, 128)]


@pytest.mark.parametrize("depth, width", HELD_BACK)
def test_held_back_variants_infer_to_the_classes(depth, width):
    assert output_shape(ARCH, depth=depth, width=width) == (1, 1000)


@pytest.mark.parametrize("depth", STAGES)
@pytest.mark.parametrize("width", [16, 48, 64, 128])
def test_stem_stages_and_widths(depth, width):
    net, _ = generate(ARCH, depth=depth, width=width)
    layers = layers_by_name(net)
    assert [layers[f"conv{i}"].op.num_output for i in (1, 2, 3)] == [width // 2, width // 2, width]
    assert layers["conv1"].op.stride_h == 2 and layers["pool1"].op.rounding == "floor"
    # blocks numbered across the net; a projection where a stage starts (not the first one)
    sums = [layer.name for layer in net.layers if layer.type == "Eltwise"]
    assert sums == [f"res{n}" for n in range(1, sum(STAGES[depth]) + 1)]
    firsts = [sum(STAGES[depth][:s]) + 1 for s in range(1, 4)]
    assert [name for name in layers if name.endswith("_match")] == [f"res{n}_match" for n in firsts]
    for stage, n in enumerate(firsts, start=1):
        assert layers[f"res{n}_conv1"].op.stride_h == layers[f"res{n}_match"].op.stride_h == 2
        assert layers[f"res{n}_conv2"].op.num_output == width * 2 ** stage
    assert layers["classifier"].op.num_output == 1000


@pytest.mark.parametrize("depth", TORCHVISION_BODY)
def test_width_64_body_has_torchvisions_parameters(depth):
    net, _ = generate(ARCH, depth=depth, width=64)
    body = [row for row in infer_shapes(net).layers
            if row.layer.type != "BatchNorm" and not row.layer.name.startswith(("conv1", "conv2", "conv3"))]
    assert sum(row.params for row in body) == TORCHVISION_BODY[depth]


@pytest.mark.parametrize("depth, width", [(18, 64), (10, 32), (18, 128)])
def test_size_changes_only_the_input_shape(depth, width):
    assert_only_input_size_changes(ARCH, 320, depth=depth, width=width)


def test_classes_sets_the_classifier_width():
    assert output_shape(ARCH, depth=10, width=16, classes=10) == (1, 10)


def test_caffe_allocates_the_inferred_blobs_and_parameters(caffe):
    net, text = generate(ARCH, depth=10, width=16)
    assert_caffe_allocates_the_inferred_shapes(net, text)
