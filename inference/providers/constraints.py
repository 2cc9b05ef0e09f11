"""Structured output: a client's `response_format`, checked once, and the per-token constraint that enforces it.

Plain Python, no Django. `ResponseFormat.parse` reads OpenAI's shape (`{"type": "json_object"}`,
`{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`) and refuses, with an
`InvalidParameter` naming them, schemas that are malformed or use features the constraint cannot
enforce: the client learns it at once (400) rather than getting output that does not fit.

Local engines enforce it token by token, so the output is always JSON that fits the schema
(unless the token limit cuts it short: finish reason "length"):

- transformers: a `JsonConstraint` per request (llguidance's matcher) masks the row's logits before
  the token is picked, then learns the picked token. The batching scheduler calls it row by row
  (`BatchJob.constrain`), so constrained and free requests share a batch; `generate()` runs it as
  a logits processor (`JsonConstraint.processor()`).
- OpenVINO: the pipeline's own structured output (`openvino_genai.StructuredOutputConfig`) with
  `ResponseFormat.schema_json()`, for the schemas it enforces faithfully (`openvino_unsupported`);
  the others go to the same weights on transformers (`OpenVINOProvider.transformers_twin`).

Generated JSON is compact: one space after "," and ":" and no other whitespace. Flexible whitespace
lets a small model pad with newlines until the token limit and never close the document.

Tool calls (`inference/providers/tools.py`) travel as response formats too: a call the model must make
is a `json_schema` (one call of a listed function); a call it may make is the `tool_calls` kind — free
text, or calls written as `<tool_call>{...}</tool_call>` whose JSON fits `schema` (`TOOL_CALL_OPEN`).
transformers enforces it with an llguidance Lark grammar (`grammar_for`), OpenVINO with its structural
tags (`openvino_structured_output`).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from inference.providers.base import InvalidParameter

FIELD = "response_format"
SCHEMA_FIELD = "response_format.json_schema.schema"
MAX_SCHEMA_CHARS = 100_000  # a schema's JSON text; far above any real one, well below what slows compilation
MAX_NAME_CHARS = 64  # OpenAI's limit on json_schema.name
# Applied over the schema's own "x-guidance" options, so a client cannot turn on lenient mode
# (unsupported keywords silently ignored) or flexible whitespace.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "lenient": False}
ANY_OBJECT = {"type": "object"}  # what json_object asks for: any JSON object
TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"  # around each call under the tool_calls kind


@dataclass(frozen=True)
class ResponseFormat:
    """What shape the answer must have: a JSON object (`json_object`), or JSON fitting a schema (`json_schema`),
    or free text that may end in tool calls (`tool_calls`: `schema` is one call's; `several`: more than one may follow).

    `schema` is the schema's compact JSON text, so equal schemas compare, hash and cache equal. Its
    keys keep the client's order: properties are generated in the order the schema lists them.
    Plain text is no ResponseFormat at all (`parse` returns None). Clients never send `tool_calls`:
    `inference.providers.tools` builds it from a request's tools.
    """

    type: Literal["json_object", "json_schema", "tool_calls"]
    schema: str = ""
    name: str = ""
    strict: bool | None = None
    several: bool = False

    @classmethod
    def parse(cls, value: Any) -> ResponseFormat | None:
        """OpenAI's `response_format` value, checked; None for text (or None). Raises InvalidParameter."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise InvalidParameter(FIELD, "response_format must be an object with a type")
        kind = value.get("type")
        if kind == "text":
            return None
        if kind == "json_object":
            return cls("json_object")
        if kind != "json_schema":
            raise InvalidParameter(f"{FIELD}.type", "response_format.type must be text, json_object or json_schema")
        spec = value.get("json_schema")
        if not isinstance(spec, Mapping):
            raise InvalidParameter(f"{FIELD}.json_schema", "json_schema must be an object with a name and a schema")
        name = spec.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME_CHARS:
            raise InvalidParameter(f"{FIELD}.json_schema.name", f"a schema name has 1 to {MAX_NAME_CHARS} characters")
        strict = spec.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise InvalidParameter(f"{FIELD}.json_schema.strict", "strict must be true or false")
        schema = spec.get("schema", {})  # OpenAI's default: an empty schema, any JSON
        text = check_schema(schema)
        return cls("json_schema", text, name, strict)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> ResponseFormat | None:
        """From `as_dict()` (already checked once: only rebuilt, not checked again)."""
        if values is None:
            return None
        return cls(
            values["type"],
            values.get("schema", ""),
            values.get("name", ""),
            values.get("strict"),
            values.get("several", False),
        )

    def as_dict(self) -> dict[str, Any]:
        """The runner wire form and the cache key's part (the schema as its canonical text)."""
        values = {"type": self.type, "schema": self.schema, "name": self.name, "strict": self.strict}
        if self.type == "tool_calls":  # only here: the keys of json formats cached before stay valid
            values["several"] = self.several
        return values

    def schema_json(self) -> str:
        """The JSON schema the output must fit, as JSON text (json_object: any object; tool_calls: one call)."""
        return self.schema if self.type != "json_object" else json.dumps(ANY_OBJECT)


def check_schema(schema: Any, *, field: str = SCHEMA_FIELD) -> str:
    """The schema's compact JSON text, once it is a valid JSON schema the constraint can enforce fully.

    `field` is what an InvalidParameter names (a tool's parameters are checked here too)."""
    import jsonschema

    if not isinstance(schema, Mapping) and not isinstance(schema, bool):
        raise InvalidParameter(field, "a JSON schema is an object")
    try:
        text = json.dumps(schema, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(field, f"the schema is not plain JSON: {exc}") from exc
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidParameter(field, f"the schema has {len(text)} characters; the limit is {MAX_SCHEMA_CHARS}")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(part) for part in exc.path)
        at = f" at {where}" if where else ""
        raise InvalidParameter(field, f"not a valid JSON schema{at}: {exc.message}") from exc
    problem = unsupported(text)
    if problem:
        raise InvalidParameter(field, f"this server cannot enforce the schema: {problem}")
    return text


def grammar_for(response_format: ResponseFormat) -> str:
    """The llguidance grammar that enforces `response_format` (JSON kinds: from the schema; tool_calls: Lark)."""
    from llguidance import LLMatcher

    if response_format.type != "tool_calls":
        return LLMatcher.grammar_from_json_schema(response_format.schema_json(), overrides=JSON_LAYOUT)
    schema = {**json.loads(response_format.schema), "x-guidance": JSON_LAYOUT}
    calls = 'call ("\\n"? call)*' if response_format.several else "call"
    # The answer is text, or calls only: text never contains the opening tag, so a call the model starts
    # must be whole and fit the schema (the Earley parser keeps both readings alive until they part).
    lark = "\n".join(
        [
            "start: TEXT | calls",
            f"calls: {calls}",
            f"call: {json.dumps(TOOL_CALL_OPEN)} call_json {json.dumps(TOOL_CALL_CLOSE)}",
            f"call_json: %json{json.dumps(schema, ensure_ascii=False)}",
            f"TEXT: /(.|\\n)+/ & ~/(.|\\n)*{TOOL_CALL_OPEN}(.|\\n)*/",
        ]
    )
    return LLMatcher.grammar_from_lark(lark)


def openvino_structured_output(response_format: ResponseFormat) -> Any:
    """`response_format` as OpenVINO GenAI's StructuredOutputConfig (tool_calls: triggered structural tags)."""
    import openvino_genai

    structured = openvino_genai.StructuredOutputConfig()
    if response_format.type != "tool_calls":
        structured.json_schema = response_format.schema_json()
        return structured
    tags = openvino_genai.StructuredOutputConfig  # the namespace of the structural tag types
    call = tags.Tag(TOOL_CALL_OPEN, tags.JSONSchema(response_format.schema), TOOL_CALL_CLOSE)
    structured.structural_tags_config = tags.TriggeredTags(
        [TOOL_CALL_OPEN], [call], at_least_one=False, stop_after_first=not response_format.several
    )
    return structured


def unsupported(schema_text: str) -> str:
    """'' when the constraint enforces every keyword of the schema; else which ones it cannot, as a sentence."""
    from llguidance import LLMatcher

    try:
        grammar = LLMatcher.grammar_from_json_schema(schema_text, overrides=JSON_LAYOUT)
    except ValueError as exc:
        return str(exc)
    failed, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    # Warnings name what lenient compilers would skip (unimplemented keywords): skipping one would
    # let through output that does not fit, so a warning refuses the schema as an error does.
    return "; ".join(messages) if failed or messages else ""


class Vocabulary:
    """A model's tokens as the constraint library sees them; built once per loaded model (about a second)."""

    def __init__(self, hf_tokenizer: Any, *, eos_token_ids: Iterable[int], size: int):
        import llguidance.hf

        eos = sorted(eos_token_ids)
        self.size = size  # the width of the model's logits, which may exceed the tokenizer's length
        self.tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=size, eos_token=eos)


class ConstraintBroken(Exception):
    """The picked token is not one the constraint allowed: a bug, never the client's doing."""


class JsonConstraint:
    """One request's constraint: `mask(logits)` before each pick, `accept(token)` after it. Not thread-safe.

    Built off the engine thread (compiling takes milliseconds); used on it.
    """

    def __init__(self, vocabulary: Vocabulary, response_format: ResponseFormat):
        import numpy as np
        from llguidance import LLMatcher

        self.vocabulary = vocabulary
        self.matcher = LLMatcher(vocabulary.tokenizer, grammar_for(response_format), log_level=0)
        if self.matcher.is_error():  # checked when the request was parsed: reaching this is a bug
            raise ConstraintBroken(self.matcher.get_error())
        self._bits = np.full((vocabulary.size + 31) // 32, -1, dtype=np.int32)

    def mask(self, logits: Any) -> None:
        """Set to -inf, in place, every logit of `logits` ([1, vocab] or [vocab]) the output may not continue with."""
        import numpy as np
        import torch

        self.matcher.unsafe_compute_mask_ptr(self._bits.ctypes.data, self._bits.nbytes)
        bits = np.unpackbits(self._bits.view(np.uint8), bitorder="little")[: logits.shape[-1]]
        allowed = torch.from_numpy(bits.astype(np.bool_))
        if allowed.device != logits.device:
            allowed = allowed.to(logits.device, non_blocking=True)
        logits.masked_fill_(~allowed, float("-inf"))

    def accept(self, token: int) -> None:
        """Advance past the picked token; raises ConstraintBroken when it was not allowed."""
        if not self.matcher.consume_token(token) or self.matcher.is_error():
            raise ConstraintBroken(f"token {token} does not fit the response format: {self.matcher.get_error()}")

    @property
    def done(self) -> bool:
        """Whether the output is complete: nothing but the end of sequence may follow."""
        return self.matcher.is_stopped()

    def processor(self) -> Any:
        """This constraint as a transformers logits processor for `model.generate` (one row)."""
        constraint = self
        seen = [0]

        def process(input_ids: Any, scores: Any) -> Any:
            if seen[0] == 0:
                seen[0] = input_ids.shape[1]  # the prompt: nothing to accept yet
            else:
                constraint.accept(int(input_ids[0, -1]))
            constraint.mask(scores)
            return scores

        return process


class VocabularyCache:
    """One `Vocabulary` per provider, built on first use (most requests never ask for structured output)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._vocabulary: Vocabulary | None = None

    def get(self, hf_tokenizer: Any, *, eos_token_ids: Iterable[int], size: int) -> Vocabulary:
        with self._lock:
            if self._vocabulary is None:
                self._vocabulary = Vocabulary(hf_tokenizer, eos_token_ids=eos_token_ids, size=size)
            return self._vocabulary


# What OpenVINO GenAI's structured output (xgrammar, as built into openvino-genai 2026.4) enforces
# faithfully. Outside it, measured: `multipleOf` and number bounds are ignored (answers that do not
# fit), and `minProperties` fails the pipeline's step, which ends every request on the engine.
OPENVINO_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const",
        "anyOf", "oneOf", "$ref", "$defs", "definitions", "minLength", "maxLength", "minItems", "maxItems",
        "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        # annotations: they constrain nothing
        "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
        "writeOnly",
    }
)  # fmt: skip
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")


def openvino_unsupported(response_format: ResponseFormat) -> list[str]:
    """The schema keywords OpenVINO's structured output would not enforce (or would fail on), in order found."""
    if response_format.type == "json_object":
        return []
    return list(_openvino_unsupported(response_format.schema))


# Asked twice per request (where it is routed, and again on the engine thread as it admits the
# job): the schema is parsed and walked once, the second answer comes from here.
@functools.lru_cache(maxsize=256)
def _openvino_unsupported(schema_text: str) -> tuple[str, ...]:
    found: list[str] = []

    def walk(schema: Any) -> None:
        if not isinstance(schema, Mapping):
            return
        for key in schema:
            if key not in OPENVINO_KEYWORDS and key not in found:
                found.append(key)
        kinds = schema.get("type", [])
        kinds = [kinds] if isinstance(kinds, str) else kinds
        bounded = [key for key in BOUNDS if key in schema]
        if bounded and kinds != ["integer"]:
            found.extend(f"{key} (on a number)" for key in bounded if f"{key} (on a number)" not in found)
        for key in SUBSCHEMA_MAPS:
            for sub in (schema.get(key) or {}).values() if isinstance(schema.get(key), Mapping) else ():
                walk(sub)
        for key in SUBSCHEMA_LISTS:
            for sub in schema.get(key) or () if isinstance(schema.get(key), list) else ():
                walk(sub)
        for key in ("items", "additionalProperties"):
            walk(schema.get(key))

    walk(json.loads(schema_text))
    return tuple(found)
