"""The model pool, driven deterministically: fake providers whose loads block on events, and a fake clock.

What a user relies on: a model asked for by many at once loads once; a slow load holds up
nobody else; idle models unload after their keep-alive; the least recently used idle model
makes room under the model limit and the memory budget; a model with an answer running is
never unloaded; an unknown id is a 404.
"""

from __future__ import annotations

import threading
import time

import pytest

from inference.engine import Engine
from inference.providers.base import Completion, Provider, Usage
from inference.registry import ProviderSpec
from llmsite.errors import ApplicationError, ServiceUnavailable

DEADLINE = 30
pytestmark = pytest.mark.django_db  # the default model reloads from the configuration


class FakeProvider(Provider):
    name = "hf"

    def __init__(self, model: str, gate: threading.Event | None = None, rss_mb: float = 100.0):
        super().__init__(model)
        self.gate = gate
        self.rss_mb = rss_mb
        self.closed = threading.Event()

    events: list[tuple[str, str]] = []  # ("load" | "close", model), in order, across providers

    def load(self):
        if self.gate is not None:
            assert self.gate.wait(DEADLINE)
        self.events.append(("load", self.model))

    def close(self):
        self.events.append(("close", self.model))
        self.closed.set()

    def status(self):
        return {"rss_mb": self.rss_mb}

    def generate(self, request):
        return Completion(f"from {self.model}", Usage(1, 1), "stop")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def models_dir(settings, tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    settings.MODELS_DIR = tmp_path
    settings.LLM_PROVIDER, settings.LLM_MODEL, settings.DEVICE = "hf", "a", "cpu"  # the default, when it reloads
    settings.LLM_KEEP_ALIVE = 300.0
    settings.LLM_MAX_LOADED_MODELS = 3
    settings.LLM_MEMORY_BUDGET_MB = 0
    settings.LLM_LOAD_WAIT_SECONDS = DEADLINE
    return tmp_path


@pytest.fixture
def pool(models_dir):
    built: list[FakeProvider] = []
    gates: dict[str, threading.Event] = {}
    sizes: dict[str, float] = {}

    def build(spec: ProviderSpec) -> FakeProvider:
        provider = FakeProvider(spec.model, gates.get(spec.model), sizes.get(spec.model, 100.0))
        built.append(provider)
        return provider

    clock = Clock()
    engine = Engine(builder=build, clock=clock)
    engine.load(ProviderSpec("hf", "a", "cpu"))  # the default model
    engine.built, engine.gates, engine.sizes, engine.clock = built, gates, sizes, clock
    yield engine
    for gate in gates.values():
        gate.set()
    engine.reset()


def wait_for(condition) -> None:
    ends = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < ends, "timed out"
        time.sleep(0.01)


def loaded(engine: Engine) -> set[str]:
    return {mid for mid, row in engine.pool_state().items() if row["state"] == "loaded"}


def test_each_request_names_its_model_and_the_default_answers_without_one(pool):
    with pool.lease() as default, pool.lease("b") as other:
        assert default.model_id == "a" and other.model_id == "b"
        assert other.provider.generate(None).text == "from b"
    with pool.lease("a") as same:
        assert same.provider is default.provider  # the default by name is the default, not a second copy


def test_an_unknown_model_is_a_404_and_no_path_escapes_the_models_folder(pool):
    for name in ("nope", "../a", "/etc", "hf/../../x", "a/../b"):
        with pytest.raises(ApplicationError) as refused:
            pool.lease(name)
        assert refused.value.status == 404 and refused.value.code == "model_not_found"


def test_concurrent_first_requests_load_the_model_once(pool):
    gate = pool.gates["b"] = threading.Event()
    leases, started = [], []

    def ask():
        started.append(1)
        with pool.lease("b") as lease:
            leases.append(lease.provider)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(DEADLINE)
    assert len(leases) == 6 and len({id(p) for p in leases}) == 1
    assert [p.model for p in pool.built].count("b") == 1


def test_a_load_holds_up_no_request_to_a_loaded_model(pool):
    with pool.lease("b"):
        pass
    pool.gates["c"] = threading.Event()
    loading = threading.Thread(target=lambda: pool.lease("c").release())
    loading.start()
    try:
        wait_for(lambda: pool.pool_state().get("c", {}).get("state") == "loading")
        with pool.lease("b") as lease, pool.lease() as default:  # answered while c is still loading
            assert lease.model_id == "b" and default.model_id == "a"
        assert pool.pool_state()["c"]["state"] == "loading"
    finally:
        pool.gates["c"].set()
        loading.join(DEADLINE)
    assert "c" in loaded(pool)


def test_idle_models_unload_after_keep_alive_and_the_default_stays(pool):
    pool.lease("b").release()
    pool.clock.now += 299
    assert pool.reap() == []
    pool.clock.now += 2
    assert pool.reap() == ["b"]
    assert loaded(pool) == {"a"}
    b = next(p for p in pool.built if p.model == "b")
    assert b.closed.wait(DEADLINE)


def test_a_request_sets_its_model_keep_alive_as_ollama_does(pool):
    pool.lease("b", keep_alive=0).release()  # 0: unload as soon as the answer is done
    assert "b" not in loaded(pool)
    pool.lease("c", keep_alive=-1).release()  # negative: keep it
    pool.clock.now += 10**6
    assert pool.reap() == [] and "c" in loaded(pool)


def test_the_default_unloaded_again_while_it_reloads_for_a_request_loads_once_more(pool, monkeypatch):
    # Staff unloading the default while a request reloads it left that request a 503 "not started".
    reload = pool.load

    def reload_then_unloaded(*args, **kwargs):
        provider = reload(*args, **kwargs)
        monkeypatch.setattr(pool, "load", reload)  # once
        pool.unload("a")
        return provider

    pool.unload("a")
    monkeypatch.setattr(pool, "load", reload_then_unloaded)
    with pool.lease() as lease:
        assert lease.model_id == "a"
    assert [provider.model for provider in pool.built].count("a") == 3  # at start, reloaded, reloaded again


def test_a_model_answering_is_never_unloaded(pool):
    lease = pool.lease("b")
    pool.clock.now += 10**6
    assert pool.reap() == []
    assert pool.unload("b") is True  # staff unload: taken out, closed when the answer ends
    b = next(p for p in pool.built if p.model == "b")
    assert not b.closed.is_set()
    lease.release()
    assert b.closed.wait(DEADLINE)


def test_the_least_recently_used_idle_model_makes_room_under_the_limit(pool, settings):
    settings.LLM_MAX_LOADED_MODELS = 2
    pool.lease("b").release()
    pool.clock.now += 5
    pool.lease().release()  # the default was used after b: b is the least recently used
    pool.lease("c").release()
    assert loaded(pool) == {"a", "c"}


def test_with_one_model_allowed_alternating_requests_all_succeed_one_at_a_time(pool, settings):
    settings.LLM_MAX_LOADED_MODELS = 1
    running = pool.lease("b")  # the default made room for b
    assert loaded(pool) == {"b"}
    answered = []

    def ask_c():
        with pool.lease("c") as lease:
            answered.append(lease.provider.generate(None).text)

    waiting = threading.Thread(target=ask_c)
    waiting.start()
    wait_for(lambda: pool.pool_state().get("c", {}).get("state") == "loading")
    assert "c" not in loaded(pool)  # c waits for room: b is answering
    running.release()
    waiting.join(DEADLINE)
    assert answered == ["from c"] and loaded(pool) == {"c"}
    with pool.lease() as default:  # the default comes back when asked for
        assert default.model_id == "a"
    assert loaded(pool) == {"a"}


def test_a_busy_pool_answers_503_after_the_wait(pool, settings):
    settings.LLM_MAX_LOADED_MODELS = 1
    settings.LLM_LOAD_WAIT_SECONDS = 0
    with pool.lease("b"), pytest.raises(ServiceUnavailable, match="every loaded model is answering"):
        pool.lease("c")


def test_the_memory_budget_unloads_by_measured_size(pool, settings):
    settings.LLM_MEMORY_BUDGET_MB = 1000
    pool.sizes.update({"a": 100.0, "b": 300.0, "c": 700.0})
    pool.clock.now += 1
    pool.lease("b").release()  # a (100) + b (300) fit
    pool.clock.now += 1
    pool.lease().release()  # the default is now used more recently than b
    assert loaded(pool) == {"a", "b"}
    pool.clock.now += 1
    pool.lease("c").release()  # measured at 700 once loaded: 1100 > 1000, so the least recent (b) goes
    assert loaded(pool) == {"a", "c"}
    pool.clock.now += 1
    pool.lease("b").release()  # b was measured at 300: the least recent (a) makes room first
    assert loaded(pool) == {"b", "c"}


def test_readiness_names_a_model_that_failed_and_stays_ready(pool, monkeypatch):
    from inference import health

    def broken(spec):
        raise RuntimeError("no weights here")

    monkeypatch.setattr(pool, "_builder", broken)
    with pytest.raises(ServiceUnavailable, match="no weights here"):
        pool.lease("b")
    monkeypatch.setattr("inference.health.get_engine", lambda: pool)
    ok, detail = health.models_check()
    assert ok and "failed: b: no weights here" in detail and "loaded: a" in detail


def test_a_request_for_the_default_while_it_reloads_waits_for_it(pool, settings):
    settings.LLM_MAX_LOADED_MODELS = 1
    pool.lease("b").release()  # the default made room for b
    pool.gates["a"] = threading.Event()
    first = threading.Thread(target=lambda: pool.lease().release())
    first.start()
    wait_for(lambda: pool.status().state == "loading")
    answered = []
    second = threading.Thread(target=lambda: answered.append(pool.lease().model_id))
    second.start()
    pool.gates["a"].set()
    first.join(DEADLINE)
    second.join(DEADLINE)
    assert answered == ["a"]


def test_a_model_unloaded_to_make_room_is_gone_before_the_next_loads(pool, settings):
    settings.LLM_MAX_LOADED_MODELS = 1
    FakeProvider.events.clear()
    pool.lease("b").release()
    assert FakeProvider.events == [("close", "a"), ("load", "b")]  # never both in memory at once
