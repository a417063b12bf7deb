"""Load a prototxt (generated or hand-written) and its weights into real Caffe, safely.

The prototxt comes as text (an .arch model is compiled by `archc.model` before it gets here).

Caffe aborts the whole process (glog fatal, SIGABRT) on a prototxt it cannot parse, on a layer
whose setup check fails, and on weights of the wrong shape; and it silently leaves layers without
weights at their random fillers. So before Caffe sees anything:

1. pooling rounding is rewritten in the installed schema's spelling (`pool_rounding`), or the net
   is refused when its rounding cannot be expressed;
2. the text is parsed against the installed Caffe's own schema (`caffe_pb2`): syntax errors and
   unknown fields become messages with line and column;
3. the net's structure is checked without Caffe: it is imported into the IR and its shapes are
   inferred with Caffe's rules, which gives errors at the offending layer, and the importer
   refuses every setting Caffe would abort on at set-up. A net with a layer type archc does not
   know (a fork's, in a Caffe built with it) is instead set up once in a child process, whose
   abort is turned into an error message;
4. the weights are read with protobuf and compared, layer by layer, with the parameter blobs the
   constructed net has; loading stops on mismatches (Caffe would abort) and on layers without
   weights unless `allow_missing`.
"""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format

from archc.ir import ArchError, Span, infer_shapes
from archc.runtime import caffe_env, weights
from archc.runtime.pool_rounding import translate_rounding


@dataclass
class LoadedNet:
    net: object                                  # caffe.Net, in TEST phase
    weights_report: weights.WeightsReport | None  # None when loaded without weights
    prototxt_text: str                           # what Caffe was given (rounding translated)


def load_net_text(text: str, source: str = "<prototxt>", weights_path: str | Path | None = None, *,
                  allow_missing: bool = False, gpu: int | None = None,
                  batch: int | None = None, input_size: tuple[int, int] | None = None,
                  force_backward: bool = False) -> LoadedNet:
    """Load prototxt text (a `Model`'s, say) and its weights into Caffe, in TEST phase; `source`
    names the text in messages, and every problem raises ArchError.

    `batch` and `input_size` (height, width) replace those of every input before any check, so
    a size the net cannot take is an error here rather than an abort in Caffe's reshape.
    `force_backward` makes Caffe compute gradients through a deploy net (for timing backward)."""
    caffe_text = checked_for_caffe(text, source, batch=batch, input_size=input_size,
                                   force_backward=force_backward)
    caffe = caffe_env.import_caffe()
    caffe_env.use_device(gpu)
    with _as_file(caffe_text) as path:  # pycaffe reads nets from files only
        net = caffe.Net(path, caffe.TEST)
    report = None
    if weights_path is not None:
        report = weights.check(expected_from_caffe(net), weights_path, allow_missing=allow_missing)
        net.copy_from(str(weights_path))
    return LoadedNet(net, report, caffe_text)


def checked_for_caffe(text: str, source: str, *, batch: int | None = None,
                      input_size: tuple[int, int] | None = None,
                      force_backward: bool = False) -> str:
    """Every check before Caffe sees the net (steps 1 to 3 above; the arguments as for
    `load_net_text`): the text Caffe is to be given, or an ArchError."""
    caffe = caffe_env.import_caffe()
    info = caffe_env.caffe_info()
    translated = translate_rounding(text, info.pool_dialect, source)
    refuse_unknown_layer_types(translated, source, caffe.layer_type_list())
    message = validate_against_schema(translated, source)
    inputs = None
    if batch is not None or input_size is not None:
        inputs = resized_inputs(input_shapes(message), batch, input_size)
        set_input_shapes(message, inputs)
    message.force_backward = message.force_backward or force_backward
    caffe_text = text_format.MessageToString(message)
    if not check_structure(text, source, inputs, passes=force_backward):
        with _as_file(caffe_text) as path:  # Caffe is asked what the IR cannot vouch for
            probe_in_child(path, source, passes=force_backward)
    return caffe_text


@contextmanager
def _as_file(text: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="archc-") as directory:
        path = os.path.join(directory, "net.prototxt")
        Path(path).write_text(text, encoding="utf-8")
        yield path


def input_shapes(message) -> dict[str, list[int]]:
    """Every input blob's shape, however the net declares it: `input` with `input_shape` or
    `input_dim`, or Input layers (one shape for all tops, or one per top)."""
    shapes: dict[str, list[int]] = {}
    dims = list(message.input_dim)
    for index, name in enumerate(message.input):
        if index < len(message.input_shape):
            shapes[name] = list(message.input_shape[index].dim)
        else:
            shapes[name] = dims[4 * index:4 * index + 4]
    for layer in message.layer:
        if layer.type == "Input" and layer.input_param.shape:
            declared = layer.input_param.shape
            for index, top in enumerate(layer.top):
                shapes[top] = list(declared[min(index, len(declared) - 1)].dim)
    return shapes


def resized_inputs(shapes: dict[str, list[int]], batch: int | None,
                   input_size: tuple[int, int] | None) -> dict[str, list[int]]:
    resized = {}
    for name, shape in shapes.items():
        shape = list(shape)
        if batch is not None and shape:
            shape[0] = batch
        if input_size is not None:
            if len(shape) != 4:
                raise ArchError(f"an input size applies to N x C x H x W inputs, and input "
                                f"'{name}' has shape {' x '.join(map(str, shape))}")
            shape[2:] = input_size
        resized[name] = shape
    return resized


def set_input_shapes(message, shapes: dict[str, list[int]]) -> None:
    """Write `shapes` into the net's input declarations (as `input_shape` / one shape per top), in
    `input_dim` where the net used it: Caffe's upgrade of a V0 net keeps only that."""
    if message.input:
        legacy = len(message.input_dim) > 0
        del message.input_dim[:]
        del message.input_shape[:]
        for name in message.input:
            if legacy:
                message.input_dim.extend(shapes[name])
            else:
                message.input_shape.add().dim.extend(shapes[name])
    for layer in message.layer:
        if layer.type == "Input":
            del layer.input_param.shape[:]
            for top in layer.top:
                layer.input_param.shape.add().dim.extend(shapes[top])


class MissingLayerTypes(caffe_env.CaffeError):
    """The net uses layer types this Caffe lacks (a fork's): nothing to run it with."""

    exit_code = 1


def refuse_unknown_layer_types(text: str, source: str, known: list[str]) -> None:
    """Refuse a net with layer types this Caffe does not register (those of forks, declared in
    .arch files), which Caffe would abort on, before it sees the net."""
    message = caffe_env.caffe_pb2().NetParameter()
    try:  # the types only: fields of unknown layers' messages are skipped here
        text_format.Parse(text, message, allow_unknown_field=True)
    except text_format.ParseError:
        return  # validate_against_schema reports it, at its line
    types = {layer.type for layer in message.layer}
    if "Python" in types:
        raise ArchError(f"{source} has a Python layer, which makes Caffe import and run a module "
                        f"the file names: archc never runs code a model names; use a model "
                        f"without Python layers")
    cudnn = any(value == _CUDNN for layer in message.layer for _, value in _engines(layer))
    if cudnn and not caffe_env.caffe_info().gpu:
        raise MissingLayerTypes(f"{source} asks for `engine: CUDNN`, which this CPU-only Caffe "
                                f"does not have (it aborts): remove the engine fields, or give "
                                f"engine: CAFFE")
    missing = sorted(types - set(known))
    if missing:
        raise MissingLayerTypes(f"{source} uses layer type(s) {', '.join(missing)}, which this "
                                f"Caffe ({caffe_env.caffe_info().path}) does not have: they come "
                                f"from Caffe forks; run the net with a Caffe built with them "
                                f"(ARCHC_CAFFE_ROOT)")


_CUDNN = 2  # Engine enum value, the same in every *_param message that has one


def _engines(layer):
    """(field, value) of every `engine` set in a layer's parameter messages."""
    for descriptor, params in layer.ListFields():
        if descriptor.message_type is not None and not descriptor.is_repeated:
            field = params.DESCRIPTOR.fields_by_name.get("engine")
            if field is not None and params.HasField("engine"):
                yield field, params.engine


def validate_against_schema(text: str, source: str):
    """Parse with the installed Caffe's schema; an ArchError at the line and column otherwise."""
    message = caffe_env.caffe_pb2().NetParameter()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        line, column = error.GetLine(), error.GetColumn()
        detail = re.sub(r"^\d+:\d+ : ", "", str(error))
        raise ArchError(f"the installed Caffe cannot parse this prototxt: {detail}",
                        Span(source, line, column) if line else None) from None
    return message


def check_structure(text: str, source: str, inputs: dict[str, list[int]] | None = None,
                    passes: bool = False) -> bool:
    """Infer every shape in the IR (with `inputs` replacing the declared input shapes). True when
    the net passed and Caffe has every layer's CPU forward pass (and, with `passes`, backward);
    False when the IR cannot represent it, or a layer may lack one of those passes (then Caffe
    must be asked); raises ArchError for a net Caffe would abort on, or that the importer
    refuses (a setting Caffe checks at set-up, a training-only layer)."""
    from archc.codegen.parse import NotModelled, import_net
    try:
        net = import_net(text, source)
    except NotModelled:  # a fork's type this Caffe has, N-D convolution: only Caffe can tell
        return False
    if inputs is not None:
        net.inputs = {name: tuple(inputs[name]) for name in net.inputs}
    infer_shapes(net)
    return all(layer.op.cpu_forward() and (layer.op.backward or not passes) for layer in net.layers)


# A fixed program (no user text is executed): set the net up in TEST phase, run it forward once
# (some settings the IR does not model abort only there) and, when asked, backward (Caffe aborts
# on a layer without a backward pass).
_PROBE = ("import sys\n"
          "from archc.runtime.caffe_env import import_caffe\n"
          "caffe = import_caffe()\n"
          "net = caffe.Net(sys.argv[1], caffe.TEST)\n"
          "net.forward()\n"
          "if sys.argv[2:] == ['passes']:\n"
          "    net.backward()\n")
_LAYER_SETUP = re.compile(r"\] (?:Creating layer|Setting up) (\S+)$", re.MULTILINE)


def probe_in_child(path: str, source: str, passes: bool = False) -> None:
    """Set the net up in a child process and run it forward once (with `passes`, backward too),
    so that a Caffe abort becomes an ArchError here."""
    # Full logging: the last layer Caffe announced is the one whose setup aborted.
    result = caffe_env.run_in_child(_PROBE, path, *(["passes"] if passes else []))
    if result.returncode == 0:
        return
    detail = caffe_env.fatal_message(result.stderr)
    if "Network initialization done" in result.stderr:
        passes_run = "forward and backward passes" if passes else "forward pass"
        raise ArchError(f"Caffe cannot run the {passes_run} of {source}: {detail}")
    layers = _LAYER_SETUP.findall(result.stderr)
    where = f" at layer '{layers[-1]}'" if layers else ""
    raise ArchError(f"Caffe cannot set up the net in {source}{where}: {detail}")


def expected_from_caffe(net) -> weights.Expected:
    """The parameter blob shapes each layer of a constructed caffe.Net needs."""
    expected: weights.Expected = {name: [] for name in net._layer_names}
    for name, blobs in net.params.items():
        expected[name] = [tuple(blob.data.shape) for blob in blobs]
    return expected
