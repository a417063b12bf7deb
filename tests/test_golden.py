"""The model-library table: every command against its published file where we hold it, and every
command at its family's other input size.

`archc archs/<arch> --<param> <value> ...` must have no semantic difference (names, types, wiring,
parameters, inputs) from the published deploy file; `--size` must change only the input shape.
"""
import pytest

from golden import assert_matches, assert_only_input_size_changes, generate

PUBLISHED = [
    ("resnext.arch", {"depth": 50, "card": 32}, "resnext/deploy_resnext50-32x4d.prototxt"),
    ("resnext.arch", {"depth": 50, "card": 1, "width": 128}, "wider-resnet/deploy_wrn50-2.prototxt"),
    ("resnet_v1.arch", {"depth": 50}, "resnet/deploy_resnet50.prototxt"),
    ("resnet_v1.arch", {"depth": 101}, "resnet/deploy_resnet101.prototxt"),
    ("resnet_v2.arch", {"depth": 101}, "resnet-v2/deploy_resnet101-v2.prototxt"),
    ("inception_v3.arch", {}, "inception/deploy_inception-v3.prototxt"),
    ("inception_v4.arch", {}, "inception/deploy_inception-v4.prototxt"),
    ("inception_resnet_v2.arch", {}, "inception/deploy_inception-resnet-v2.prototxt"),
    ("densenet.arch", {"depth": 121}, "densenet/deploy_densenet121.prototxt"),
]


@pytest.mark.parametrize("arch, params, published", PUBLISHED,
                         ids=[reference.split("/")[1] for _, _, reference in PUBLISHED])
def test_generated_equals_published(reference_cls, arch, params, published):
    _, text = generate(arch, **params)
    assert_matches(text, reference_cls / published)


# Every command of the table (published or held back), with the family's other size.
COMMANDS = [
    *[("resnext.arch", params, 320) for params in (
        {"depth": 50, "card": 32}, {"depth": 101, "card": 32}, {"depth": 101, "card": 64},
        {"depth": 50, "card": 1, "width": 128})],
    *[("resnet_v1.arch", {"depth": depth}, 320) for depth in (50, 101, 152)],
    *[("resnet_v2.arch", {"depth": depth}, 320) for depth in (101, 152, 269)],
    *[(arch, {}, 395) for arch in ("inception_v3.arch", "inception_v4.arch",
                                   "inception_resnet_v2.arch")],
    *[("densenet.arch", {"depth": depth}, 320) for depth in (121, 161, 169, 201)],
]


@pytest.mark.parametrize("arch, params, size", COMMANDS,
                         ids=[f"{arch[:-5]}{''.join(f'-{v}' for v in params.values())}@{size}"
                              for arch, params, size in COMMANDS])
def test_size_changes_only_the_input_shape(arch, params, size):
    assert_only_input_size_changes(arch, size, **params)
