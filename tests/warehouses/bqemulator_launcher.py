"""Starts bqemulator without DuckDB's ``spatial`` extension. Run by bqemulator's OWN interpreter
(its virtualenv, see ``tests/warehouses/bigquery_server.py``), never imported by the tests::

    <bqemulator venv>/bin/python bqemulator_launcher.py start --rest-port P --grpc-port Q ...

bqemulator 1.4.0 runs ``INSTALL spatial`` / ``LOAD spatial`` at start-up
(``bqemulator.storage.engine.DuckDBEngine._load_spatial``) and refuses to start when that fails;
``INSTALL`` downloads the extension, which cannot work offline, and there is no setting to skip it.
The project's SQL uses no GEOGRAPHY type nor ``ST_*`` function, so the launcher replaces that one
method with a no-op before handing the arguments to bqemulator's own command line. GEOGRAPHY
queries would then fail with DuckDB's "unknown function" error, which is fine here.

It also completes an empty resumable upload. dlt loads a table that exists with no rows (here
``rejected_records`` before any record is rejected) from an empty file; google-cloud-bigquery sends
its single, final, empty chunk with ``Content-Range: bytes */0``, which BigQuery takes as the end of a
0-byte upload, while bqemulator takes every ``bytes */N`` as a status probe and answers ``308`` for
ever. The launcher's middleware renames that one header (``bytes empty/0``), and the upload manager
reads it as the last chunk of a 0-byte upload: declared total 0, nothing appended, complete.
"""

from __future__ import annotations

import sys


def main() -> None:
    from bqemulator.storage.engine import DuckDBEngine

    def _load_spatial(self: DuckDBEngine) -> None:  # offline: no extension download
        return None

    DuckDBEngine._load_spatial = _load_spatial  # type: ignore[method-assign]

    import bqemulator.server as server

    create_app = server.create_app

    def create_app_completing_empty_uploads(*args, **kwargs):  # type: ignore[no-untyped-def]
        return _EmptyUploadCompletes(create_app(*args, **kwargs))

    server.create_app = create_app_completing_empty_uploads

    from bqemulator.jobs.upload_session_manager import UploadSessionManager

    parse = UploadSessionManager._extract_range_fields

    def extract_range_fields(content_range):  # type: ignore[no-untyped-def]
        return (0, -1, 0) if content_range == _EMPTY_UPLOAD else parse(content_range)

    write = UploadSessionManager._write_chunk

    def write_chunk(session, chunk):  # type: ignore[no-untyped-def]
        session.staging_path.touch()  # an empty upload still has a (0-byte) file to load
        write(session, chunk)

    UploadSessionManager._extract_range_fields = staticmethod(extract_range_fields)  # type: ignore[method-assign]
    UploadSessionManager._write_chunk = staticmethod(write_chunk)  # type: ignore[method-assign]

    from bqemulator.cli import main as cli

    cli(args=sys.argv[1:], prog_name="bqemulator")


_EMPTY_UPLOAD = "bytes empty/0"


class _EmptyUploadCompletes:
    """ASGI middleware: a PUT with ``Content-Range: bytes */0`` is the last chunk of an empty upload."""

    def __init__(self, app):  # type: ignore[no-untyped-def]
        self.app = app

    def __getattr__(self, name):  # type: ignore[no-untyped-def]  (the server reads app settings)
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope.get("type") == "http" and scope.get("method") == "PUT":
            headers = [
                (key, _EMPTY_UPLOAD.encode() if key.lower() == b"content-range" and value.strip() == b"bytes */0" else value)
                for key, value in scope.get("headers", [])
            ]
            scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


if __name__ == "__main__":
    main()
