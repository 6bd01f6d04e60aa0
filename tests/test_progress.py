"""Progress of a load on a terminal and in logs."""

from __future__ import annotations

from algolia_profiles_source.http.rate_limit import RateGovernor


def test_progress_redraws_on_a_terminal_and_stays_quiet_in_logs():
    import io

    from algolia_profiles_source.extract.progress import Reporter, report_page, reporting

    log = io.StringIO()
    with reporting(Reporter(log, interactive=False)) as progress:
        progress.stage("walking")
        for _ in range(50):
            report_page(1000)
        progress.stage("done")
    assert log.getvalue() == "walking\ndone\n" and progress.profiles == 50_000
    tty = io.StringIO()
    governor = RateGovernor()
    governor.observe({"x-ratelimit-limit": "500", "x-ratelimit-remaining": "420", "x-ratelimit-reset": "9999999999"})
    with reporting(Reporter(tty, interactive=True)):
        report_page(1000, governor)
    assert "1 pages · 1,000 profiles" in tty.getvalue() and "quota 420/500 left" in tty.getvalue()
    report_page(5)  # no reporter installed: silent
