"""A prototxt mutator for the promise "a file archc accepts never aborts Caffe".

Seeds are one-layer nets of every op definition's samples (the ones tests/test_op_definitions.py
checks). A mutation sets one field of a layer, anywhere in its messages (fillers, engines, param
specs and `blobs` included), to a value from a pool of edge values of its type, or rewires the
layer. The oracle: each case goes through the loader `archc time` and `eval` use
(`runtime.loader.load_net_text`) and, when it loads, one forward pass, in a worker process
(`CaffeWorkers`): a worker that dies has found an abort; an error other than ArchError is a bug.
"""
from __future__ import annotations

import multiprocessing
import queue
import random
import traceback
from dataclasses import dataclass

from google.protobuf import text_format

from archc.codegen import render, schema
from archc.errors import ArchError
from test_op_definitions import CASES, one_layer_net

INT_VALUES = (0, 1, -1, 2, 3, 5, 7, 64, 2 ** 31 - 1, -2 ** 31, 2 ** 32 - 1)
FLOAT_VALUES = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-45, 1e-38, 3.4e38, -3.4e38, 2.0)
STRING_VALUES = ("", "bogus", "constant", "gaussian", "uniform", "xavier", "msra", "bilinear",
                 "positive_unitball", "data")
UNSIGNED = ("uint32", "uint64")


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


# ----- running Caffe where an abort kills only a worker --------------------------------------

def _caffe_worker(jobs, results) -> None:
    from archc.runtime.loader import load_net_text
    while (job := jobs.get()) is not None:
        index, text = job
        try:
            load_net_text(text, "<mutated>").net.forward()
            outcome = "ran"
        except ArchError:
            outcome = "refused"
        except Exception:  # noqa: BLE001 - anything else is a bug of archc's
            outcome = traceback.format_exc()
        results.put((index, outcome))


@dataclass
class Verdict:
    index: int
    outcome: str   # "ran", "refused", "aborted", or the traceback of an internal error


class CaffeWorkers:
    """Caffe set-ups and forward passes in worker processes: a case whose worker dies aborted."""

    def __init__(self, count: int = 2):
        self.context = multiprocessing.get_context("spawn")
        self.results = self.context.Queue()
        self.workers = [self._start() for _ in range(count)]

    def _start(self):
        jobs = self.context.Queue()
        process = self.context.Process(target=_caffe_worker, args=(jobs, self.results), daemon=True)
        process.start()
        return process, jobs

    def run(self, cases: list[tuple[int, str]]) -> list[Verdict]:
        """Each case on one worker at a time; a worker that dies mid-case is replaced."""
        verdicts, pending = [], list(cases)
        busy: dict[int, int] = {}  # worker slot -> case index
        while pending or busy:
            for slot, (process, jobs) in enumerate(self.workers):
                if slot not in busy and pending:
                    index, text = pending.pop()
                    jobs.put((index, text))
                    busy[slot] = index
            try:
                index, outcome = self.results.get(timeout=0.2)
                busy = {s: i for s, i in busy.items() if i != index}
                verdicts.append(Verdict(index, outcome))
            except queue.Empty:  # look for dead workers
                pass
            for slot, (process, _) in enumerate(self.workers):
                if not process.is_alive() and slot in busy:
                    verdicts.append(Verdict(busy.pop(slot), "aborted"))
                    self.workers[slot] = self._start()
        return verdicts

    def close(self) -> None:
        for process, jobs in self.workers:
            jobs.put(None)
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
