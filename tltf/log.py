"""tltf's one output channel: the `tltf` logger.

Progress is logged at INFO, advice at WARNING (shown as `warning: ...`).
Out of the box both go to stdout, so `tltf.fit(...)` in a notebook shows its
progress; the CLI installs its own handler (`use_handler`), and a library
user can silence or redirect the logger like any other (`logging.getLogger("tltf")`).
Errors a user can fix are not logged: they are raised as `TltfError`, and the
CLI prints them alone on stderr.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("tltf")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"tltf: {message}"
        return f"warning: {message}" if record.levelno >= logging.WARNING else message


class _Console(logging.StreamHandler):
    """INFO and WARNING to stdout; ERROR (a run stopped by a crash) to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr if record.levelno >= logging.ERROR else sys.stdout
        super().emit(record)


def use_handler(handler: logging.Handler) -> None:
    """Replaces the handlers of the `tltf` logger with `handler` (tltf's message format)."""
    for old in list(logger.handlers):
        logger.removeHandler(old)
    handler.setFormatter(_Format())
    logger.addHandler(handler)


logger.setLevel(logging.INFO)
logger.propagate = False
use_handler(_Console())
