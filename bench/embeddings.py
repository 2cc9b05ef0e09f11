"""Embeddings benchmark: encode throughput, FAISS search latency/recall at 100k, HTTP search on daphne.

    .venv/bin/python bench/embeddings.py [--vectors 100000] [--queries 300]

Prints a table and writes bench/results/embeddings.json. Figures from a small shared
machine are noisy: compare runs on the same machine, and read the ratios before the absolutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embeddings.store import EmbeddingStore, Encoder  # noqa: E402
from llmsite.model_store import resolve_encoder_folder  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "embeddings.json"
SUBJECTS = ["server", "database", "cache", "model", "river", "garden", "train", "library", "kitchen", "planet"]
VERBS = ["stores", "explains", "replaces", "measures", "protects", "describes", "feeds", "moves"]
OBJECTS = ["the nightly backups", "fresh tomatoes", "user sessions", "the weather", "old maps", "GPU memory"]
PLACES = ["in Paris", "near the harbour", "on staging", "at midnight", "during the audit", "for the new team"]


def sentences(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        f"The {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)} (note {i})."
        for i in range(n)
    ]


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# --- 1. encode throughput ---------------------------------------------------------------------
def bench_encode(encoder: Encoder, n: int, rounds: int) -> dict:
    texts = sentences(n, seed=1)
    raw = encoder.model  # the same SentenceTransformer, called directly
    encoder.encode(texts[:64])  # warm-up

    def run_raw() -> None:
        raw.encode(texts, batch_size=encoder.batch_size, normalize_embeddings=True, convert_to_numpy=True)

    store = EmbeddingStore.from_encoder(encoder)
    raw_times, store_times = [], []
    for _ in range(rounds):  # interleaved, so drift from other load hits both alike
        t = time.perf_counter()
        run_raw()
        raw_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        store.encode(texts)
        store_times.append(time.perf_counter() - t)
    raw_tps, store_tps = n / min(raw_times), n / min(store_times)
    return {
        "texts": n,
        "rounds": rounds,
        "raw_texts_per_s": round(raw_tps, 1),
        "store_texts_per_s": round(store_tps, 1),
        "ratio": round(store_tps / raw_tps, 3),
        "target_ratio": 0.9,
    }


# --- 2. search latency and recall -------------------------------------------------------------
def latency(store: EmbeddingStore, queries: np.ndarray, k: int) -> tuple[dict, list[list[int]]]:
    times, ids = [], []
    for q in queries[:20]:
        store.search(q, k)  # warm-up
    for q in queries:
        t = time.perf_counter()
        hits = store.search(q, k)[0]
        times.append((time.perf_counter() - t) * 1000)
        ids.append([h.id for h in hits])
    return {"p50_ms": round(pct(times, 50), 3), "p99_ms": round(pct(times, 99), 3)}, ids


def recall_at(truth: list[list[int]], found: list[list[int]], k: int) -> float:
    return float(np.mean([len(set(t[:k]) & set(f[:k])) / k for t, f in zip(truth, found, strict=True)]))


def realistic_vectors(encoder: Encoder, n: int, n_queries: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Real MiniLM embeddings of distinct sentences, expanded into clusters of near-paraphrases.

    Each base embedding gets neighbours by noise in a random low-rank subspace (like the
    directions real paraphrases differ in), so the set has the clustered, anisotropic shape of
    real text embeddings; queries are embeddings of held-out sentences.
    """
    rng = np.random.default_rng(seed)
    n_base = 2000
    base = encoder.encode(sentences(n_base, seed=seed))
    queries = encoder.encode(sentences(n_queries, seed=seed + 100))
    basis = unit(rng.normal(size=(32, base.shape[1])))
    per = int(np.ceil(n / n_base))
    rows = []
    for vec in base:
        noise = rng.normal(scale=0.12, size=(per, 32)) @ basis + rng.normal(scale=0.02, size=(per, base.shape[1]))
        rows.append(unit(vec + noise))
    return np.concatenate(rows)[:n], queries


def bench_search(vectors: np.ndarray, queries: np.ndarray, label: str, ef_values: list[int], k: int = 5) -> dict:
    dim = vectors.shape[1]
    ids = np.arange(1, len(vectors) + 1)
    out: dict = {"vectors": len(vectors), "dim": dim, "queries": len(queries), "k": k}
    flat = EmbeddingStore(model_name=label, dim=dim, index_type="flat")
    flat.add(ids, vectors)
    out["flat"], truth = latency(flat, queries, k)
    del flat
    hnsw = EmbeddingStore(model_name=label, dim=dim, index_type="hnsw", hnsw_m=32, hnsw_ef_construction=80)
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # building is a batch job: use every core
    t = time.perf_counter()
    hnsw.add(ids, vectors)
    out["hnsw_build_s"] = round(time.perf_counter() - t, 1)
    faiss.omp_set_num_threads(1)  # as the store runs searches
    out["hnsw"] = {}
    for ef in ef_values:
        hnsw.hnsw_ef_search = ef
        lat, found = latency(hnsw, queries, k)
        out["hnsw"][f"ef{ef}"] = {**lat, f"recall@{k}": round(recall_at(truth, found, k), 4)}
    return out


# --- 3. HTTP search on a live daphne ---------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_http(n_docs: int, n_queries: int) -> dict:
    import httpx

    data_dir = Path(tempfile.mkdtemp(prefix="llmsite-bench-"))
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "MODELS_DIR": str(ROOT / "data" / "models"),
        "DEBUG": "False",
        "LLM_LOAD_AT_START": "never",
        "DJANGO_SUPERUSER_PASSWORD": "bench-password-123",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [*manage, "createsuperuser", "--noinput", "--username", "bench", "--email", "b@example.com"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    log = (data_dir / "daphne.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "llmsite.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as http:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"daphne did not start: {(data_dir / 'daphne.log').read_text()[-2000:]}")
                time.sleep(0.3)
            # Django session login through the real form, CSRF included.
            form = http.get("/accounts/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
            login = http.post(
                "/accounts/login/",
                data={"username": "bench", "password": "bench-password-123", "csrfmiddlewaretoken": token},
                headers={"Referer": base + "/accounts/login/"},
            )
            if "sessionid" not in http.cookies:
                raise RuntimeError(f"login failed: {login.status_code}")
            headers = {"X-CSRFToken": http.cookies["csrftoken"], "Referer": base + "/"}
            texts = sentences(n_docs, seed=9)
            t = time.perf_counter()
            for start in range(0, n_docs, 64):
                docs = [{"text": s} for s in texts[start : start + 64]]
                r = http.post("/api/v1/embed/add", json={"documents": docs, "collection": "bench"}, headers=headers)
                r.raise_for_status()
            add_s = time.perf_counter() - t
            queries = sentences(n_queries + 10, seed=10)
            times = []
            for i, q in enumerate(queries):
                t = time.perf_counter()
                r = http.post(
                    "/api/v1/embed/search", json={"query": q, "top_k": 5, "collection": "bench"}, headers=headers
                )
                elapsed = (time.perf_counter() - t) * 1000
                r.raise_for_status()
                if i >= 10:  # warm-up
                    times.append(elapsed)
        return {
            "documents": n_docs,
            "queries": len(times),
            "add_docs_per_s": round(n_docs / add_s, 1),
            "search_p50_ms": round(pct(times, 50), 2),
            "search_p99_ms": round(pct(times, 99), 2),
            "auth": "Django session (login form + CSRF)",
        }
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--encode-texts", type=int, default=1024)
    parser.add_argument("--http-docs", type=int, default=500)
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args(argv)

    encoder = Encoder(resolve_encoder_folder("all-MiniLM-L6-v2"), name="all-MiniLM-L6-v2", device="cpu")
    import torch

    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
            "note": "shared small machine: figures are noisy; compare ratios and same-machine runs",
        }
    }
    print("encode throughput ...", flush=True)
    results["encode"] = bench_encode(encoder, args.encode_texts, rounds=3)
    print("search: random unit vectors ...", flush=True)
    rng = np.random.default_rng(0)
    random_vecs = unit(rng.normal(size=(args.vectors, encoder.dim)))
    random_queries = unit(rng.normal(size=(args.queries, encoder.dim)))
    results["search_random"] = bench_search(random_vecs, random_queries, "random", [64, 128])
    del random_vecs
    print("search: realistic (MiniLM-derived) vectors ...", flush=True)
    real_vecs, real_queries = realistic_vectors(encoder, args.vectors, args.queries)
    results["search_realistic"] = bench_search(real_vecs, real_queries, "realistic", [16, 32, 64, 128])
    del real_vecs
    if not args.skip_http:
        print("HTTP search on daphne ...", flush=True)
        results["http"] = bench_http(args.http_docs, args.queries)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    return results


def print_table(r: dict) -> None:
    e = r["encode"]
    rows = [
        ("encode raw sentence-transformers", f"{e['raw_texts_per_s']} texts/s", ""),
        ("encode through the store", f"{e['store_texts_per_s']} texts/s", f"ratio {e['ratio']} (target >= 0.9)"),
    ]
    for key, label in (("search_random", "random"), ("search_realistic", "realistic")):
        s = r[key]
        rows.append((f"{label} {s['vectors']} x {s['dim']}: flat", f"p50 {s['flat']['p50_ms']} ms", "exact"))
        for ef, v in s["hnsw"].items():
            rows.append((f"{label}: hnsw M32 {ef}", f"p50 {v['p50_ms']} ms", f"recall@5 {v['recall@5']}"))
        rows.append((f"{label}: hnsw build", f"{s['hnsw_build_s']} s", ""))
    if "http" in r:
        h = r["http"]
        rows.append(("HTTP POST /api/v1/embed/search", f"p50 {h['search_p50_ms']} ms", f"p99 {h['search_p99_ms']} ms"))
    width = max(len(a) for a, _, _ in rows)
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>22}  {c}")


if __name__ == "__main__":
    main()
