"""What `archc export`, the onnxruntime and torch backends, and `export --check` share: the net
and its parameter arrays as the export stage takes them, from a .caffemodel, from `weights
--init`'s fillers, or none (a structural export); with BatchNorm folded when asked; and the
exported model run in process.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archc.export import to_pytorch
from archc.export.common import Parameters
from archc.ir import ArchError, Net, ShapedNet, infer_shapes
from archc.runtime import fold_batchnorm, weights

TARGETS = ("onnx", "pytorch")


@dataclass(frozen=True)
class Prepared:
    """The net to export, shapes inferred, and its parameters (None: structural)."""

    shaped: ShapedNet
    parameters: Parameters | None


def parameters_of(shaped: ShapedNet, weights_path: str | None, seed: int = 0) -> Parameters:
    """The layers' parameter blobs: read from `weights_path`, else `weights --init`'s fillers."""
    if weights_path is not None:
        return weights.read_parameters(weights_path, shaped)
    return {name: blobs for name, _, blobs in weights.initial_weights(shaped, seed)}


def prepare(net: Net, parameters: Parameters | None, fold: bool = False) -> Prepared:
    """The net (and parameters) to export; `fold`: each Convolution -> BatchNorm [-> Scale] chain
    as one convolution (runtime.fold_batchnorm)."""
    folds = fold_batchnorm.plan(net) if fold else []
    if not folds:
        return Prepared(infer_shapes(net), parameters)
    folded = fold_batchnorm.folded_net(net, folds)
    if parameters is not None:
        parameters = dict(parameters)
        for fold in folds:
            parameters[fold.convolution] = fold_batchnorm.folded_parameters(
                parameters[fold.convolution], parameters[fold.batch_norm],
                None if fold.scale is None else parameters[fold.scale], fold.eps)
    return Prepared(infer_shapes(folded), parameters)


def written_blobs(shaped: ShapedNet) -> list[str]:
    """Every blob a layer writes, in the order the net first writes them."""
    return list(dict.fromkeys(top for layer in shaped.net.layers for top in layer.tops))


class OnnxRuntimeRun:
    """The net exported to ONNX and loaded into an ONNX Runtime session (CPU)."""

    def __init__(self, prepared: Prepared, outputs: list[str], threads: int = 0):
        import onnxruntime

        from archc.export.to_onnx import to_onnx  # the onnx extra loads only when used
        model = to_onnx(prepared.shaped, prepared.parameters, outputs)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's own choice
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        self.inputs = list(prepared.shaped.net.inputs)
        self.outputs = outputs

    def __call__(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(None, dict(zip(self.inputs, inputs)))
        return dict(zip(self.outputs, values))


class TorchRun:
    """The net's PyTorch program evaluated in process (the generated model.py's code, as data),
    with its state dict loaded, on the CPU or CUDA device `gpu`."""

    def __init__(self, prepared: Prepared, outputs: list[str], gpu: int | None = None):
        import torch
        if gpu is not None and not (torch.cuda.is_available() and gpu < torch.cuda.device_count()):
            raise ArchError(f"--gpu {gpu}: PyTorch sees {torch.cuda.device_count()} CUDA "
                            f"device(s) here")
        self.torch = torch
        self.device = torch.device("cpu" if gpu is None else f"cuda:{gpu}")
        self.program = to_pytorch.program(prepared.shaped, outputs)
        module = to_pytorch.build_module(self.program)
        state = to_pytorch.state_dict(prepared.shaped, self.program, prepared.parameters)
        module.load_state_dict({key: torch.from_numpy(np.asarray(value)) for key, value in state.items()})
        self.module = module.to(self.device).eval()

    def __call__(self, *inputs: np.ndarray) -> dict[str, np.ndarray]:
        with self.torch.inference_mode():
            values = to_pytorch.run(self.program, self.module,
                                    [self.torch.from_numpy(x).to(self.device) for x in inputs])
            # detached: a Parameter layer's top is its learned tensor itself
            return {blob: value.detach().cpu().numpy() for blob, value in values.items()}
