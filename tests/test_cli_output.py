"""How the CLI prints numbers in its tables."""

from __future__ import annotations

from algolia_profiles_source.cli.common import cell


def test_a_small_share_keeps_its_significant_digits():
    assert cell(146 / 1_000_000) == "0.000146"  # was printed as 0
    assert cell(0.5) == "0.5" and cell(0.12345) == "0.123" and cell(0.0) == "0"
    assert cell(1234.5) == "1,234.50" and cell(1_000_000) == "1,000,000" and cell(None) == ""


def test_usage_errors_have_the_same_one_line_prefix_as_every_error(capsys):
    import pytest

    from algolia_profiles_source.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["segments", "sizes", "--dri", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert err[0].startswith("error: No such option '--dri'") and "--help" in err[0]
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0 and "Usage:" in capsys.readouterr().out


def test_an_emulator_port_in_use_is_one_usage_error(capsys):
    import socket

    import pytest

    from algolia_profiles_source.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit) as exit_:
            main(["emulator", "--users", "10", "--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "already in use" in err[0] and "--port 0" in err[0], err


def test_the_emulator_prints_settings_that_reach_it():
    import json
    import subprocess
    import sys
    import urllib.request

    child = subprocess.Popen([sys.executable, "-m", "algolia_profiles_source.cli", "emulator", "--users", "5", "--port", "0"],
                             stdout=subprocess.PIPE, text=True)
    try:
        lines = [child.stdout.readline().strip() for _ in range(4)]  # type: ignore[union-attr]
        settings = dict(line.removeprefix("export ").split("=", 1) for line in lines[1:])
        request = urllib.request.Request(settings["SOURCES__ALGOLIA_PROFILES__BASE_URL"] + "/2/users", headers={
            "x-algolia-application-id": settings["SOURCES__ALGOLIA_PROFILES__APPLICATION_ID"],
            "x-algolia-api-key": settings["SOURCES__ALGOLIA_PROFILES__API_KEY"],  # the demo key, not a placeholder
        })
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert len(json.load(answer)["users"]) == 5
    finally:
        child.terminate()
        child.wait(timeout=30)
