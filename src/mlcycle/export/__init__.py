"""Export: ONNX conversion, the parity check, the reference profile and the bundle writer.

Needs mlcycle's ``train`` extra (skl2onnx, onnx, scikit-learn, pandas). Reading a bundle
needs none of it: see :mod:`mlcycle.bundle`.
"""

from __future__ import annotations

from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import ParityError, ParityReport, check_parity
from mlcycle.export.profile import build_profile

__all__ = [
    "ParityError",
    "ParityReport",
    "build_profile",
    "check_parity",
    "make_signature",
    "to_onnx",
    "write_bundle",
]
