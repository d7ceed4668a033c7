"""Helpers of the deployment steps (ONNX export, runtime, benchmarks).

``fp16``: float16 conversion of an exported ONNX graph; ``fast``: the fastest CPU inference
path; ``synthetic``: seeded random networks and clips for tests, benchmarks and examples.
"""

# The graph layouts nlconvert.onnx_export can write (here, free of torch imports, so that the
# command line can offer them without loading torch): "frames" = frame_major.FrameMajorNet,
# the default, fastest in ONNX Runtime on CPU; "ncthw" = the model's own 3-D graph.
GRAPH_LAYOUTS = ("frames", "ncthw")
