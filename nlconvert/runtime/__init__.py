"""Running the converted networks: ONNX export and sessions, the fast PyTorch path, the
backends every bulk command uses, and their benchmark.

:mod:`.backends` (``torch``, ``onnx``, ``fast``, ``auto``: one interface for predict,
evaluate, features, run and bench), :mod:`.onnx_export` / :mod:`.onnx_session` /
:mod:`.onnx_format` (the ONNX file), :mod:`.frame_major` (the CPU-friendly graph),
:mod:`.fast` (folded norms, SDPA, bf16, compile), :mod:`.fp16` and :mod:`.int8` (reduced
precision ONNX files), :mod:`.cache` (exported graphs and compile artefacts on disk),
:mod:`.bench` (timing and errors against eager fp32).

Nothing is imported here, so that the command line can read this package's torch-free
modules (:mod:`.names`) without loading torch or onnxruntime.
"""
