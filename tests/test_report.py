"""The HTML audience report is self-contained and renders in a real (headless) Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zlib

import pytest

from algolia_profiles_source.demo import EXAMPLE_AUDIENCES
from algolia_profiles_source.segments.report import write_report
from algolia_profiles_source.segments import build_segments
from tests.conftest import run
from tests.test_source_e2e import _apply_changes

SECTIONS = ("sizes", "history", "overlaps", "scores", "top-values", "freshness")


@pytest.fixture
def report(emulator_factory, pipeline_factory, tmp_path):
    emu = emulator_factory(n_users=500, seed=11)
    pipeline = pipeline_factory()
    run(pipeline, emu, page_size=250)
    build_segments(pipeline, EXAMPLE_AUDIENCES)
    _apply_changes(emu)
    run(pipeline, emu, page_size=250)
    build_segments(pipeline, EXAMPLE_AUDIENCES)
    path = write_report(pipeline, tmp_path / "report.html")
    with pytest.raises(Exception, match="already exists"):
        write_report(pipeline, path)
    return path


def test_report_is_self_contained_and_has_every_chart(report):
    text = report.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), "the report must not load anything"
    assert "<script" not in text
    for section in SECTIONS:
        assert f'id="{section}"' in text
    assert text.count("<svg") >= 6 + 8  # the main charts plus one histogram per affinity name
    assert "outdoor_enthusiasts" in text and "2 build(s)" in text


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    if os.environ.get("CI"):
        pytest.fail("Chromium is not installed: .ci/run installs Debian's chromium package")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def _png_pixels_vary(path) -> bool:
    """Decodes the PNG's image data and checks that it is not one flat colour."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    return len(set(raw[1000:200000:7])) > 10


def test_report_renders_in_headless_chromium(report, tmp_path):
    browser = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    shot = tmp_path / "report.png"
    done = subprocess.run([browser, *flags, "--window-size=1200,2400", f"--screenshot={shot}", report.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, done.stderr[-2000:]
    assert _png_pixels_vary(shot)
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    dom = subprocess.run([browser, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    for section in SECTIONS:
        assert f'id="{section}"' in dom.stdout
    assert dom.stdout.count("<rect") > 50  # the charts were parsed into SVG elements
