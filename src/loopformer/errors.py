"""Error types users can catch; the CLI turns each into a one-line message."""


class LoopformerError(Exception):
    """Base class for every error the library raises on purpose."""


class ConfigError(LoopformerError, ValueError):
    """A configuration, preset name or override is invalid."""


class CheckpointError(LoopformerError):
    """A checkpoint directory is missing, corrupt, truncated or does not match its config."""
