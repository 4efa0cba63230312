"""The persistence layer: searches, architectures, events and checkpoints (SQLAlchemy 2).

`Store(url)` opens (and migrates) a database; everything it returns is a frozen record.
"""

from .engine import default_url
from .errors import OwnershipLost, ResumeLimitReached, SearchOwned, StoreUnavailable
from .models import ArchitectureRole, ArchitectureState, SearchStatus
from .records import ArchitectureRecord, CheckpointRecord, EventRecord, Lease, SearchRecord
from .store import InvalidTransition, Store, UnknownArchitecture, UnknownSearch

__all__ = [
    "ArchitectureRecord",
    "ArchitectureRole",
    "ArchitectureState",
    "CheckpointRecord",
    "EventRecord",
    "InvalidTransition",
    "Lease",
    "OwnershipLost",
    "ResumeLimitReached",
    "SearchRecord",
    "SearchOwned",
    "SearchStatus",
    "Store",
    "StoreUnavailable",
    "UnknownArchitecture",
    "UnknownSearch",
    "default_url",
]
