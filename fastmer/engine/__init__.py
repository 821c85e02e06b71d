"""Engines for batch scoring: ONNX export of a trained run, ONNX Runtime and PyTorch engines.

An exported model takes the store's tensor column as it is (``(N, C, H, W)``, dynamic N)
and returns logits; its fastmer config (classes, input column, channels) travels inside
the ONNX file as metadata, so ``fastmer infer`` needs nothing else.
"""

from fastmer.engine.onnx import OnnxEngine, export_onnx
from fastmer.engine.score import TorchEngine, open_engine, score_store

__all__ = ["OnnxEngine", "TorchEngine", "export_onnx", "open_engine", "score_store"]
