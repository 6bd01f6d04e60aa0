"""The admin endpoints (``/_emulator/*``), to drive a standalone emulator from another process.

They need the same credentials as the API but are never rate limited, faulted or recorded. The
package docstring lists them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any
from urllib.parse import unquote

from .contract import EmulatorState
from .errors import error_body

_USER_PREFIX = "/_emulator/users/"


def route_admin_call(emu: EmulatorState, method: str, raw_path: str, data: Any) -> tuple[int, Any]:
    """``(status, JSON payload)`` of an authorized admin call; ``data`` is its decoded JSON body.

    Raises:
        ValueError, TypeError: the body does not fit the endpoint (the caller answers 400).
            Changes made before the error stay (a PUT keeps the profiles before a bad one).
    """
    if raw_path == "/_emulator/users":
        if method == "GET":
            return 200, emu.store.users()
        if method == "PUT":
            if not isinstance(data, list) or not all(isinstance(p, dict) for p in data):
                raise ValueError("Invalid request body")
            stored = [emu.store.upsert(p) for p in data]
            return 200, {"status": 200, "upserted": len(stored)}
        return 405, error_body(405, "Method Not Allowed")
    if raw_path.startswith(_USER_PREFIX):
        if method != "DELETE":
            return 405, error_body(405, "Method Not Allowed")
        if emu.store.delete(unquote(raw_path[len(_USER_PREFIX):])):
            return 200, {"status": 200, "message": "User deleted"}
        return 404, error_body(404, "Not Found")
    if raw_path == "/_emulator/faults" and method == "POST":
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError("Invalid request body")
        emu.set_faults(rate=data.get("rate"), kinds=data.get("kinds"), seed=data.get("seed"))
        return 200, {"status": 200, "rate": emu.fault_rate, "kinds": list(emu.fault_kinds)}
    if raw_path == "/_emulator/inject" and method == "POST":
        if not isinstance(data, dict) or not isinstance(data.get("kinds"), list):
            raise ValueError("Invalid request body")
        emu.inject(*data["kinds"])
        return 200, {"status": 200, "queued": len(data["kinds"])}
    if raw_path == "/_emulator/requests":
        if method == "GET":
            return 200, [asdict(r) for r in emu.requests]
        if method == "DELETE":
            emu.clear_requests()
            return 200, {"status": 200}
        return 405, error_body(405, "Method Not Allowed")
    return 404, error_body(404, "Not Found")
