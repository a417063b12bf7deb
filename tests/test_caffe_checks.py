"""Fields Caffe checks when it sets a net up are modelled or refused before Caffe sees the net:
a file archc accepts never aborts Caffe, and nothing a model names is run."""
from __future__ import annotations

import subprocess
import sys

import pytest

from archc.codegen.parse import import_net
from archc.errors import ArchError

NET = ('input: "data"\ninput_shape {{ dim: 1 dim: 3 dim: 8 dim: 8 }}\n'
       'layer {{ name: "c" type: "Convolution" bottom: "data" top: "c" '
       'convolution_param {{ num_output: 4 kernel_size: 3 {conv} }} {layer} }}\n'
       'layer {{ name: "bn" type: "BatchNorm" bottom: "c" top: "c" {bn} }}\n'
       'layer {{ name: "s" type: "Scale" bottom: "c" top: "c" scale_param {{ {scale} }} }}\n')


def net(conv="", layer="", bn="", scale="") -> str:
    return NET.format(conv=conv, layer=layer, bn=bn, scale=scale)


REFUSED = [
    ({"conv": 'weight_filler { type: "bogus" }'}, "filler type 'bogus', not one of Caffe's"),
    ({"conv": 'weight_filler { type: "gaussian" std: 0 }'}, "gaussian filler with std 0"),
    ({"conv": 'bias_filler { type: "gaussian" std: -1 }'}, "gaussian filler with std -1"),
    ({"conv": 'weight_filler { type: "gaussian" sparse: 5 }'}, "sparse: 5: give -1, or at most"),
    ({"conv": 'weight_filler { type: "uniform" min: 2 max: 1 }'}, "min 2.0 above max 1.0"),
    ({"conv": 'weight_filler { type: "xavier" sparse: 1 }'}, "which only a gaussian filler takes"),
    ({"conv": 'bias_filler { type: "bilinear" }'}, "fills only a square convolution kernel"),
    ({"scale": 'filler { type: "bogus" }'}, "scale_param.filler has filler type 'bogus'"),
    ({"layer": "blobs { }"}, "carries `blobs` in the prototxt"),
    ({"bn": "param { lr_mult: 1 }"}, "non-zero lr_mult, which Caffe refuses"),
    ({"conv": "group: 0"}, "group must be at least 1"),
]


@pytest.mark.parametrize("parts, message", REFUSED)
def test_what_caffe_aborts_on_is_refused_at_import(parts, message):
    with pytest.raises(ArchError, match=message):
        import_net(net(**parts), "net.prototxt")


@pytest.mark.parametrize("parts, message", REFUSED)
def test_what_is_refused_is_what_caffe_aborts_on(caffe, tmp_path, parts, message):
    from archc.runtime.loader import probe_in_child
    path = tmp_path / "net.prototxt"
    path.write_text(net(**parts))
    with pytest.raises(ArchError, match="Caffe cannot set up the net"):
        probe_in_child(str(path), "net.prototxt")


VALID = net(conv='weight_filler { type: "bilinear" } bias_filler { type: "gaussian" std: 0.1 '
                 'sparse: 4 }', bn="param { lr_mult: 0 }",
            scale='filler { type: "uniform" min: 1 max: 1 }')


def test_valid_fillers_still_import(caffe, tmp_path):
    from archc.runtime.loader import probe_in_child
    assert [layer.name for layer in import_net(VALID).layers] == ["c", "bn", "s"]
    path = tmp_path / "net.prototxt"
    path.write_text(VALID)
    probe_in_child(str(path), "net.prototxt")  # and Caffe sets it up


def test_a_cudnn_engine_is_refused_by_a_cpu_only_caffe(caffe, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(net(conv="engine: CUDNN"))
    # as written: folding BatchNorm renders the net from the IR, which keeps no engine fields
    result = subprocess.run([sys.executable, "-m", "archc", "time", str(path), "--iterations", "1",
                             "--keep-batchnorm"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "`engine: CUDNN`, which this CPU-only Caffe does not have" in result.stderr


def test_a_python_layer_runs_nothing(caffe, tmp_path):
    (tmp_path / "planted.py").write_text("open('RAN', 'w').write('the module ran')\n")
    model = tmp_path / "net.prototxt"
    model.write_text('input: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                     'layer { name: "p" type: "Python" bottom: "data" top: "p" '
                     'python_param { module: "planted" layer: "Layer" } }\n')
    for command in (["time", str(model), "--iterations", "1"], ["summary", str(model)],
                    ["weights", "--init", str(model), "-o", str(tmp_path / "w.caffemodel")]):
        result = subprocess.run([sys.executable, "-m", "archc", *command], cwd=tmp_path,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode in (1, 2) and "Traceback" not in result.stderr, command
        assert not (tmp_path / "RAN").exists(), command


CLIP_WITHOUT_MIN = ('input: "data"\ninput_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                    'layer { name: "c" type: "Clip" bottom: "data" top: "c" clip_param { max: 1 } }\n')


def test_a_required_field_left_out_is_refused_as_caffe_cannot_read_the_file(caffe, tmp_path):
    """Found by the prototxt fuzzer: text format leaves required fields to the reader, and
    Caffe's reader aborts on a ClipParameter without `min`."""
    from archc.runtime.loader import load_net_text, probe_in_child
    expected = "layer 'c' lacks clip_param.min, which Caffe requires"
    with pytest.raises(ArchError, match=expected):
        import_net(CLIP_WITHOUT_MIN, "clip.prototxt")
    with pytest.raises(ArchError, match=expected):
        load_net_text(CLIP_WITHOUT_MIN, "clip.prototxt")
    path = tmp_path / "clip.prototxt"
    path.write_text(CLIP_WITHOUT_MIN)
    with pytest.raises(ArchError, match="Caffe cannot set up the net"):
        probe_in_child(str(path), "clip.prototxt")
    path.write_text(CLIP_WITHOUT_MIN.replace("{ max: 1 }", "{ min: 0 max: 1 }"))
    probe_in_child(str(path), "clip.prototxt")


@pytest.mark.parametrize("parts, message", REFUSED)
def test_the_loader_gives_the_importers_refusal_before_caffe_sees_the_net(caffe, parts, message):
    """The loader once took any refusal for a net outside the IR and let Caffe judge it in a
    child process, which set some of them up and aborted only at the forward pass."""
    from archc.runtime.loader import load_net_text
    with pytest.raises(ArchError, match=message):
        load_net_text(net(**parts), "net.prototxt")


def test_a_layer_without_a_cpu_forward_pass_is_refused_before_it_runs(caffe):
    """Found by the prototxt fuzzer: an SPP layer with STOCHASTIC pooling sets up, and the CPU
    forward pass of `eval` aborted; the loader now asks Caffe first, in a child process."""
    from archc.runtime.loader import load_net_text
    spp = ('input: "data"\ninput_shape { dim: 2 dim: 6 dim: 12 dim: 12 }\n'
           'layer { name: "spp" type: "SPP" bottom: "data" top: "spp" '
           'spp_param { pyramid_height: 1 pool: STOCHASTIC } }\n')
    with pytest.raises(ArchError, match="Caffe cannot run the forward pass of spp.prototxt"):
        load_net_text(spp, "spp.prototxt")
    assert load_net_text(spp.replace("STOCHASTIC", "MAX"), "spp.prototxt").net.forward()
