import logging

from llmsite.processes import run_logged, start_in_background


def test_a_background_start_logs_its_failure_and_closes_its_connections(caplog, monkeypatch):
    closed = []
    monkeypatch.setattr("django.db.close_old_connections", lambda: closed.append(True))

    def fail() -> None:
        raise RuntimeError("no model here")

    with caplog.at_level(logging.ERROR):
        thread = start_in_background("test-startup", fail, failure="starting the test failed")
        thread.join(10)
    assert not thread.is_alive()
    assert "starting the test failed" in caplog.text and "no model here" in caplog.text
    assert closed == [True]


def test_run_logged_runs_the_target_and_closes_connections_after_success(monkeypatch):
    calls = []
    monkeypatch.setattr("django.db.close_old_connections", lambda: calls.append("closed"))
    run_logged(lambda: calls.append("ran"), failure="unused")
    assert calls == ["ran", "closed"]
