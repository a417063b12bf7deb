"""archc's upgrade against Caffe's own: UpgradeNetAsNeeded, called on the same files by a small C++
program linked with pycaffe's libcaffe (the way Caffe's upgrade tools call it).

pycaffe can only judge nets it can build, so data layers, loss layers and failed upgrades are
compared here: every V0 field, V1 data layers, whole .caffemodel files with parameters archc's
schema lacks, and random V0, V1 and current nets. Where Caffe upgrades, archc's result is the same
NetParameter; where Caffe aborts or reports the upgrade failed, archc refuses.
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, text_format

from archc.codegen import schema, upgrade
from archc.errors import ArchError

# Reads a NetParameter (binary with --binary), upgrades it as Caffe does on loading, writes it;
# exits 1 where Caffe reports the upgrade failed, and aborts (SIGABRT) where Caffe does.
ORACLE_SOURCE = r'''
#include <cstring>
#include <string>
#include "caffe/proto/caffe.pb.h"
namespace caffe {
bool UpgradeNetAsNeeded(const std::string& param_file, NetParameter* param);
bool ReadProtoFromTextFile(const char* filename, google::protobuf::Message* proto);
void WriteProtoToTextFile(const google::protobuf::Message& proto, const char* filename);
bool ReadProtoFromBinaryFile(const char* filename, google::protobuf::Message* proto);
void WriteProtoToBinaryFile(const google::protobuf::Message& proto, const char* filename);
}
int main(int argc, char** argv) {
  bool binary = argc == 4 && std::strcmp(argv[1], "--binary") == 0;
  const char* in = argv[argc - 2];
  const char* out = argv[argc - 1];
  caffe::NetParameter net;
  if (!(binary ? caffe::ReadProtoFromBinaryFile(in, &net) : caffe::ReadProtoFromTextFile(in, &net)))
    return 2;
  bool success = caffe::UpgradeNetAsNeeded(in, &net);
  if (binary) caffe::WriteProtoToBinaryFile(net, out); else caffe::WriteProtoToTextFile(net, out);
  return success ? 0 : 1;
}
'''


@pytest.fixture(scope="module")
def caffe_upgrade(caffe, tmp_path_factory):
    """`caffe_upgrade(path, binary)`: (exit status, upgraded caffe_pb2.NetParameter or None)."""
    from caffe.proto import caffe_pb2

    libraries = sorted(Path(caffe.__file__).parent.glob("libcaffe.so*"))
    tools = [tool for tool in ("g++", "protoc") if shutil.which(tool) is None]
    if not libraries or tools:
        pytest.skip(f"cannot build the upgrade oracle: needs {', '.join(tools) or 'libcaffe.so'} "
                    f"(beside pycaffe, as `make caffe` builds it)")
    directory = tmp_path_factory.mktemp("oracle")
    # caffe.pb.h from the schema pycaffe was built with, by the protoc of the system protobuf
    proto = descriptor_pb2.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    descriptors = descriptor_pb2.FileDescriptorSet(file=[proto])
    (directory / "caffe.desc").write_bytes(descriptors.SerializeToString())
    (directory / "oracle.cpp").write_text(ORACLE_SOURCE)
    for command in (["protoc", "--descriptor_set_in=caffe.desc", "--cpp_out=.", proto.name],
                    ["g++", "-o", "oracle", "oracle.cpp", "-I.", str(libraries[0]), "-lprotobuf",
                     f"-Wl,-rpath,{libraries[0].parent}"]):
        built = subprocess.run(command, cwd=directory, capture_output=True, text=True)
        if built.returncode:
            pytest.skip(f"cannot build the upgrade oracle: {' '.join(command[:2])}: "
                        f"{built.stderr.strip()[-500:]}")

    def run(path: Path, binary: bool):
        out = path.with_suffix(".caffe")
        result = subprocess.run([str(directory / "oracle"), *(["--binary"] if binary else []),
                                 str(path), str(out)], capture_output=True,
                                env={**os.environ, "GLOG_minloglevel": "3"})
        if result.returncode not in (0, 1):
            return result.returncode, None
        if binary:
            return result.returncode, caffe_pb2.NetParameter.FromString(out.read_bytes())
        return result.returncode, text_format.Parse(out.read_text(), caffe_pb2.NetParameter())
    return run


def check_agreement(caffe_upgrade, path: Path, binary: bool = False) -> None:
    from caffe.proto import caffe_pb2

    status, theirs = caffe_upgrade(path, binary)
    try:
        data = path.read_bytes()
        old = schema.parse_caffemodel(data) if binary else schema.parse_prototxt(data.decode())
        ours = upgrade.upgrade_net(old).net
    except ArchError as error:
        assert status != 0, f"{path}: archc refuses ({error.message}), Caffe upgrades it"
        return
    assert status == 0, f"{path}: Caffe {'aborts' if theirs is None else 'fails'}, archc upgrades it"
    assert caffe_pb2.NetParameter.FromString(ours.SerializeToString()) == theirs, path


EVERY_V0_FIELD = '''name: "every V0 field"
input: "in"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
force_backward: true
layers { layer { name: "data" type: "data" source: "db" meanfile: "mean" batchsize: 4 cropsize: 2
  mirror: true scale: 0.5 rand_skip: 3 } top: "data" top: "label" }
layers { layer { name: "images" type: "images" source: "list" meanfile: "mean" batchsize: 4
  cropsize: 2 mirror: true scale: 0.25 rand_skip: 5 shuffle_images: true new_height: 40
  new_width: 30 } top: "images" top: "images_label" }
layers { layer { name: "windows" type: "window_data" source: "windows" meanfile: "mean"
  batchsize: 4 cropsize: 2 mirror: true det_fg_threshold: 0.25 det_bg_threshold: 0.75
  det_fg_fraction: 0.5 det_context_pad: 16 det_crop_mode: "square" } top: "windows" top: "w_label" }
layers { layer { name: "hdf5" type: "hdf5_data" source: "h5" batchsize: 4 } top: "hdf5" }
layers { layer { name: "pad" type: "padding" pad: 2 } bottom: "data" top: "pad" }
layers { layer { name: "conv" type: "conv" num_output: 4 biasterm: false group: 1 kernelsize: 3
  stride: 2 weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 1 }
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 blobs { num: 1 data: 2 } }
  bottom: "pad" top: "conv" }
layers { layer { name: "pool" type: "pool" pool: STOCHASTIC kernelsize: 3 stride: 2 pad: 1 }
  bottom: "conv" top: "pool" }
layers { layer { name: "norm" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.25 k: 2 }
  bottom: "pool" top: "norm" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.2 } bottom: "norm" top: "norm" }
layers { layer { name: "fc" type: "innerproduct" num_output: 5 biasterm: true
  weight_filler { type: "xavier" } bias_filler { type: "constant" } } bottom: "norm" top: "fc" }
layers { layer { name: "cat" type: "concat" concat_dim: 0 } bottom: "fc" bottom: "hdf5" top: "cat" }
layers { layer { name: "loss" type: "infogain_loss" source: "H" } bottom: "cat" bottom: "label" }
layers { layer { name: "out" type: "hdf5_output" hdf5_output_param { file_name: "f.h5" } }
  bottom: "cat" }
layers { layer { name: "r" type: "relu" new_num: 2 new_channels: 3 } bottom: "fc" top: "fc" }
'''
V1_DATA_LAYERS = '''input: "in"
input_shape { dim: 1 dim: 2 }
state { stage: "deploy" }
layers { name: "d" type: DATA top: "d" data_param { source: "db" scale: 0.5 mean_file: "m"
  crop_size: 3 mirror: true backend: LMDB } include { phase: TRAIN } }
layers { name: "i" type: IMAGE_DATA top: "i" image_data_param { source: "l" crop_size: 2 } }
layers { name: "w" type: WINDOW_DATA top: "w" transform_param { mean_value: 1 } }
layers { name: "n" type: NONE bottom: "d" top: "n" param: "a" param: "b"
  blob_share_mode: PERMISSIVE blobs_lr: 3 weight_decay: 1 weight_decay: 2 weight_decay: 4
  loss_weight: 2 exclude { stage: "x" } }
layers { bottom: "n" top: "t" }
'''


@pytest.mark.parametrize("text", [EVERY_V0_FIELD, V1_DATA_LAYERS],
                         ids=["every V0 field", "V1 data layers"])
def test_archc_upgrades_as_caffe_upgrades(caffe_upgrade, tmp_path, text):
    path = tmp_path / "old.prototxt"
    path.write_text(text)
    check_agreement(caffe_upgrade, path)


def test_caffemodels_upgrade_as_caffe_upgrades_them(caffe_upgrade, tmp_path):
    """Whole weight files: parameters archc's schema lacks kept, V0 padding merged."""
    from caffe.proto import caffe_pb2

    v1_type = caffe_pb2.V1LayerParameter
    v1 = caffe_pb2.NetParameter(name="v1", input=["data"])   # inputs without dims: an old habit
    conv = v1.layers.add(name="conv", type=v1_type.CONVOLUTION, bottom=["data"], top=["conv"],
                         blobs_lr=[1, 2])
    conv.convolution_param.num_output = 2
    conv.blobs.add(num=2, channels=3, height=1, width=1, data=[1, 2, 3, 4, 5, 6])
    v1.layers.add(name="power", type=v1_type.POWER).power_param.power = 2
    v1.layers.add(name="top5", type=v1_type.ACCURACY).accuracy_param.top_k = 5
    v1.layers.add(name="loss", type=v1_type.SOFTMAX_LOSS).loss_param.ignore_label = 3
    v1.layers.add(name="cut", type=v1_type.THRESHOLD).threshold_param.threshold = 0.1
    v1.layers.add(name="norm", type=v1_type.MVN).mvn_param.across_channels = True
    v1.layers.add(name="db", type=v1_type.DATA).data_param.crop_size = 4
    v0 = caffe_pb2.NetParameter(name="v0", input=["data"], input_dim=[1, 3, 1, 1])
    padding = v0.layers.add(bottom=["data"], top=["pad"])
    padding.layer.name, padding.layer.type, padding.layer.pad = "pad", "padding", 1
    conv = v0.layers.add(bottom=["pad"], top=["conv"])
    conv.layer.name, conv.layer.type = "conv", "conv"
    conv.layer.num_output, conv.layer.kernelsize = 2, 1
    conv.layer.blobs.add(num=2, channels=3, height=1, width=1, data=[1, 2, 3, 4, 5, 6])
    for net in (v1, v0):
        path = tmp_path / f"{net.name}.caffemodel"
        path.write_bytes(net.SerializeToString())
        check_agreement(caffe_upgrade, path, binary=True)


V0_TYPES = ["conv", "pool", "relu", "innerproduct", "lrn", "dropout", "concat", "data", "images",
            "window_data", "hdf5_data", "hdf5_output", "infogain_loss", "softmax", "padding", "tanh"]
V0_FIELDS = ["num_output: 3", "biasterm: false", 'weight_filler { type: "x" }', "bias_filler { }",
             "pad: 1", "kernelsize: 3", "group: 2", "stride: 2", "pool: AVE", "dropout_ratio: 0.3",
             "local_size: 3", "alpha: 2", "beta: 0.5", "k: 2", 'source: "s"', "scale: 0.5",
             'meanfile: "m"', "batchsize: 4", "cropsize: 2", "mirror: true", "rand_skip: 3",
             "shuffle_images: true", "new_height: 4", "new_width: -2", "concat_dim: 2",
             "det_fg_threshold: 0.1", "det_bg_threshold: 0.2", "det_fg_fraction: 0.3",
             "det_context_pad: 2", 'det_crop_mode: "square"', 'hdf5_output_param { file_name: "f" }',
             "new_num: 3", "blobs_lr: 1", "weight_decay: 2", "blobs { num: 1 data: 2 }"]
V1_TYPES = ["CONVOLUTION", "POOLING", "DATA", "IMAGE_DATA", "WINDOW_DATA", "RELU", "NONE",
            "INNER_PRODUCT", "LRN", "SPLIT", "CONCAT", "HDF5_DATA"]
V1_FIELDS = {   # field name -> values, one of which a layer may set
    "blobs_lr": ["blobs_lr: 1", "blobs_lr: 0.5 blobs_lr: 2"], "weight_decay": ["weight_decay: 3"],
    "param": ['param: "a"', 'param: "a" param: "b"'],
    "blob_share_mode": ["blob_share_mode: PERMISSIVE"],
    "loss_weight": ["loss_weight: 2"], "include": ["include { phase: TEST }"],
    "exclude": ['exclude { stage: "x" }'],
    "data_param": ['data_param { source: "a" scale: 2 }', "data_param { crop_size: 3 mirror: false }"],
    "image_data_param": ['image_data_param { scale: 0.1 root_folder: "r" }'],
    "window_data_param": ['window_data_param { crop_size: 1 mean_file: "m" }'],
    "transform_param": ["transform_param { mean_value: 3 }"],
    "convolution_param": ["convolution_param { num_output: 2 }"],
    "pooling_param": ["pooling_param { pool: MAX }"],
    "relu_param": ["relu_param { negative_slope: 0.1 }"],
    "concat_param": ["concat_param { axis: 2 }"], "lrn_param": ["lrn_param { k: 3 }"],
    "hdf5_data_param": ['hdf5_data_param { source: "h" }'],
}


def random_net(rng: random.Random) -> str:
    """A random small net in one of the three formats, with fields each upgrade step handles."""
    lines = []
    if rng.random() < 0.7:
        inputs = rng.randint(1, 2)
        lines += [f'input: "in{i}"' for i in range(inputs)]
        form = rng.random()   # never fewer shapes than inputs: Caffe would read past the end
        if form < 0.4:
            lines += [f"input_dim: {rng.randint(1, 5)}" for _ in range(4 * inputs + rng.randint(0, 1))]
        elif form < 0.7:
            lines += ["input_shape { dim: 2 dim: 3 }"] * rng.randint(inputs, inputs + 1)
    lines += rng.sample(["force_backward: true", 'state { stage: "s" }', "debug_info: true"],
                        rng.randint(0, 2))
    blobs = ["in0"] if any(line == 'input: "in0"' for line in lines) else []
    layout = rng.choice(["V0", "V1", "current"])
    for index in range(rng.randint(1, 6)):
        read = rng.sample(blobs, min(len(blobs), rng.randint(0, 2)))
        bottoms = " ".join(f'bottom: "{blob}"' for blob in read)
        if layout == "V0":
            fields = " ".join(rng.sample(V0_FIELDS, rng.randint(0, 3)))
            lines.append(f'layers {{ layer {{ name: "l{index}" type: "{rng.choice(V0_TYPES)}" '
                         f'{fields} }} {bottoms} top: "t{index}" }}')
        elif layout == "V1":
            names = rng.sample(sorted(V1_FIELDS), rng.randint(0, 4))
            fields = " ".join(rng.choice(V1_FIELDS[name]) for name in names)
            lines.append(f'layers {{ name: "l{index}" type: {rng.choice(V1_TYPES)} {fields} {bottoms} '
                         f'top: "t{index}" }}')
        else:
            specs = " ".join(rng.choice(["param { lr_mult: 2 }", 'param { name: "x" }', "param { }"])
                             for _ in range(rng.randint(0, 4)))
            kind = rng.choice(["BatchNorm", "ReLU"])
            lines.append(f'layer {{ name: "l{index}" type: "{kind}" {specs} {bottoms} '
                         f'top: "t{index}" }}')
        blobs.append(f"t{index}")
    return "\n".join(lines) + "\n"


def test_random_nets_upgrade_as_caffe_upgrades_them(caffe_upgrade, tmp_path):
    rng = random.Random(15)
    for index in range(150):
        path = tmp_path / f"random{index}.prototxt"
        path.write_text(random_net(rng))
        check_agreement(caffe_upgrade, path)
