"""Settings are read in fresh processes here: they are fixed once Django starts."""

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def run_django(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "JWT_SIGNING_KEY", "ENVIRONMENT", "DEBUG")
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "llmsite.settings", **full_env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = run_django("", ENVIRONMENT="production", DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "needs SECRET_KEY" in result.stderr


def test_development_generates_a_secret_key_once_and_keeps_it(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_django(code, DATA_DIR=str(tmp_path))
    second = run_django(code, DATA_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.strip()) >= 50
    assert first.stdout == second.stdout
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_an_unknown_device_is_a_clear_startup_error(tmp_path):
    result = run_django("", DEVICE="tpu", DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DEVICE must be auto, cpu, cuda or mps" in result.stderr


def test_check_deploy_is_clean_in_production(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **os.environ,
            "ENVIRONMENT": "production",
            "SECRET_KEY": secrets.token_urlsafe(60),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(60),
            "DATA_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_secure_and_samesite(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE)"
    )
    result = run_django(
        code,
        ENVIRONMENT="production",
        SECRET_KEY=secrets.token_urlsafe(60),
        JWT_SIGNING_KEY=secrets.token_urlsafe(60),
        DATA_DIR=str(tmp_path),
    )
    assert result.stdout.split() == ["True", "True", "True", "Lax"], result.stderr


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode(db):
    if connection.vendor != "sqlite":
        pytest.skip(f"a setting of SQLite; this run is on {connection.vendor}")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"


@pytest.mark.django_db(transaction=True)
def test_several_threads_write_at_once_without_locking_errors(django_user_model):
    errors: list[Exception] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                django_user_model.objects.create_user(f"user-{n}-{i}")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert django_user_model.objects.count() == 60
