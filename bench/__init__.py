"""Benchmarks that compare llmsite with the raw libraries and a peer server in the same run: `python -m bench`."""

import os

# Nothing here may reach a model hub; tokenizers' own threads would only compete with torch's.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
