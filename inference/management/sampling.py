"""The sampling options of the commands that generate (`generate`, `chat`): one parser, one request type."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from inference.protocol import CompletionRequest
from inference.providers.base import InvalidParameter, SamplingParams


def add_sampling_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None, help="0 (the default) is greedy")
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--stop", action="append", default=None, help="a stop sequence; repeat for more")
    parser.add_argument("--seed", type=int, default=None, help="makes sampling repeatable")


def completion_request(options: dict[str, Any], **input_: Any) -> CompletionRequest:
    """A CompletionRequest from the parsed options and the input; a broken bound is a CommandError."""
    try:
        return CompletionRequest(sampling=SamplingParams.from_mapping(options), **input_)
    except InvalidParameter as exc:
        raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.message}") from exc
