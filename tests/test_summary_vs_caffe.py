"""`archc summary`'s parameter counts equal the blob sizes real Caffe allocates for the same net."""
import pytest

from archc.analysis.summary import summarise
from golden import generate
from archc.ir import infer_shapes


@pytest.mark.parametrize("arch, params", [
    ("resnext.arch", {"depth": 50, "card": 32}),
    ("resnet_v1.arch", {"depth": 50}),
    ("densenet.arch", {"depth": 121}),
    ("inception_v3.arch", {}),
])
def test_summary_params_equal_caffe_blob_sizes(caffe, arch, params):
    from archc.runtime.loader import load_net_text

    net, text = generate(arch, **params)
    summary = summarise(infer_shapes(net))
    caffe_net = load_net_text(text, arch).net
    allocated = sum(blob.data.size for blobs in caffe_net.params.values() for blob in blobs)
    assert summary.total.params == allocated
    per_layer = {row.name: row.params for row in summary.rows if row.params}
    assert per_layer == {name: sum(blob.data.size for blob in blobs)
                         for name, blobs in caffe_net.params.items()}
