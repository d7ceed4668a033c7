"""Helpers of the deployment steps (ONNX export, runtime, benchmarks).

``fp16``: float16 conversion of an exported ONNX graph; ``fast``: the fastest CPU inference
path; ``synthetic``: seeded random networks and clips for tests, benchmarks and examples.
"""
