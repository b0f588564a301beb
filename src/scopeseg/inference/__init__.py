"""Inference: predictors over torch / ONNX Runtime engines, video in and out."""
