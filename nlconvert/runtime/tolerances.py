"""How far a backend's outputs may be from the exact model: one definition for the runtime.

``max|out - ref| / max|ref|`` over logits, pooled features and probabilities. The backends
(:mod:`.backends`) check against these, and the ONNX export (:mod:`.onnx_export`) verifies a
float16 file with the same bound, so both import them from here, down the package's graph.
"""

from __future__ import annotations

#: Within this relative error of ``torch`` a backend counts as exact.
EXACT_RTOL = 1e-4
#: Stated errors of the reduced-precision paths (see :meth:`Backend.check` and the README's
#: measurements). bf16 measured up to 0.15 on single-view probabilities of a seeded I3D-NL
#: (near-tied classes swing most) and 0.07 on logits; fp16 (float16 ONNX files, verified at
#: export) 5e-2. An int8 file (``bench --int8``) is approximate without a bound.
REDUCED_RTOL = {"bf16": 0.3, "fp16": 5e-2, "int8": 1.0}
