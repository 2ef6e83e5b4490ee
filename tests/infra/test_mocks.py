"""fastapi_deploy.mocks runs are isolated: what one failed run leaves behind does not fail the next."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from fastapi_deploy.mocks import run_callable


def _fail(message: str) -> Any:
    raise ValueError(message)


def failing_program(message: str) -> Callable[[], None]:
    """A program whose resource inputs fail to resolve: several failed Outputs, so the run stops at the first
    one and leaves the others behind, unretrieved."""

    def program() -> None:
        for i in range(3):
            bad = pulumi.Output.from_input(i).apply(lambda _: _fail(message))
            pulumi.CustomResource("test:index:Thing", f"thing-{i}", {"value": bad})

    return program


def test_a_failed_run_does_not_leak_its_error_into_the_next() -> None:
    with pytest.raises(ValueError, match="error A"):
        run_callable(failing_program("error A"))
    # A program failing at once, before any resource: its own error, not one left over from the run before.
    with pytest.raises(ValueError, match="error B") as second:
        run_callable(lambda: _fail("error B"))
    assert "error A" not in str(second.value)

    with pytest.raises(ValueError, match="error C") as third:
        run_callable(failing_program("error C"))
    assert "error B" not in str(third.value)

    # And a run that succeeds, succeeds.
    result = run_callable(lambda: pulumi.export("ok", pulumi.Output.from_input(1).apply(lambda v: v + 1)))
    assert result.outputs == {"ok": 2}
