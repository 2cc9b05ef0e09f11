"""The compose file and the proxy sample say what docs/deploy.md says, and Compose accepts the file."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from llmsite.testing import ROOT

COMPOSE = ROOT / "docker-compose.yml"
NGINX = ROOT / "deploy" / "nginx.conf"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_the_pieces_the_deploy_guide_names(compose):
    services = compose["services"]
    assert set(services) == {"proxy", "web", "jobs", "training", "db", "redis"}
    # The job workers run apart, one per queue, and the servers start none of their own.
    assert services["jobs"]["command"][-2:] == ["--queue-name", "default"]
    assert services["training"]["command"][-2:] == ["--queue-name", "training"]
    for name in ("web", "jobs", "training"):
        environment = services[name]["environment"]
        assert environment["TASKS_WORKER"] == "external"
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["CACHE_URL"].startswith("redis://") and environment["REDIS_URL"].startswith("redis://")
        # Models and the index are shared: a checkpoint trained by `training` is served by every `web`.
        assert set(services[name]["volumes"]) == {"models:/app/data/models", "embeddings:/app/data/embeddings"}
    # Only the proxy is published: `web` scales without fighting over a host port.
    assert "ports" not in services["web"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]


def test_the_proxy_sample_passes_websockets_and_streams_unbuffered():
    config = NGINX.read_text()
    for directive in (
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "client_max_body_size",
    ):
        assert directive in config, directive


def test_compose_accepts_the_file(tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=check-only\nJWT_SIGNING_KEY=check-only\n")
    done = subprocess.run(
        [compose, "--env-file", str(env_file), "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
