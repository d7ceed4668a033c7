"""The file kinds nlconvert reads and writes, by suffix (torch-free: the CLI reads it)."""

#: Converted model files (:mod:`nlconvert.convert.modelfile`).
MODEL_SUFFIXES = (".pt", ".pth", ".safetensors")
#: Original Caffe2 checkpoints: pickles and init_net protobufs (converted in memory on load).
CHECKPOINT_SUFFIXES = (".pkl", ".pickle", ".pb")
#: Exported ONNX files.
ONNX_SUFFIX = ".onnx"
