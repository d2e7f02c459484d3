"""The one event contract: normalizing source records and extracting correlation keys.

Free of Dagster and of I/O, so the batch assets (per page) and the streaming sidecar (per
webhook) call the very same code. See docs/contract.md.
"""

from cc_events.context import NormalizeContext
from cc_events.keys import CorrelationKey, KeyExtractor
from cc_events.model import Actor, InvalidRecord, NormalizedEvent, Target
from cc_events.registry import normalize

__all__ = [
    "Actor",
    "CorrelationKey",
    "InvalidRecord",
    "KeyExtractor",
    "NormalizeContext",
    "NormalizedEvent",
    "Target",
    "normalize",
]
