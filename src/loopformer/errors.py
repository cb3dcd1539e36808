"""Error types users can catch; the CLI turns each into a one-line message."""


class LoopformerError(Exception):
    """Base class for every error the library raises on purpose.

    Messages often quote user input (keys, file contents, text lines); control characters
    in it are escaped so that every message stays on one line.
    """

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (_one_line(args[0]),)
        super().__init__(*args)


def _one_line(text: str) -> str:
    if not any(c in text for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        return text
    return "".join(repr(c)[1:-1] if c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029" else c for c in text)


class ConfigError(LoopformerError, ValueError):
    """A configuration, preset name or override is invalid."""


class CheckpointError(LoopformerError):
    """A checkpoint directory is missing, corrupt, truncated or does not match its config."""
