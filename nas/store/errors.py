"""What the store raises about ownership and about reaching its database."""

from __future__ import annotations


class SearchOwned(RuntimeError):
    """A live process owns the search (its heartbeat is fresh): it cannot be claimed now."""


class OwnershipLost(RuntimeError):
    """The lease is no longer current: another process took the search over, or it was
    released. The write that raised it did not happen; its process must stop writing."""


class ResumeLimitReached(RuntimeError):
    """The search was resumed too many times without progress; the claim marked it failed."""


class StoreUnavailable(ConnectionError):
    """The database cannot be opened or reached (after retrying for the grace period)."""
