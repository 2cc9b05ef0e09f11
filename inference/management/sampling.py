"""The options of the commands that generate (`generate`, `chat`): one parser, one request type.

`--model` is a pool id, as clients send it: a folder name under MODELS_DIR, or
`openai/<model>` / `anthropic/<model>` of a configured provider (`manage.py models` lists them).
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from inference.engine import get_engine
from inference.protocol import CompletionRequest
from inference.providers.base import InvalidParameter, SamplingParams
from inference.registry import UnknownModel, spec_for_model
from inference.services import CompletionResult

LIST_HINT = "`manage.py models` lists them"


def add_sampling_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None, help="0 (the default) is greedy")
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--stop", action="append", default=None, help="a stop sequence; repeat for more")
    parser.add_argument("--seed", type=int, default=None, help="makes sampling repeatable")


def add_model_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=None,
        metavar="ID",
        help=f"the model to answer: a local folder name, openai/<model> or anthropic/<model> ({LIST_HINT}); "
        "default: the site's default model",
    )
    parser.add_argument(
        "--keep-alive",
        default=None,
        metavar="DURATION",
        help="how long that model stays loaded once idle: seconds, or 5m, 1h; 0 unloads it after each answer; "
        "negative keeps it (default LLM_KEEP_ALIVE)",
    )


def model_check(model: str | None) -> str:
    """The id `model` names (the default model's id for None); an unknown id is a CommandError saying where ids are."""
    engine = get_engine()
    if model is None:
        return engine.default_model_id()
    try:
        spec_for_model(model, engine.default_spec())
    except UnknownModel as exc:
        raise CommandError(f"{exc.message}; from the shell, {LIST_HINT}") from exc
    return model


def completion_request(options: dict[str, Any], **input_: Any) -> CompletionRequest:
    """A CompletionRequest from the parsed options (sampling, model, keep-alive) and the input.

    A broken bound is a CommandError naming the option.
    """
    try:
        return CompletionRequest(
            sampling=SamplingParams.from_mapping(options),
            model=options.get("model"),
            keep_alive=options.get("keep_alive"),
            **input_,
        )
    except InvalidParameter as exc:
        raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.message}") from exc


def footer(result: CompletionResult) -> str:
    """The line under an answer: which model answered (and instead of which), tokens, time, why it stopped."""
    cached = ", cached" if result.cached else ""
    line = (
        f"[{result.model_id or result.model} {result.usage.completion_tokens} tokens "
        f"in {result.latency_ms:.0f} ms, {result.finish_reason}{cached}]"
    )
    if result.fallback:
        line += f"\n[fallback for {result.fallback['requested']}: {result.fallback['reason']}]"
    return line
