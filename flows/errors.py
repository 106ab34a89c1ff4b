"""One exception hierarchy for user-facing errors; the CLI prints the message on one line."""


class ArchiveError(Exception):
    """An error a user can act on; its message is shown as-is."""


class ConfigError(ArchiveError):
    """A setting or argument is invalid."""


class StoreError(ArchiveError):
    """The object store cannot be reached or refused an operation."""


class KeyRejected(StoreError):
    """A key tries to escape its store's root or is otherwise unusable."""


class NotFound(ArchiveError):
    """Something asked for is not in the catalogue or the store."""
