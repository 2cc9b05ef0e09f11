"""The engine: lazy loading, atomic swaps, failure reporting, and switching three ways."""

import threading

import pytest
from django.core.management import call_command

from inference.engine import FAILED, READY, Engine, get_engine
from inference.models import ProviderConfig
from inference.providers.base import Completion, Provider, ProviderUnavailable, Usage
from inference.registry import ProviderSpec
from llmsite.processes import is_server_process


class FakeProvider(Provider):
    name = "hf"

    def __init__(self, model):
        super().__init__(model)
        self.closed = False
        self.release = threading.Event()

    def load(self):
        if self.model == "broken":
            raise ProviderUnavailable("broken weights")

    def close(self):
        self.closed = True

    def generate(self, request):
        self.release.wait(5)
        return Completion(f"from {self.model}", Usage(1, 1), "stop")


def test_a_swap_keeps_in_flight_requests_on_the_old_provider_then_closes_it():
    engine = Engine(builder=lambda spec: FakeProvider(spec.model))
    old = engine.load(ProviderSpec("hf", "old"))
    results = []
    leased = threading.Event()

    def in_flight():
        with engine.lease() as lease:
            leased.set()
            results.append(lease.provider.generate(None).text)

    worker = threading.Thread(target=in_flight)
    worker.start()
    leased.wait(5)
    new = engine.load(ProviderSpec("hf", "new"))
    with engine.lease() as lease:
        assert lease.provider is new  # new requests go to the new provider at once
    assert not old.closed  # still serving the request in flight
    old.release.set()
    worker.join(5)
    assert results == ["from old"]
    assert old.closed
    assert not new.closed


def test_a_failed_switch_keeps_serving_the_previous_provider():
    engine = Engine(builder=lambda spec: FakeProvider(spec.model))
    good = engine.load(ProviderSpec("hf", "good"))
    with pytest.raises(ProviderUnavailable):
        engine.load(ProviderSpec("hf", "broken"))
    assert engine.status().state == READY
    assert "broken weights" in engine.status().reason
    with engine.lease() as lease:
        assert lease.provider is good


def test_a_failed_first_load_marks_the_engine_failed_with_the_reason():
    engine = Engine(builder=lambda spec: FakeProvider(spec.model))
    with pytest.raises(ProviderUnavailable):
        engine.load(ProviderSpec("hf", "broken"))
    assert engine.status().state == FAILED
    assert "broken weights" in engine.status().reason


@pytest.mark.django_db
def test_a_failed_load_leaves_the_site_up_with_readyz_and_predict_503(client, alice_client, tiny_settings, tmp_path):
    broken = tiny_settings.MODELS_DIR / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "config.json").write_text("{}")
    tiny_settings.LLM_MODEL = "broken"
    response = alice_client.post("/api/v1/predict", {"prompt": "hi"}, format="json")
    assert response.status_code == 503
    assert "broken" in response.json()["error"]["message"]
    assert int(response["Retry-After"]) > 0
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["provider"]["ok"] is False
    assert "broken" in ready.json()["checks"]["provider"]["detail"]
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_readyz_follows_the_loaded_provider(client, alice_client, tiny_settings):
    assert alice_client.post("/api/v1/predict", {"prompt": "hi", "max_new_tokens": 2}, format="json").status_code == 200
    provider = client.get("/readyz").json()["checks"]["provider"]
    assert provider["ok"] is True
    assert "tiny-a on cpu" in provider["detail"]


@pytest.mark.django_db
def test_reload_model_reaches_the_running_engine(alice_client, tiny_settings):
    alice_client.post("/api/v1/predict", {"prompt": "hi", "max_new_tokens": 2}, format="json")
    assert get_engine().status().model == "tiny-a"

    call_command("reload_model", "--model", "tiny-b", "--wait", "0")

    # What the server does on its next check (a poller thread in daphne; forced here).
    assert get_engine().sync_with_config(force=True, background=False)
    assert get_engine().status().model == "tiny-b"
    row = ProviderConfig.objects.get(active=True)
    assert (row.model, row.applied_version, row.state) == ("tiny-b", row.version, "ready")
    body = alice_client.post("/api/v1/predict", {"prompt": "hi", "max_new_tokens": 2}, format="json").json()
    assert body["model"] == "tiny-b"


@pytest.mark.django_db
def test_reload_model_refuses_a_model_that_does_not_exist(tiny_settings):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no-such-model"):
        call_command("reload_model", "--model", "no-such-model", "--wait", "0")
    assert not ProviderConfig.objects.exists()


@pytest.mark.django_db
def test_staff_switch_the_provider_through_the_api(staff_client, tiny_settings):
    response = staff_client.post("/api/v1/providers/active", {"provider": "hf", "model": "tiny-b"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["model"] == "tiny-b"
    assert response.json()["state"] == "ready"
    assert ProviderConfig.objects.get(active=True).model == "tiny-b"

    refused = staff_client.post("/api/v1/providers/active", {"provider": "anthropic"}, format="json")
    assert refused.status_code == 400
    assert "not configured" in refused.json()["error"]["message"]
    assert get_engine().status().model == "tiny-b"


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["0" * 500, "/" + "x" * 400])
def test_a_model_name_no_folder_can_have_is_a_400_and_nothing_changes(staff_client, tiny_settings, model):
    # A name past the file system's limit made the folder lookup raise OSError: a 500 before.
    response = staff_client.post("/api/v1/providers/active", {"provider": "hf", "model": model}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "provider"
    assert not ProviderConfig.objects.exists()


@pytest.mark.django_db
def test_the_admin_switches_through_the_same_service(client, staff, tiny_settings):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = client.post(
        "/admin/inference/providerconfig/add/",
        {"provider": "hf", "model": "tiny-b", "device": "cpu", "parameters": "{}", "active": "on"},
    )
    assert response.status_code == 302, response.content[:2000]
    assert get_engine().status().model == "tiny-b"
    row = ProviderConfig.objects.get(active=True)
    assert row.state == "ready"


@pytest.mark.django_db
def test_staff_only_endpoints_refuse_other_users(alice_client):
    assert alice_client.post("/api/v1/providers/active", {"provider": "hf"}, format="json").status_code == 403
    assert alice_client.delete("/api/v1/cache").status_code == 403


@pytest.mark.django_db
def test_it_lists_providers_with_availability_and_the_active_one(alice_client, tiny_settings):
    body = alice_client.get("/api/v1/providers").json()
    by_name = {p["name"]: p for p in body["providers"]}
    assert set(by_name) == {"hf", "anthropic", "openai"}
    assert by_name["hf"]["available"] is True
    assert {"tiny-a", "tiny-b"} <= {m["name"] for m in by_name["hf"]["models"]}
    assert by_name["anthropic"]["available"] is False
    assert "not configured" in by_name["anthropic"]["reason"]
    assert body["active"]["provider"] == "hf"
    assert body["active"]["model"] == "tiny-a"
    assert by_name["hf"]["active"] is True


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["/venv/lib/python3.11/site-packages/daphne/__main__.py", "llmsite.asgi:application"], {}, True),
        (["/venv/bin/daphne", "llmsite.asgi:application"], {}, True),
        (["/app/llmsite/serve.py", "-p", "8000"], {}, True),
        (["/app/llmsite/tests/serve.py"], {}, False),
        (["manage.py", "runserver"], {"RUN_MAIN": "true"}, True),
        (["manage.py", "runserver"], {}, False),
        (["manage.py", "migrate"], {}, False),
        (["/venv/bin/pytest", "inference"], {}, False),
    ],
)
def test_it_loads_at_start_only_in_server_processes(monkeypatch, argv, env, expected):
    monkeypatch.delenv("RUN_MAIN", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert is_server_process(argv) is expected
