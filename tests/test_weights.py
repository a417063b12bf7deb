"""Reading, writing and checking .caffemodel files with protobuf only (no Caffe)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from archc import dsl
from archc.codegen import schema
from conftest import REPO, deadline
from archc.ir import ArchError, Layer, Net, infer_shapes
from archc.ir.ops import BatchNorm, Convolution, InnerProduct, Pooling, ReLU, Scale
from archc.runtime import weights
from test_loader import SMALL


def small_net() -> Net:
    layers = [
        Layer("conv1", Convolution(num_output=8, kernel_h=3, kernel_w=3, pad_h=1, pad_w=1,
                                   bias_term=False), ("data",), ("conv1",)),
        Layer("conv1_bn", BatchNorm(), ("conv1",), ("conv1",)),
        Layer("conv1_scale", Scale(bias_term=True), ("conv1",), ("conv1",)),
        Layer("conv1_relu", ReLU(), ("conv1",), ("conv1",)),
        Layer("pool", Pooling(global_pooling=True, method="AVE"), ("conv1",), ("pool",)),
        Layer("fc", InnerProduct(num_output=5), ("pool",), ("fc",)),
    ]
    return Net({"data": (1, 3, 6, 6)}, layers, name="small")


@pytest.fixture
def small():
    return infer_shapes(small_net())


def test_initial_weights_round_trip(small, tmp_path):
    path = tmp_path / "small.caffemodel"
    written = weights.initial_weights(small, seed=3)
    weights.write_caffemodel(path, written, "small")
    stored = weights.read_caffemodel(path)
    assert [(layer.name, layer.type) for layer in stored] == [
        ("conv1", "Convolution"), ("conv1_bn", "BatchNorm"), ("conv1_scale", "Scale"),
        ("fc", "InnerProduct")]
    assert [b.shape for b in stored[0].blobs] == [(8, 3, 3, 3)]
    assert [b.shape for b in stored[1].blobs] == [(8,), (8,), (1,)]
    assert [b.shape for b in stored[3].blobs] == [(5, 8), (5,)]
    report = weights.compare(weights.expected_from_ir(small), stored)
    assert (report.matched, report.missing, report.extra, report.mismatched) == (4, [], [], [])
    # The values survive too: decode with the schema and compare to what was written.
    message = schema.parse_caffemodel(path.read_bytes())
    conv = np.array(message.layer[0].blobs[0].data, dtype=np.float32).reshape(8, 3, 3, 3)
    np.testing.assert_array_equal(conv, written[0][2][0])


def test_initial_weights_are_seeded_and_sensible(small):
    first = weights.initial_weights(small, seed=1)
    again = weights.initial_weights(small, seed=1)
    other = weights.initial_weights(small, seed=2)
    np.testing.assert_array_equal(first[0][2][0], again[0][2][0])
    assert not np.array_equal(first[0][2][0], other[0][2][0])
    mean, variance, factor = first[1][2]
    assert (mean == 0).all() and (variance == 1).all() and factor.tolist() == [1.0]
    gamma, beta = first[2][2]
    assert (gamma == 1).all() and (beta == 0).all()


def test_renamed_layer_is_missing_and_extra(small, tmp_path):
    written = weights.initial_weights(small)
    renamed = [("fc_renamed" if name == "fc" else name, type_, blobs) for name, type_, blobs in written]
    path = tmp_path / "renamed.caffemodel"
    weights.write_caffemodel(path, renamed)
    expected = weights.expected_from_ir(small)
    with pytest.raises(weights.WeightsError) as refused:
        weights.check(expected, path)
    message = str(refused.value)
    assert "1 layer missing from the weights" in message and "\n  fc\n" in message
    assert "fc_renamed" in message and "--allow-missing" in message
    report = weights.check(expected, path, allow_missing=True)
    assert (report.missing, report.extra) == (["fc"], ["fc_renamed"])


def test_wrong_shape_is_refused_even_when_missing_layers_are_allowed(small, tmp_path):
    written = weights.initial_weights(small)
    name, type_, blobs = written[3]
    written[3] = (name, type_, [np.zeros((5, 9), np.float32), blobs[1]])
    path = tmp_path / "wrong.caffemodel"
    weights.write_caffemodel(path, written)
    with pytest.raises(weights.WeightsError, match=r"fc: the net needs 5 x 8, 5; the weights have 5 x 9, 5"):
        weights.check(weights.expected_from_ir(small), path, allow_missing=True)


def test_every_stored_copy_of_a_layer_must_fit(small, tmp_path):
    # Caffe copies each stored layer of a name in turn and aborts on one that does not fit, so a
    # wrong first copy cannot hide behind a right second one.
    written = weights.initial_weights(small)
    name, type_, blobs = written[3]
    written.insert(3, (name, type_, [np.zeros((5, 9), np.float32), blobs[1]]))
    path = tmp_path / "twice.caffemodel"
    weights.write_caffemodel(path, written)
    with pytest.raises(weights.WeightsError, match=r"fc: the net needs 5 x 8, 5; the weights have 5 x 9, 5"):
        weights.check(weights.expected_from_ir(small), path)
    report = weights.compare(weights.expected_from_ir(small), weights.read_caffemodel(path))
    assert report.matched == len(written) - 2 and report.missing == report.extra == []


def test_legacy_blob_shapes_pad_with_leading_ones():
    legacy_bias = weights.StoredBlob((1, 1, 1, 64), legacy=True, copied=(("data", 64),))
    assert legacy_bias.fits((64,)) and legacy_bias.fits((1, 64))
    assert not legacy_bias.fits((64, 1))
    assert not weights.StoredBlob((1, 1, 1, 64), legacy=False, copied=(("data", 64),)).fits((64,))
    # A shape is not enough: Caffe also checks the number of stored values.
    assert not weights.StoredBlob((64,), legacy=False, copied=(("data", 63),)).fits((64,))


def test_v1_layers_and_legacy_blobs_are_read_upgraded():
    net_class = schema.net_parameter_class()
    message = net_class(name="old")
    v1 = message.layers.add(name="conv1", type=4)   # CONVOLUTION
    blob = v1.blobs.add(num=16, channels=3, height=5, width=5)
    blob.data.extend([0.5] * (16 * 3 * 5 * 5))
    bias = v1.blobs.add(num=1, channels=1, height=1, width=16)
    bias.data.extend([0.0] * 16)
    message.layers.add(name="relu1", type=18)
    stored = weights.decode_caffemodel(message.SerializeToString())
    assert [(layer.name, layer.type) for layer in stored] == [
        ("conv1", "Convolution"), ("relu1", "ReLU")]
    report = weights.compare({"conv1": [(16, 3, 5, 5), (16,)], "relu1": []}, stored)
    assert (report.matched, report.mismatched, report.extra) == (1, [], [])


def test_not_a_caffemodel_is_an_error(tmp_path):
    path = tmp_path / "noise.caffemodel"
    path.write_bytes(b"\xff\xfe this is not protobuf \x00\x01")
    with pytest.raises(ArchError, match="not a Caffe model file"):
        weights.read_caffemodel(path)
    path.write_bytes(b"")
    with pytest.raises(ArchError, match="not a Caffe model file"):
        weights.read_caffemodel(path)
    with pytest.raises(ArchError, match="cannot read weights file"):
        weights.read_caffemodel(tmp_path / "absent.caffemodel")


def test_a_truncated_caffemodel_is_an_error_not_a_partial_model(small, tmp_path):
    path = tmp_path / "small.caffemodel"
    weights.write_caffemodel(path, weights.initial_weights(small, seed=3), "small")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ArchError, match="not a Caffe model file"):
        weights.read_caffemodel(path)


def test_generated_resnext50_weights_pass_and_a_renamed_layer_is_named(tmp_path):
    """Acceptance: archc-written weights for a generated ResNeXt-50 pass; one renamed layer fails."""
    shaped = infer_shapes(dsl.compile_file(str(REPO / "archs" / "resnext.arch"),
                                           {"depth": "50", "card": "32"}))
    expected = weights.expected_from_ir(shaped)
    written = weights.initial_weights(shaped)
    good = tmp_path / "resnext50.caffemodel"
    weights.write_caffemodel(good, written)
    report = weights.check(expected, good)
    assert report.matched == sum(1 for shapes in expected.values() if shapes)
    victim = written[len(written) // 2][0]
    renamed = [(f"{name}_x" if name == victim else name, type_, blobs) for name, type_, blobs in written]
    bad = tmp_path / "renamed.caffemodel"
    weights.write_caffemodel(bad, renamed)
    with pytest.raises(weights.WeightsError) as refused:
        weights.check(expected, bad)
    assert f"\n  {victim}\n" in str(refused.value)


def test_weights_command_writes_lists_and_checks(tmp_path, capsys):
    from archc.cli import cmd_weights
    model = tmp_path / "small.prototxt"
    model.write_text(SMALL)
    out = tmp_path / "small.caffemodel"
    assert cmd_weights.main(["--init", str(model), "-o", str(out), "--seed", "4"]) == 0
    assert "2 layers with weights, 223 parameters (seed 4)" in capsys.readouterr().out
    assert cmd_weights.main([str(out)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].endswith("small.caffemodel: 2 layers, 2 with weights, 223 values")
    assert [line.split(None, 2) for line in listing[2:]] == [
        ["conv1", "Convolution", "4 x 3 x 3 x 3, 4"], ["fc", "InnerProduct", "3 x 36, 3"]]
    assert cmd_weights.main([str(out), "--check", str(model)]) == 0
    assert "ok: " in capsys.readouterr().out
    model.write_text(SMALL.replace('name: "conv1"', 'name: "conv1_renamed"'))
    assert cmd_weights.main([str(out), "--check", str(model)]) == 1
    report = capsys.readouterr().out
    assert "1 layer missing from the weights" in report and "\n  conv1_renamed\n" in report
    assert "refused: " in report
    assert cmd_weights.main([str(out), "--check", str(model), "--allow-missing"]) == 0


def test_weights_command_usage_errors(tmp_path, capsys):
    from archc.cli import cmd_weights
    assert cmd_weights.main([]) == 2
    assert cmd_weights.main(["--init", "x.prototxt"]) == 2
    assert "--init MODEL takes -o OUT.caffemodel" in capsys.readouterr().err
    assert cmd_weights.main([str(tmp_path / "absent.caffemodel")]) == 2
    assert "cannot read weights file" in capsys.readouterr().err


def test_a_negative_seed_is_a_usage_error(tmp_path, capsys):
    from archc.cli import cmd_weights
    model = tmp_path / "m.arch"
    model.write_text('net { input "data" [1, 3, 8, 8]  conv(4, 3) as "c" }\n')
    assert cmd_weights.main(["--init", str(model), "-o", str(tmp_path / "w.caffemodel"), "--seed", "-1"]) == 2
    assert "argument --seed: expected" in capsys.readouterr().err
    assert not (tmp_path / "w.caffemodel").exists()


# --- what Caffe's loader checks beyond shapes: the values each blob holds ------------------------

def _small_weights_message(small):
    """The small net's initial weights as a NetParameter, to corrupt field by field."""
    return schema.parse_caffemodel(weights.encode_caffemodel(weights.initial_weights(small)))


def _set_values(blob, field, count):
    getattr(blob, field)[:] = [0.5] * count


# (what is done to the first blob of conv1 (8 x 3 x 3 x 3: 216 values), does Caffe load it?):
# Caffe's Blob::FromProto copies double_data where there is any, else data, then double_diff where
# there is any, else diff where there is any, and checks each holds one value per element.
VALUE_FIELDS = [
    ({"data": 215}, False),
    ({"data": 217}, False),
    ({"data": 0}, False),
    ({"diff": 216}, True),
    ({"diff": 2}, False),
    ({"double_data": 2}, False),          # correct data beside it does not help: Caffe copies this
    ({"double_data": 216}, True),
    ({"double_data": 216, "data": 3}, True),  # data is not read where double_data holds values
    ({"double_diff": 2}, False),
    ({"double_diff": 216, "diff": 5}, True),
    ({"double_diff": 5, "diff": 216}, False),
]


@pytest.mark.parametrize("fields, loads", VALUE_FIELDS, ids=lambda v: str(v))
def test_every_value_field_caffe_copies_must_hold_one_value_per_element(small, tmp_path, fields,
                                                                        loads):
    message = _small_weights_message(small)
    for field, count in fields.items():
        _set_values(message.layer[0].blobs[0], field, count)
    path = tmp_path / "w.caffemodel"
    path.write_bytes(message.SerializeToString())
    report = weights.compare(weights.expected_from_ir(small), weights.read_caffemodel(path))
    assert report.acceptable() == loads
    if not loads:
        wrong = ", ".join(f"{count} {field} values" for field, count in fields.items()
                          if count != 216 and (field.startswith("double") or
                                               f"double_{field}" not in fields))
        assert str(report.mismatched[0]) == (f"conv1: the net needs 8 x 3 x 3 x 3; the weights "
                                             f"have 8 x 3 x 3 x 3 ({wrong})")


def test_blobs_with_values_caffe_would_not_copy_are_refused_before_eval_reaches_caffe(
        caffe, eval_dataset, tmp_path):
    # found by fault injection: Caffe aborted on a wrong-sized diff next to correct data
    message = schema.parse_caffemodel((eval_dataset / "tiny.caffemodel").read_bytes())
    message.layer[0].blobs[0].diff.extend([1.0, 2.0])
    corrupt = tmp_path / "diff.caffemodel"
    corrupt.write_bytes(message.SerializeToString())
    import evalkit
    args = evalkit.eval_args(eval_dataset, "--results", str(tmp_path / "r.json"), "--workers", "0",
                             "--nets", "1", backend="caffe")
    args[args.index("--weights") + 1] = str(corrupt)
    result = subprocess.run([sys.executable, "-m", "archc", "eval", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "diff.caffemodel does not fit the net" in result.stderr
    assert "fc: the net needs 10 x 3, 10; the weights have 10 x 3 (2 diff values), 10" in result.stderr


@pytest.mark.parametrize("field", ["name", "type"])
def test_a_layer_name_or_type_that_is_not_utf8_is_a_message(small, tmp_path, capsys, field):
    from archc.cli import cmd_weights
    written = weights.initial_weights(small)
    written[3] = ("fc" if field == "type" else "PLACE", "PLACE" if field == "type" else "InnerProduct",
                  written[3][2])
    path = tmp_path / "w.caffemodel"
    path.write_bytes(weights.encode_caffemodel(written).replace(b"PLACE", b"f\xffc\xc3("))
    model = tmp_path / "small.prototxt"
    model.write_text(SMALL)
    for argv in ([str(path)], [str(path), "--check", str(model)]):
        assert cmd_weights.main(argv) == 2
        err = capsys.readouterr().err
        assert err == (f"archc: error: {path}: the layer 4 {field} is not UTF-8 text "
                       f"(b'f\\xffc\\xc3('), which a protobuf string must be: fix it in the "
                       f"program that wrote the file\n")


# --- the file itself: Caffe's reader aborts on what it cannot read ------------------------------

def test_a_weights_path_that_is_no_regular_file_is_refused_unread(tmp_path, capsys):
    from archc.cli import cmd_weights
    fifo = tmp_path / "w.caffemodel"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a character device"),
                       (tmp_path, "a directory")):
        with deadline(10):
            assert cmd_weights.main([str(path)]) == 2
        assert capsys.readouterr().err == (f"archc: error: cannot read weights file {path}: "
                                           f"{kind}, not a regular file\n")


def test_a_caffemodel_larger_than_caffe_reads_is_refused_unread(tmp_path, capsys):
    from archc.cli import cmd_weights
    sparse = tmp_path / "huge.caffemodel"
    with open(sparse, "wb") as handle:
        handle.truncate(weights.CAFFE_MAX_BYTES + 1)
    assert cmd_weights.main([str(sparse)]) == 2
    assert capsys.readouterr().err == (f"archc: error: cannot read weights file {sparse}: "
                                       f"2,147,483,648 bytes, more than Caffe reads "
                                       f"(2,147,483,647)\n")


def test_a_caffemodel_caffe_would_read_as_hdf5_is_refused(tmp_path):
    # H5Fis_hdf5 looks for the signature at byte 0, 512, 1024, 2048, ...: Caffe would take the
    # file for HDF5 weights, fail to open it, and abort
    values = np.zeros(1000, np.float32)  # bytes 1024 to 1100 lie among these
    data = bytearray(weights.encode_caffemodel([("fc", "InnerProduct", [values])]))
    data[1024:1032] = b"\x89HDF\r\n\x1a\n"
    path = tmp_path / "w.caffemodel"
    path.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError, match="holds HDF5's file signature at byte 1024, so "
                                                   "Caffe would read it as HDF5 weights"):
        weights.read_caffemodel(path)
    data[1024] = 0  # anywhere else it is just bytes of a value
    data[1100:1108] = b"\x89HDF\r\n\x1a\n"
    path.write_bytes(bytes(data))
    weights.read_caffemodel(path)


