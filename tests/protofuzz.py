"""Prototxt fuzzing for the promise "a file archc accepts never aborts Caffe".

Shared by `tests/test_fuzz_prototxt.py` (a bounded run in the test suite) and `bench/fuzz_soak.py`
(the long run). Seeds are one-layer nets of every op definition's samples (the ones
tests/test_op_definitions.py checks). A mutation sets one field of a layer, anywhere in its
messages (fillers, engines, param specs and `blobs` included), to a value from a pool of edge
values of its type, or rewires the layer.

The property (`run_case`): the checks `archc time` and `eval` make before Caffe sees a net
(`runtime.loader.checked_for_caffe`) refuse it with an ArchError, or real Caffe sets up what they
pass and runs it forward without aborting (`caffe_child.CaffeChild`); never another exception,
never a hang.
"""
from __future__ import annotations

import functools
import random
import re
import traceback
from pathlib import Path

from google.protobuf import text_format

from archc.codegen import render, schema
from archc.errors import ArchError
from archc.runtime.loader import checked_for_caffe
from archfuzz import Case, Hang, Outcome, deadline
from caffe_child import CaffeChild
from test_op_definitions import CASES, one_layer_net

INT_VALUES = (0, 1, -1, 2, 3, 5, 7, 64, 2 ** 31 - 1, -2 ** 31, 2 ** 32 - 1)
FLOAT_VALUES = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e-38, 3.4e38, -3.4e38, 2.0)
STRING_VALUES = ("", "bogus", "constant", "gaussian", "uniform", "xavier", "msra", "bilinear",
                 "positive_unitball", "data")
UNSIGNED = ("uint32", "uint64")


@functools.cache
def seeds() -> list[str]:
    """One-layer nets of every op sample, rendered (the ceil_mode dialect)."""
    return [render(one_layer_net(op, inputs)) for _, _, op, inputs in CASES]


def _fields(message, path=()):
    """Every (path, message holding it, field descriptor) reachable in `message`, set or not,
    one level into unset sub-messages (so a filler can be added where none was)."""
    for descriptor in message.DESCRIPTOR.fields:
        yield path, message, descriptor
        if descriptor.message_type is not None and not descriptor.is_repeated and \
                (message.HasField(descriptor.name) or len(path) < 2):
            yield from _fields(getattr(message, descriptor.name), (*path, descriptor.name))


def _value(rng: random.Random, descriptor):
    if descriptor.enum_type is not None:
        return rng.choice(descriptor.enum_type.values).number
    kind = descriptor.type
    if kind == descriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind in (descriptor.TYPE_FLOAT, descriptor.TYPE_DOUBLE):
        return rng.choice(FLOAT_VALUES)
    if kind == descriptor.TYPE_STRING:
        return rng.choice(STRING_VALUES)
    value = rng.choice(INT_VALUES)
    if kind in (descriptor.TYPE_UINT32, descriptor.TYPE_UINT64):
        return abs(value) % (2 ** 32)
    return value


def mutate(rng: random.Random, text: str) -> str:
    net = schema.parse_prototxt(text, "ceil_mode")
    for _ in range(rng.choice((1, 1, 2, 3))):
        layer = rng.choice(net.layer)
        choice = rng.random()
        if choice < 0.08:
            layer.blobs.add().data.extend([rng.choice(FLOAT_VALUES)] * rng.choice((0, 1, 4)))
        elif choice < 0.16:
            spec = layer.param.add()
            spec.lr_mult = rng.choice(FLOAT_VALUES)
        elif choice < 0.22:
            layer.top.append(rng.choice(("extra", layer.top[0] if layer.top else "t")))
        elif choice < 0.26 and layer.bottom:
            del layer.bottom[-1]
        else:
            candidates = [(path, holder, d) for path, holder, d in _fields(layer)
                          if d.message_type is None and d.name not in ("name", "type", "bottom", "top")]
            _, holder, descriptor = rng.choice(candidates)
            value = _value(rng, descriptor)
            try:
                if descriptor.is_repeated:
                    getattr(holder, descriptor.name).append(value)
                else:
                    setattr(holder, descriptor.name, value)
            except (ValueError, TypeError):  # out of the field's range: not a file anyone writes
                pass
    return text_format.MessageToString(net)


def random_case(rng: random.Random) -> Case:
    """One mutated one-layer net, as a Case."""
    seed = rng.choice(seeds())
    kind = re.search(r'type: "(\w+)"', seed).group(1)
    return Case({"net.prototxt": mutate(rng, seed)}, "net.prototxt", [], f"prototxt: {kind}")


# ----- the property ------------------------------------------------------------------------------

def run_case(case: Case, directory: Path, caffe: CaffeChild, deadline_s: float) -> Outcome:
    """Check the case as `archc time` and `eval` do before Caffe sees a net, in-process; where
    archc accepts it, Caffe must set it up and run it forward (in `caffe`, a child process)."""
    text = case.files[case.model]
    try:
        with deadline(deadline_s):
            caffe_text = checked_for_caffe(text, case.model)
    except Hang:
        return Outcome(None, "", f"no verdict within {deadline_s} s")
    except ArchError as error:
        return Outcome(error.exit_code, str(error), None)
    except Exception:  # noqa: BLE001 - anything else is a bug of archc's
        return Outcome(None, "", "internal error: " + traceback.format_exc())
    path = directory / "checked.prototxt"
    path.write_text(caffe_text)
    verdict = caffe.load(path, forward=True)
    if not verdict.ok:
        return Outcome(0, "", f"archc accepts the net, Caffe does not run it: {verdict.detail}")
    return Outcome(0, "", None)
