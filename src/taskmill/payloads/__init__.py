"""Safe task payloads: a versioned envelope, msgspec JSON/msgpack, limits and signing.

Needs msgspec (the ``sqlite`` and ``redis`` extras bring it:
``pip install 'taskmill[sqlite]'``). Importing :mod:`taskmill` never imports msgspec;
only importing this package does. No pickle anywhere. See docs/payloads.md.
"""

from __future__ import annotations

try:
    import msgspec as _msgspec  # noqa: F401  (availability check)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "taskmill.payloads needs msgspec; install it with "
        "pip install 'taskmill[sqlite]' (or 'taskmill[redis]', or pip install msgspec)"
    ) from exc

from taskmill._codec import CodecStatistics as CodecStatistics
from taskmill._codec import PayloadCodec as PayloadCodec
from taskmill._envelope import AttemptInfo as AttemptInfo
from taskmill._envelope import Envelope as Envelope
from taskmill._envelope import EnvelopeOptions as EnvelopeOptions
from taskmill._envelope import ErrorInfo as ErrorInfo
from taskmill._envelope import RetrySummary as RetrySummary
from taskmill._serializers import JsonSerializer as JsonSerializer
from taskmill._serializers import MsgpackSerializer as MsgpackSerializer
from taskmill._serializers import PayloadLimits as PayloadLimits
from taskmill._serializers import Serializer as Serializer
from taskmill._signing import Signer as Signer
from taskmill._signing import SignerStatistics as SignerStatistics

__all__ = [
    "AttemptInfo",
    "CodecStatistics",
    "Envelope",
    "EnvelopeOptions",
    "ErrorInfo",
    "JsonSerializer",
    "MsgpackSerializer",
    "PayloadCodec",
    "PayloadLimits",
    "RetrySummary",
    "Serializer",
    "Signer",
    "SignerStatistics",
]

# Public names report their public home (reprs, tracebacks and docs say taskmill.payloads.X).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("taskmill._"):
        _obj.__module__ = __name__
del _name, _obj
