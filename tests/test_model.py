"""archc.model: MODEL (a prototxt, or an .arch file with its parameters) into one Model, the same
way for every command."""
from __future__ import annotations

import os

import pytest

from archc.codegen import render
from archc.errors import ArchError, UsageError
from archc.model import load_model
from conftest import REPO, deadline
from test_loader import SMALL

RESNEXT = REPO / "archs" / "resnext.arch"


def test_a_prototxt_is_read_as_it_is_and_imported_on_demand(tmp_path):
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(SMALL)
    model = load_model(prototxt)
    assert (model.path, model.overrides, model.text, model.source) == \
        (str(prototxt), {}, SMALL, str(prototxt))
    assert [layer.name for layer in model.net.layers] == ["conv1", "relu1", "pool1", "fc"]
    assert model.name == str(prototxt)


def test_an_arch_file_is_compiled_with_its_parameters(tmp_path):
    model = load_model(RESNEXT, {"depth": "50", "size": "64"})
    assert model.source == f"<{RESNEXT}, generated>"
    assert model.net is model.compiled  # the compiled net itself, not the text imported back
    assert model.text == render(model.net, "ceil_mode")
    assert "dim: 64" in model.text and 'name: "resx16_conv3"' in model.text
    assert model.name == f"{RESNEXT} --depth 50 --size 64"


def test_an_arch_file_is_written_in_the_pooling_dialect_asked_for():
    ceil = load_model(RESNEXT, {"depth": "50"}).text
    round_mode = load_model(RESNEXT, {"depth": "50"}, "round_mode").text
    assert "ceil_mode" in ceil and "round_mode" in round_mode and "ceil_mode" not in round_mode


def test_parameters_given_to_a_prototxt_are_refused(tmp_path):
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(SMALL)
    with pytest.raises(UsageError, match=r"^--depth --card: parameters apply only to \.arch files, "
                                         r"and .*small\.prototxt is a prototxt$"):
        load_model(prototxt, {"depth": "50", "card": "32"})


def test_missing_and_unreadable_files_are_errors_naming_them(tmp_path):
    with pytest.raises(ArchError, match=r"^no such file: .*absent\.arch$"):
        load_model(tmp_path / "absent.arch")
    with pytest.raises(ArchError, match=r"^cannot read .*absent\.prototxt: No such file or directory$"):
        load_model(tmp_path / "absent.prototxt")
    binary = tmp_path / "binary.prototxt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ArchError, match="cannot read .*binary.prototxt"):
        load_model(binary)


def test_a_model_that_is_no_regular_file_is_refused_unread(tmp_path):
    # a FIFO hung every command, /dev/zero filled memory
    fifo = tmp_path / "fifo.prototxt"
    os.mkfifo(fifo)
    library = tmp_path / "lib.arch"
    os.mkfifo(library)
    model = tmp_path / "m.arch"
    model.write_text('import "lib.arch"\nnet { input "data" [1, 3, 8, 8] }\n')
    for path, message in ((fifo, "^cannot read .*: a FIFO, not a regular file$"),
                          ("/dev/zero", "^cannot read .*: a character device, not a regular file$"),
                          (model, "^import 'lib.arch': no such file")):  # imports are files only
        with deadline(10), pytest.raises(ArchError, match=message):
            load_model(path)


def test_a_prototxt_outside_the_ir_loads_and_says_so_only_when_its_net_is_needed(tmp_path):
    # the IR models 2-D convolution only: `archc time` runs an N-D one through Caffe alone
    prototxt = tmp_path / "nd.prototxt"
    prototxt.write_text(SMALL.replace("kernel_size: 3", "kernel_size: 3 force_nd_im2col: true"))
    model = load_model(prototxt)
    assert "force_nd_im2col: true" in model.text
    with pytest.raises(ArchError, match="only 2-D convolution"):
        model.net


@pytest.mark.parametrize("command", [
    ["summary", "{model}", "--depth", "50"],
    ["time", "{model}", "--depth", "50"],
    ["weights", "--init", "{model}", "-o", "{tmp}/w.caffemodel", "--depth", "50"],
    ["eval", "{model}", "--weights", "w", "--val", "v", "--depth", "50"],
])
def test_every_command_loads_its_model_the_same_way(tmp_path, capsys, command):
    from archc.cli.main import main
    prototxt = tmp_path / "small.prototxt"
    prototxt.write_text(SMALL)
    argv = [arg.format(model=prototxt, tmp=tmp_path) for arg in command]
    assert main(argv) == 2
    assert capsys.readouterr().err == (f"archc: error: --depth: parameters apply only to .arch "
                                       f"files, and {prototxt} is a prototxt\n")
