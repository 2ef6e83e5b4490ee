"""Suite-wide isolation."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that configures logging (the service's ``configure_logging`` puts a handler on the root
    logger writing to the sys.stderr of that moment, which is pytest's capture) must not leave it behind:
    a later test's log call would write to the closed capture stream and print "--- Logging error ---"
    with a traceback into the stderr another test asserts on."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
