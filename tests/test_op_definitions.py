"""Every op definition is complete and agrees with itself, with the schema and with real Caffe.

For each op in `OPS`, instances are made from its defaults and with each of its fields changed
alone; each one that infers on a sample input is rendered, imported back to the same op,
rendered again byte for byte, initialised (`weights --init`) and, with Caffe, set up and timed.
An op definition whose renderer forgets a field, whose importer reads another, or whose DSL
spelling emits something the importer cannot read fails here.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from archc.codegen import render, schema
from archc.codegen.parse import import_net
from archc.dsl.primitives import PRIMITIVES
from archc.ir import ArchError, Layer, Net, infer_shapes
from archc.ir.ops import (ELTWISE_OPERATIONS, LRN_REGIONS, OPS, POOL_METHODS,
                          REDUCTION_OPERATIONS, ROUNDINGS)
from archc.ir.ops.base import FILLERS, caffe_field_names, short_float
from archc.runtime.weights import initial_weights
from golden import set_up_in_caffe

SAMPLE_INPUT = (2, 6, 12, 12)
# Inputs for ops whose bottoms must relate to each other, or that take other than one or two
# bottoms: every sample an op variant accepts is a case of its own.
SAMPLE_INPUTS: dict[str, list[list[tuple[int, ...]]]] = {
    "Scale": [[SAMPLE_INPUT], [SAMPLE_INPUT, (6,)], [SAMPLE_INPUT, (2, 6)]],
    "Bias": [[SAMPLE_INPUT], [SAMPLE_INPUT, (6,)], [SAMPLE_INPUT, (2, 6)]],
    "Crop": [[SAMPLE_INPUT, (2, 6, 8, 8)]],
    "Filter": [[SAMPLE_INPUT, (2,)], [SAMPLE_INPUT, (2, 3), (2, 1, 1)]],
    "BatchReindex": [[SAMPLE_INPUT, (3,)]],
    "LSTM": [[(3, 2, 5), (3, 2)], [(3, 2, 5), (3, 2), (2, 4)], [(3, 2, 5), (3, 2), (1, 2, 3), (1, 2, 3)]],
    "RNN": [[(3, 2, 5), (3, 2)], [(3, 2, 5), (3, 2), (2, 4)], [(3, 2, 5), (3, 2), (1, 2, 3)]],
    "LSTMUnit": [[(1, 2, 3), (1, 2, 12), (1, 2)]],
}
# Values for fields whose type says too little: strings are enums, tuples lists.
FIELD_VALUES = {
    ("Pooling", "method"): POOL_METHODS,
    ("Pooling", "rounding"): ROUNDINGS,
    ("LRN", "norm_region"): LRN_REGIONS,
    ("SPP", "pool"): POOL_METHODS,
    ("Reduction", "operation"): REDUCTION_OPERATIONS,
    ("ArgMax", "axis"): (None, 1, -1),
    ("Crop", "offset"): ((2,), (1, 3)),
    ("Parameter", "shape"): ((), (2, 3)),
    ("Eltwise", "operation"): ELTWISE_OPERATIONS,
    ("Eltwise", "coeff"): ((0.5, 2.0),),
    ("Reshape", "dims"): ((0, -1), (0, 3, 2, -1)),
    ("Slice", "slice_point"): ((2,), (1, 4)),
}


# Where an op's defaults are no valid layer, the sample its variants start from; and samples
# that changing one field of it cannot reach.
BASES = {
    "Pooling": {"kernel_h": 3, "kernel_w": 3, "stride_h": 2, "stride_w": 2},
    "Reshape": {"dims": (0, -1)},
    "Clip": {"min": -0.5, "max": 0.5},
    "SPP": {"pyramid_height": 1},
    "LSTM": {"num_output": 3},
    "RNN": {"num_output": 3},
}
EXTRA_SAMPLES = {"Pooling": [{"method": "AVE", "global_pooling": True}]}


def _required_value(op_class, field) -> object:
    key = (op_class.caffe_type, field.name)
    if key in FIELD_VALUES:
        return FIELD_VALUES[key][0]
    return {"int": 3, "float": 0.5}[field.type if isinstance(field.type, str) else field.type.__name__]


def _variants(field, value, op_class) -> list:
    key = (op_class.caffe_type, field.name)
    if key in FIELD_VALUES:
        return [v for v in FIELD_VALUES[key] if v != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value + 2]
    if isinstance(value, float):  # values a float32 field holds exactly, as Caffe reads them back
        return [0.25, short_float(value * 0.5 + 0.125)]
    raise AssertionError(f"{op_class.__name__}.{field.name}: add sample values to FIELD_VALUES")


def instances(op_class) -> list:
    """The op with its defaults, and with each field changed alone (where the result is valid)."""
    fields = dataclasses.fields(op_class)
    base = {f.name: _required_value(op_class, f) for f in fields
            if f.default is dataclasses.MISSING}
    base.update(BASES.get(op_class.caffe_type, {}))
    made = [op_class(**base)] + [op_class(**extra) for extra in EXTRA_SAMPLES.get(op_class.caffe_type, [])]
    for field in fields:
        value = base.get(field.name, field.default)
        made.extend(op_class(**{**base, field.name: variant})
                    for variant in _variants(field, value, op_class))
    return made


def input_samples(op_class) -> list[list[tuple[int, ...]]]:
    if op_class.caffe_type in SAMPLE_INPUTS:
        return SAMPLE_INPUTS[op_class.caffe_type]
    most = op_class.max_bottoms
    return [[SAMPLE_INPUT] * max(op_class.min_bottoms, 1 if most is None else min(most, 2))]


def one_layer_net(op, inputs) -> Net | None:
    """A net that runs `op` on `inputs`, with the first number of tops it accepts; None when the
    op cannot take them (that variant is not a valid layer). A net needs an input even where
    the op reads none."""
    bottoms = tuple(f"in{i}" for i in range(len(inputs)))
    blobs = dict(zip(bottoms, inputs)) or {"unread": SAMPLE_INPUT}
    most = op.max_tops()
    for tops in range(op.min_tops, (3 if most is None else most) + 1):
        net = Net(dict(blobs), [Layer("layer", op, bottoms, tuple(f"out{i}" for i in range(tops)))])
        try:
            infer_shapes(net)
        except ArchError:
            continue
        return net
    return None


def _wiring(net: Net) -> list:
    """The layers without their source positions."""
    return [(layer.name, layer.op, layer.bottoms, layer.tops) for layer in net.layers]


def _cases() -> list:
    """(Caffe type, id, op, inputs) of every valid sample; the field-coverage test below says
    whether they are enough."""
    cases = []
    for op_class in OPS.values():
        samples = input_samples(op_class)
        for index, op in enumerate(instances(op_class)):
            for number, inputs in enumerate(samples):
                if one_layer_net(op, inputs):
                    case_id = f"{op_class.caffe_type}-{index}" + (f"-{number}" if len(samples) > 1 else "")
                    cases.append((op_class.caffe_type, case_id, op, inputs))
    return cases


CASES = _cases()
CASE_IDS = [case_id for _, case_id, _, _ in CASES]


@pytest.mark.parametrize("caffe_type", sorted(OPS))
def test_every_field_is_exercised_by_a_valid_instance(caffe_type):
    """Each field of the op takes, in some valid sample, a value other than the first sample's."""
    valid = [op for name, _, op, _ in CASES if name == caffe_type]
    assert valid, f"{caffe_type}: no valid sample instance"
    first = valid[0]
    for field in dataclasses.fields(first):
        assert any(getattr(op, field.name) != getattr(first, field.name) for op in valid), \
            f"{caffe_type}.{field.name}: no valid sample changes it; add values or a base"


@pytest.mark.parametrize("caffe_type", sorted(OPS))
def test_an_op_is_an_immutable_value(caffe_type):
    """Nets compare and hash their ops: like a frozen dataclass, an op refuses assigning or
    deleting a field and setting anything else, and equal values make equal, equally hashed ops."""
    op = next(op for name, _, op, _ in CASES if name == caffe_type)
    assert_immutable_value(op)


def assert_immutable_value(op) -> None:
    names = [field.name for field in dataclasses.fields(op)]
    for name in [*names, "caffe_type", "unknown"]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(op, name, 1)
    for name in names:
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(op, name)
    copy = dataclasses.replace(op)
    assert copy == op and hash(copy) == hash(op) and repr(copy) == repr(op)


def test_an_op_takes_its_fields_as_a_dataclass_does():
    convolution = OPS["Convolution"]
    assert convolution(8, 3, 3, group=2) == convolution(8, kernel_h=3, kernel_w=3, group=2)
    assert convolution(8, 3, 3).stride_h == 1 and OPS["ReLU"]().negative_slope == 0.0
    for args, kwargs, problem in [((8, 3, 3, 1, 1, 0, 0, 1, 1, True, 1), {}, "11 values"),
                                  ((8, 3), {}, "needs field 'kernel_w'"),
                                  ((8, 3, 3), {"num_output": 4}, "'num_output' twice"),
                                  ((8, 3, 3), {"stride": 2}, "no field 'stride'")]:
        with pytest.raises(TypeError, match=problem):
            convolution(*args, **kwargs)


@pytest.mark.parametrize("caffe_type, case_id, op, inputs", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dialect", ["ceil_mode", "round_mode"])
def test_render_import_render_is_identity(caffe_type, case_id, op, inputs, dialect):
    net = one_layer_net(op, inputs)
    text = render(net, dialect)
    imported = import_net(text, "<rendered>")
    assert _wiring(imported) == _wiring(net), text
    assert render(imported, dialect) == text


@pytest.mark.parametrize("caffe_type, case_id, op, inputs", CASES, ids=CASE_IDS)
def test_weights_init_fills_every_parameter_blob(caffe_type, case_id, op, inputs):
    net = one_layer_net(op, inputs)
    shaped = infer_shapes(net)
    blobs = op.param_blobs(list(shaped.layers[0].inputs))
    assert all(blob.filler in FILLERS for blob in blobs)
    weights = initial_weights(shaped)
    if not blobs:
        assert weights == []
        return
    [(name, type_, arrays)] = weights
    assert (name, type_) == ("layer", caffe_type)
    assert [a.shape for a in arrays] == [blob.shape for blob in blobs]
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays)


@pytest.mark.parametrize("caffe_type", sorted(OPS))
def test_caffe_fields_and_defaults_agree_with_the_schema(caffe_type):
    op_class = OPS[caffe_type]
    messages = schema.schema_messages("ceil_mode")
    layer_fields = {f.name: f for f in messages["LayerParameter"].fields}
    if op_class.param_message is None:
        assert not caffe_field_names(op_class)
        return
    assert op_class.param_message in layer_fields, f"the schema has no {op_class.param_message}"
    message = {f.name: f for f in messages[layer_fields[op_class.param_message].type].fields}
    for field in dataclasses.fields(op_class):
        if "caffe" not in field.metadata:
            continue
        name = field.metadata["caffe"] or field.name
        assert name in message, f"{caffe_type}.{field.name}: the schema has no field {name}"
        spec = message[name]
        if field.default is dataclasses.MISSING:
            continue
        if spec.label == "repeated":
            assert field.default == (), f"{caffe_type}.{name}: a repeated field defaults to empty"
        elif isinstance(field.default, float):
            assert math.isclose(field.default, float(spec.default or 0)), f"{caffe_type}.{name}"
        else:
            assert field.default == spec.default, f"{caffe_type}.{name}: default differs"


def _sample_ops(primitive) -> list:
    """What a spelling emits given its defaults, and sample values for what it requires."""
    arguments = {param.name: param.default for param in primitive.params}
    samples = {"int": 3, "pair": 3, "number": 0.5, "ints": [0, -1]}
    arguments.update({param.name: samples[param.kind]
                      for param in primitive.params if param.required or param.name == "kernel"})
    return primitive.build(arguments)


def test_every_dsl_op_emits_ops_the_importer_reads():
    emitted = set()
    for primitive in PRIMITIVES.values():
        for op in _sample_ops(primitive):
            emitted.add(op.caffe_type)
            assert type(op) is OPS[op.caffe_type]
    assert emitted <= set(OPS)


# The DSL spellings of ops that read or write other than one blob, each with arguments and the
# inputs it reads (a list cursor of them): each is compiled from an .arch file and put through
# what the op cases above check.
SPELLED_CASES = [
    ("split", "", [SAMPLE_INPUT]),
    ("split", "copies = 3", [SAMPLE_INPUT]),
    ("silence", "", [SAMPLE_INPUT, (2, 3)]),
    ("parameter", "shape = [2, 3]", []),
    ("crop", "axis = 2, offset = [1, 3]", SAMPLE_INPUTS["Crop"][0]),
    ("batch_reindex", "", SAMPLE_INPUTS["BatchReindex"][0]),
    ("filter", "", SAMPLE_INPUTS["Filter"][1]),
    ("lstm", "3", SAMPLE_INPUTS["LSTM"][1]),
    ("lstm", "3, expose_hidden = true", SAMPLE_INPUTS["LSTM"][2]),
    ("rnn", "3, expose_hidden = true", SAMPLE_INPUTS["RNN"][2]),
    ("lstm_unit", "", SAMPLE_INPUTS["LSTMUnit"][0]),
    ("scale", "axis = 0, bias = false", SAMPLE_INPUTS["Scale"][2]),
    ("bias", "axis = 0", SAMPLE_INPUTS["Bias"][2]),
    ("slice", "points = [2]", [SAMPLE_INPUT]),
    ("maxpool", "2, top = [\"pooled\", \"mask\"]", [SAMPLE_INPUT]),
]


def test_every_op_archc_models_has_a_dsl_spelling():
    assert [caffe_type for caffe_type, op in OPS.items() if not op.primitives] == []


def test_every_spelling_of_several_blobs_is_a_case_and_names_what_it_reads():
    """Merges aside, each spelling whose op reads or may write other than one blob is compiled
    below, and one that reads a number of them names them for its messages."""
    several = set()
    for name, primitive in PRIMITIVES.items():
        op = _sample_ops(primitive)[0]
        if not primitive.merge and (op.min_bottoms, op.max_bottoms, op.max_tops()) != (1, 1, 1):
            several.add(name)
            counted = op.min_bottoms > 1 or (op.max_bottoms or 0) > 1  # too few or many to say
            assert bool(primitive.reads) == counted, \
                f"{name}: `reads` names the inputs of an op reading a count of them, in Caffe's order"
    assert several == {name for name, _, _ in SPELLED_CASES}


@pytest.mark.parametrize("name, arguments, inputs", SPELLED_CASES,
                         ids=[f"{name}-{index}" for index, (name, _, _) in enumerate(SPELLED_CASES)])
def test_a_spelling_of_several_blobs_compiles_imports_initialises_and_runs(
        caffe, tmp_path, name, arguments, inputs):
    from archc import dsl
    from archc.runtime.timing import time_net

    lines = [f'input "in{i}" {list(shape)}\n  let in{i} = current' for i, shape in enumerate(inputs)]
    lines.append(f"from [{', '.join(f'in{i}' for i in range(len(inputs)))}]" if len(inputs) > 1 else
                 "" if inputs else f'input "unread" {list(SAMPLE_INPUT)}')
    lines.append(f'{name}({arguments}) as "layer"')
    path = tmp_path / "model.arch"
    path.write_text("net {\n  " + "\n  ".join(lines) + "\n}\n")
    net = dsl.compile_file(str(path), {})
    [layer] = net.layers
    assert layer.bottoms == tuple(f"in{i}" for i in range(len(inputs)))
    text = render(net)
    assert _wiring(import_net(text, "<rendered>")) == _wiring(net)
    assert render(import_net(text, "<rendered>")) == text
    shaped = infer_shapes(net)
    blobs = layer.op.param_blobs(list(shaped.layers[0].inputs))
    assert [a.shape for _, _, arrays in initial_weights(shaped) for a in arrays] == \
        [blob.shape for blob in blobs]
    loaded = set_up_in_caffe(net, text)
    assert {blob: tuple(loaded.blobs[blob].data.shape) for blob in shaped.blobs} == shaped.blobs
    if not layer.op.index_bottoms:  # random values are no indices
        assert "layer" in [timed.name for timed in time_net(loaded, iterations=1, warmup=0).layers]


def test_several_tops_shape_render_and_import():
    from archc.ir.ops import Pooling, Slice

    net = Net({"data": (1, 8, 6, 6)}, [
        Layer("cut", Slice(axis=1, slice_point=(3,)), ("data",), ("a", "b")),
        Layer("pool", Pooling("MAX", 2, 2, 2, 2), ("b",), ("pooled", "mask")),
    ])
    shaped = infer_shapes(net)
    assert shaped.blobs == {"data": (1, 8, 6, 6), "a": (1, 3, 6, 6), "b": (1, 5, 6, 6),
                            "pooled": (1, 5, 3, 3), "mask": (1, 5, 3, 3)}
    text = render(net)
    assert 'top: "a"\n  top: "b"' in text and "slice_point: 3" in text
    assert _wiring(import_net(text)) == _wiring(net)


def test_ave_pooling_has_no_mask_top():
    from archc.ir.ops import Pooling

    net = Net({"data": (1, 2, 4, 4)}, [Layer("pool", Pooling("AVE", 2, 2, 2, 2), ("data",), ("p", "m"))])
    with pytest.raises(ArchError, match="has 2 top blobs: it writes 1"):
        infer_shapes(net)


@pytest.mark.parametrize("caffe_type, case_id, op, inputs", CASES, ids=CASE_IDS)
def test_caffe_sets_up_and_times_every_op(caffe, caffe_type, case_id, op, inputs):
    """Real Caffe reads what archc writes for each op, allocates the inferred shapes, and times
    it (ops that read indices, and those a CPU Caffe cannot run, aside)."""
    from archc.runtime.timing import time_net

    net = one_layer_net(op, inputs)
    shaped = infer_shapes(net)
    loaded = set_up_in_caffe(net, render(net))
    assert {name: tuple(loaded.blobs[name].data.shape) for name in shaped.blobs} == shaped.blobs
    assert [tuple(b.data.shape) for b in loaded.params.get("layer", [])] == \
        op.param_shapes(list(shaped.layers[0].inputs))
    if op.index_bottoms or not op.cpu_forward():  # random values are no indices; GPU-only ops
        return
    report = time_net(loaded, iterations=1, warmup=0)
    assert "layer" in [layer.name for layer in report.layers]


def test_every_layer_type_caffe_registers_is_modelled_or_refused(caffe):
    from archc.codegen.parse import REFUSED_TYPES

    assert set(caffe.layer_type_list()) - {"Input"} <= set(OPS) | set(REFUSED_TYPES)


def test_schema_agrees_with_real_caffe(caffe):
    """Every message and field archc's schema describes is Caffe's own: number, label, type and
    default (BVLC master's caffe.proto, the round_mode dialect), as net_spec reflects on caffe_pb2."""
    from caffe.proto import caffe_pb2

    ours = {f.name for f in schema.schema_messages("round_mode")["LayerParameter"].fields}
    assert ours == set(caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name), \
        "every field of Caffe's LayerParameter, so that every Caffe net parses"
    descriptor_types = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool",
                        9: "string", 12: "bytes", 13: "uint32"}
    for name, spec in schema.schema_messages("round_mode").items():
        real = caffe_pb2.DESCRIPTOR.message_types_by_name[name]
        for field in spec.fields:
            theirs = real.fields_by_name.get(field.name)
            assert theirs is not None, f"{name}.{field.name} is not in Caffe's schema"
            assert theirs.number == field.number, f"{name}.{field.name}"
            assert theirs.is_repeated == (field.label == "repeated"), f"{name}.{field.name}"
            if theirs.message_type is not None:
                assert theirs.message_type.name == field.type, f"{name}.{field.name}"
            elif theirs.enum_type is not None:
                assert theirs.enum_type.name == field.type, f"{name}.{field.name}"
                if field.default is not None:
                    assert theirs.enum_type.values_by_number[theirs.default_value].name == field.default
            else:
                assert descriptor_types[theirs.type] == field.type, f"{name}.{field.name}"
                if isinstance(field.default, str):
                    assert theirs.default_value == field.default, f"{name}.{field.name}"
                elif field.default is not None:
                    assert math.isclose(theirs.default_value, field.default, rel_tol=1e-6), \
                        f"{name}.{field.name}: default {theirs.default_value} in Caffe"


def _first_case(caffe_type: str) -> tuple:
    return next((op, inputs) for name, _, op, inputs in CASES if name == caffe_type)


def test_caffe_runs_the_passes_each_definition_promises(caffe, tmp_path):
    """A sample of every op that claims a CPU forward pass and a backward pass runs both (the
    backward forced) in Caffe, all in one net; one of each op that lacks either makes Caffe abort."""
    from archc.runtime.loader import probe_in_child

    def probe(layers_and_inputs: list, name: str) -> None:
        net = Net({}, [])
        for number, (op, inputs) in enumerate(layers_and_inputs):
            one = one_layer_net(op, inputs)
            net.inputs.update({f"n{number}_{blob}": shape for blob, shape in one.inputs.items()})
            [layer] = one.layers
            net.layers.append(dataclasses.replace(
                layer, name=f"n{number}_{layer.name}", bottoms=tuple(f"n{number}_{b}" for b in layer.bottoms),
                tops=tuple(f"n{number}_{t}" for t in layer.tops)))
        path = tmp_path / f"{name}.prototxt"
        path.write_text("force_backward: true\n" + render(net))
        probe_in_child(str(path), name, passes=True)

    samples: dict[tuple[str, bool], tuple] = {}
    for caffe_type, _, op, inputs in CASES:
        samples.setdefault((caffe_type, op.backward and op.cpu_forward()), (op, inputs))
    probe([sample for (_, runs), sample in samples.items() if runs], "runs")
    for (caffe_type, runs), sample in samples.items():
        if not runs:
            with pytest.raises(ArchError, match="cannot run the forward and backward passes"):
                probe([sample], caffe_type)
