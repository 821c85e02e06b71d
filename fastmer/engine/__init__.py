"""Engines for batch scoring: ONNX export of a trained run and ONNX Runtime inference.

An exported model takes the store's tensor column as it is (``(N, C, H, W)``, dynamic N)
and returns logits; its fastmer config (classes, input column, channels) travels inside
the ONNX file as metadata, so ``fastmer infer`` needs nothing else.
"""

from fastmer.engine.onnx import OnnxEngine, export_onnx, infer_store

__all__ = ["OnnxEngine", "export_onnx", "infer_store"]
