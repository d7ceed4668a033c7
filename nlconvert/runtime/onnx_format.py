"""What an nlconvert ONNX file looks like from outside: its input and output names and the
keys of its ``metadata_props``. Written by :mod:`.onnx_export`, read by :mod:`.onnx_session`.

Free of torch and onnx imports, so that readers of a file need neither.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..arch import FEATURE_OUTPUTS, ArchSpec, Head

INPUT_NAME = "clip"
#: The outputs of a file per head: the clip head gives the logits first, then the features.
OUTPUT_NAMES: dict[str, tuple[str, ...]] = {"clip": FEATURE_OUTPUTS, "fully_conv": ("probs",)}
DYNAMIC_AXES = {0: "batch", 2: "frames", 3: "height", 4: "width"}

# Keys of the ONNX metadata_props.
META_ARCH = "nlconvert.arch"
META_HEAD = "nlconvert.head"
META_CLASS_NAMES = "nlconvert.class_names"
META_VERSION = "nlconvert.version"
META_PROVENANCE = "nlconvert.provenance"
META_PRECISION = "nlconvert.precision"
META_NORMALIZATION = "nlconvert.normalization"
META_DYNAMIC = "nlconvert.dynamic"
META_LAYOUT = "nlconvert.layout"


@dataclass
class OnnxMetadata:
    """The nlconvert metadata of an ONNX file."""

    arch: ArchSpec
    head: Head
    class_names: list[str] | None
    precision: str = "fp32"
    version: str = ""
    layout: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_props(self, *, normalization: dict[str, Any], dynamic: bool) -> dict[str, str]:
        """The ``metadata_props`` key -> string map of this metadata."""
        return {
            META_ARCH: self.arch.to_json(),
            META_HEAD: self.head,
            META_CLASS_NAMES: json.dumps(self.class_names),
            META_VERSION: self.version,
            META_PROVENANCE: json.dumps(self.provenance, default=str, sort_keys=True),
            META_PRECISION: self.precision,
            META_NORMALIZATION: json.dumps(normalization),
            META_DYNAMIC: json.dumps(sorted(DYNAMIC_AXES.values()) if dynamic else []),
            META_LAYOUT: self.layout,
        }

    @classmethod
    def from_props(cls, props: dict[str, str]) -> OnnxMetadata | None:
        """The metadata of a file's ``metadata_props`` (None if it is not an nlconvert file)."""
        if META_ARCH not in props:
            return None
        names = json.loads(props.get(META_CLASS_NAMES, "null") or "null")
        head = props.get(META_HEAD, "clip")
        return cls(
            arch=ArchSpec.from_json(props[META_ARCH]),
            head="fully_conv" if head == "fully_conv" else "clip",
            class_names=list(names) if names else None,
            precision=props.get(META_PRECISION, "fp32"),
            version=props.get(META_VERSION, ""),
            layout=props.get(META_LAYOUT, ""),
            provenance=json.loads(props.get(META_PROVENANCE, "{}") or "{}"),
        )
