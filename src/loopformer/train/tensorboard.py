"""TensorBoard event files beside ``metrics.jsonl`` (the optional ``tensorboard`` package).

``metrics.jsonl`` stays the record of a run; the event files only make its curves
viewable with ``tensorboard --logdir``. So a missing package turns them off in ``auto``
mode, and a failure to write them is one warning line, after which the run goes on
without them. Events are written synchronously from the process that logs (rank 0):
the package's own writer thread would report a failing disk with a traceback on stderr,
out of the run's control. Every record is flushed as it is written, like
``metrics.jsonl``, so a curve is live and a killed run loses no line.

A resumed run appends a new event file to the same folder, opened with a session-start
marker at the first step it trains: TensorBoard then hides what an interrupted session
logged past its last checkpoint, exactly like the rewritten steps of ``metrics.jsonl``.
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

MODES = ("auto", "on", "off")
FOLDER = "tensorboard"  # inside the run directory
INSTALL_HINT = "pip install 'loopformer[tensorboard]'"
_files = itertools.count()  # event files opened by this process, for unique names


def parse_mode(value: Any) -> str:
    """``auto``, ``on`` or ``off``; YAML turns a bare on/off into a boolean, and the
    command line's boolean spellings mean the same here as for any switch."""
    text = str(value).strip().lower()
    text = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}.get(text, text)
    if text not in MODES:
        raise ConfigError(f"tensorboard must be auto, on or off; got {value!r}")
    return text


def event_modules():
    """The package's protocol buffers and record framing, or None when it is not installed."""
    try:
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        return None
    return Event, SessionLog, Summary, RecordWriter


def require(mode: str) -> None:
    """``tensorboard=on`` is a promise of event files: without the package, stop at once."""
    if mode == "on" and event_modules() is None:
        raise ConfigError(f"tensorboard=on needs the tensorboard package ({INSTALL_HINT}); "
                          "or set tensorboard=auto or off")


def scalars(record: dict[str, Any]):
    """(tag, value) of every number in a metrics record: ``train/loss``, ``eval/val_bleu``..."""
    kind = record.get("kind", "metrics")
    for key, value in record.items():
        if key in ("step", "kind") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        yield f"{kind}/{key}", float(value)


class EventLog:
    """The event files of one run directory, opened on the first record (so a run that
    never logs leaves no folder), on the process that calls :meth:`write`."""

    def __init__(self, folder: str | Path, mode: str) -> None:
        require(mode)
        self.folder = Path(folder)
        self.mode = mode
        self.first_step = 0  # the first step this session trains (a resumed run starts later)
        self.file = None
        self.records = None  # the package's record writer over ``file``
        self.types = None  # what :func:`event_modules` returns, once a file is opened

    @property
    def active(self) -> bool:
        return self.mode != "off"

    def start(self, step: int) -> None:
        """A session begins training after ``step``: its events replace any logged later."""
        self.first_step = step + 1

    def write(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        try:
            if self.records is None and not self._open():
                return
            event, _, summary, _ = self.types
            values = [summary.Value(tag=tag, simple_value=value) for tag, value in scalars(record)]
            if values:
                self._emit(event(wall_time=time.time(), step=int(record["step"]), summary=summary(value=values)))
            self.file.flush()
        except Exception as exc:  # noqa: BLE001 - any failure: the events stop, the run goes on
            self._give_up(exc)

    def close(self) -> None:
        """Close the current file (the next record, if any, opens a new one)."""
        file, self.file, self.records = self.file, None, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                self._give_up(exc)

    def _open(self) -> bool:
        """Open a new event file; False (and off for good) when the package is missing."""
        self.types = event_modules()
        if self.types is None:  # auto without the package (``on`` was checked at the start)
            self.mode = "off"
            return False
        event, session_log, _, record_writer = self.types
        self.folder.mkdir(parents=True, exist_ok=True)
        # the name TensorBoard expects; it reads a folder's files in name order
        name = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}.{os.getpid()}.{next(_files)}"
        self.file = open(self.folder / name, "xb")
        self.records = record_writer(self.file)
        self._emit(event(wall_time=time.time(), file_version="brain.Event:2"))
        if self.first_step > 0:  # hide what an interrupted session (or an older run) logged from here on
            self._emit(event(wall_time=time.time(), step=self.first_step,
                             session_log=session_log(status=session_log.START)))
        return True

    def _emit(self, event) -> None:
        self.records.write(event.SerializeToString())

    def _give_up(self, exc: BaseException) -> None:
        text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        print(f"loopformer: warning: cannot write TensorBoard events in {self.folder}: {reason}; "
              "TensorBoard logging is off for this run (metrics.jsonl keeps every record)", file=sys.stderr)
        self.mode = "off"
        file, self.file, self.records = self.file, None, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # already reported: the events are off
