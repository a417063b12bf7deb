"""Real Caffe in a long-lived child process: task after task, an abort there a finding here.

The fuzzers check that what archc accepts, Caffe accepts too (a caffemodel archc calls a fit must
load; a prototxt archc accepts must set up). Caffe aborts the whole process on what it cannot
take, so it runs in a child; starting one costs a second or two (importing pycaffe), so one child
takes task after task over a pipe. A child that dies in a task (glog's CHECK, SIGABRT, a crash)
or does not answer by the deadline fails that task, with what Caffe said last, and the next task
starts a fresh child. The child runs a fixed program: no text from a task is executed.

    with CaffeChild() as caffe:
        verdict = caffe.load("net.prototxt", "w.caffemodel")   # Verdict(ok, died, detail)
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# One task per line of stdin, {"prototxt", "weights" (or null), "forward"}, answered with one line:
# {"ok": true} or {"ok": false, "error": ...} for a Python-level failure.
_PROGRAM = """\
import json, sys
from archc.runtime.caffe_env import import_caffe
caffe = import_caffe()
caffe.set_mode_cpu()
for line in sys.stdin:
    task = json.loads(line)
    try:
        net = caffe.Net(task["prototxt"], caffe.TEST)
        if task["weights"] is not None:
            net.copy_from(task["weights"])
        if task["forward"]:
            net.forward()
        reply = {"ok": True}
    except Exception as error:
        reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
    net = None
    print(json.dumps(reply), flush=True)
"""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    died: bool      # the child aborted, crashed or hung: Caffe could not take the task
    detail: str     # Caffe's error or last words; "" when ok


class CaffeChild:
    """One Caffe child at a time, restarted after each death; `deadline_s` bounds a task, a fresh
    child's start-up included."""

    def __init__(self, deadline_s: float = 60.0):
        self.deadline_s = deadline_s
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()  # stderr: a pipe could fill up and block the child
        self.started = 0

    def load(self, prototxt: str | Path, weights: str | Path | None = None,
             forward: bool = False) -> Verdict:
        """Set the net up in TEST phase, copy the weights in, and with `forward` run it forward
        once."""
        if self.process is None:
            self._start()
        task = {"prototxt": str(prototxt), "weights": None if weights is None else str(weights),
                "forward": forward}
        self.log.seek(0)
        self.log.truncate()
        try:
            self.process.stdin.write(json.dumps(task).encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return self._died(hung=False)
        line = self._answer()
        if not line:
            return self._died(hung=line is None)
        reply = json.loads(line)
        return Verdict(reply["ok"], False, reply.get("error", ""))

    def _start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, env={**os.environ, "GLOG_minloglevel": "2"}, start_new_session=True)
        self.started += 1

    def _answer(self) -> bytes | None:
        """The child's answer line; b"" when it died first, None when the deadline passed."""
        deadline = time.monotonic() + self.deadline_s
        while (left := deadline - time.monotonic()) > 0:
            if select.select([self.process.stdout], [], [], left)[0]:
                return self.process.stdout.readline()
        return None

    def _died(self, hung: bool) -> Verdict:
        """Kill what is left of the child and say how it ended."""
        process, self.process = self.process, None
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
        process.stdin.close()
        process.stdout.close()
        if hung:
            return Verdict(False, True, f"Caffe gave no answer within {self.deadline_s} s")
        self.log.seek(0)
        said = self.log.read().decode("utf-8", "replace").strip().splitlines()
        fatal = [line for line in said if line[:1] == "F" and line[1:2].isdigit()]  # glog's FATAL
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
        return Verdict(False, True, f"Caffe died ({how}): {(fatal or said or ['(nothing)'])[-1]}")

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process.stdout.close()
            self.process = None
        self.log.close()

    def __enter__(self) -> "CaffeChild":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
