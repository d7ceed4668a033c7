"""Parity: the same clip through the numpy Caffe2 reference, PyTorch and ONNX, layer by layer."""

from .compare import LayerComparison, Tolerance, compare_arrays
from .run import ParityResult, run_parity

__all__ = ["LayerComparison", "ParityResult", "Tolerance", "compare_arrays", "run_parity"]
