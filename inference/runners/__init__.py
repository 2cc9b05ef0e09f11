"""Runner processes: each local model answers from a process of its own.

Plain Python, no Django. Why a process per model (as Ollama's runners and vLLM's engine core
do): the engines hold the GIL while they compute (one OpenVINO step at 8 rows holds it
~70 ms here, docs/performance.md), which starves the web threads of the same process — tokens
then reach clients in bursts and a health check waits behind a forward pass; the memory of an
unloaded model only surely returns to the system when its process ends; and a crashing model
must not take the site down.

- `server.py` is the runner: `python -m inference.runners.server --socket PATH --options JSON`
  builds the provider from `LocalOptions` (`inference.providers.local`), loads it, says ready
  on its stdout, and answers on a Unix socket.
- `client.py` is the web side: `RunnerProvider` is a `Provider` whose work happens in a
  `RunnerProcess` it starts, watches and restarts with backoff.
- `wire.py` is the protocol: one connection per call, JSON lines (`wire.py` documents them).
  A streamed answer is one connection: closing it cancels the generation within one token.
"""
