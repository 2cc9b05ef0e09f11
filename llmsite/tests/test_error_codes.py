"""Error codes: one registry, every code the site sends is in it, and the contract lists them all."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
from rest_framework import exceptions as drf_exceptions

from llmsite.error_codes import ErrorCode, error_code_table

ROOT = Path(__file__).resolve().parents[2]


def project_sources() -> list[Path]:
    """The project's own Python files outside tests (what sends errors to clients)."""
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / line for line in listed.stdout.split()]
    return [p for p in paths if p.is_file() and "tests" not in p.parts and "migrations" not in p.parts]


def literal_codes(path: Path) -> list[tuple[int, str]]:
    """String literals given as an error code: `code="..."`, `code = "..."`, `default_code = "..."`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str | None] = []
        if isinstance(node, ast.keyword):
            names = [node.arg]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if {"code", "default_code"} & set(names):
            value = node.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append((getattr(node, "lineno", value.lineno), value.value))
    return found


def test_every_error_code_in_the_code_is_a_registry_member_not_a_loose_string():
    loose = [
        f"{path.relative_to(ROOT)}:{line}: {code!r}" for path in project_sources() for line, code in literal_codes(path)
    ]
    assert loose == [], "use llmsite.error_codes.ErrorCode instead of these strings"


def test_the_scan_finds_a_loose_code(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('raise ApplicationError("no", code="made_up")\n')
    assert literal_codes(sample) == [(1, "made_up")]


@pytest.mark.parametrize(
    "exception",
    [
        drf_exceptions.NotAuthenticated,
        drf_exceptions.AuthenticationFailed,
        drf_exceptions.PermissionDenied,
        drf_exceptions.NotFound,
        drf_exceptions.NotAcceptable,
        drf_exceptions.UnsupportedMediaType,
        drf_exceptions.ParseError,
    ],
)
def test_the_codes_drf_raises_through_our_handler_are_registered(exception):
    assert exception.default_code in set(ErrorCode)


def test_the_contract_lists_every_error_code_as_the_registry_says():
    contract = (ROOT / "docs" / "api.md").read_text()
    start, end = "<!-- error-codes -->", "<!-- /error-codes -->"
    assert start in contract and end in contract
    listed = contract.split(start, 1)[1].split(end, 1)[0].strip()
    assert listed == error_code_table(), (
        "regenerate: python -c 'from llmsite.error_codes import *; print(error_code_table())'"
    )


def test_an_error_code_is_its_string_on_the_wire():
    import json

    assert json.dumps({"code": ErrorCode.PROMPT_TOO_LONG}) == '{"code": "prompt_too_long"}'
    assert ErrorCode.NOT_FOUND.status == 404
