"""`EmulatorState`: what the HTTP handler and the routes use of the emulator they serve.

`Emulator` satisfies it structurally; the handler and the routes are typed against it, so they
depend on this contract and the parts it names, not on the emulator's lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .faults import FaultSchedule
from .rate_limit import FixedWindowRateLimiter
from .request_log import RequestLog, RequestRecord
from .store import ProfileStore


class EmulatorState(Protocol):
    """The emulator as the request handler and the admin and API routes see it."""

    store: ProfileStore
    fault_schedule: FaultSchedule
    rate_limiter: FixedWindowRateLimiter
    request_log: RequestLog
    latency: float

    def credentials_ok(self, app_id: str | None, api_key: str | None) -> bool:
        """Whether a call sent the emulator's application ID and API key."""
        ...

    def list_users(self, params: dict[str, Any]) -> dict[str, Any]:
        """``GET /2/users`` body for decoded query ``params``.

        Raises:
            UnprocessableEntity: naming the first invalid parameter.
        """
        ...

    def delete_user(self, user_id: str) -> dict[str, Any] | None:
        """Delete ``user_id``: the ``DELETE /2/users/{userID}`` body, or None when it is unknown."""
        ...

    @property
    def fault_rate(self) -> float:
        """Probability that an API call without a queued fault gets a random one."""
        ...

    @property
    def fault_kinds(self) -> tuple[str, ...]:
        """Kinds random faults are drawn from."""
        ...

    def set_faults(self, rate: float | None = None, kinds: Iterable[str] | None = None,
                   seed: int | None = None) -> None:
        """Random fault injection settings; arguments left None keep their current value.

        Raises:
            ValueError: when ``rate`` is outside [0, 1] or a kind is unknown.
        """
        ...

    def inject(self, *kinds: str) -> None:
        """Queue faults for the next authorized ``/2/*`` calls, one per call, in order.

        Raises:
            ValueError: when a kind is unknown (then none is queued).
        """
        ...

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the API calls served so far, oldest first."""
        ...

    def clear_requests(self) -> None:
        """Forget the recorded API calls."""
        ...
