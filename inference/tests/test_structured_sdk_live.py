"""The official `openai` SDK's structured output against the real local model, unmodified.

`client.chat.completions.parse(response_format=<a Pydantic model>)` sends the model's strict JSON
schema; the server's constrained decoding must make every answer parse into that model, for
schemas of every common shape (nested objects, arrays, enums, bounded numbers, optional fields).
The server is a real one (`make run`'s defaults: the OpenVINO engine; what its structured output
cannot enforce, such as number bounds, goes to the same weights on transformers).
"""

from __future__ import annotations

import enum
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field

from llmsite.testing import start_live_server

pytestmark = [pytest.mark.live_server, pytest.mark.real_model]

MODEL = "SmolLM2-135M-Instruct"


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class City(BaseModel):
    name: str
    country: str


class Capital(BaseModel):
    city: City
    population_millions: float = Field(ge=0, le=50)


class Weather(BaseModel):
    city: str
    temperature_c: float = Field(ge=-60, le=60)
    condition: Literal["sunny", "cloudy", "rain", "snow"]


class Sentiment(BaseModel):
    label: Literal["positive", "negative", "neutral"]
    confidence: float = Field(ge=0, le=1)


class Tags(BaseModel):
    tags: list[str] = Field(min_length=1, max_length=3)


class FavouriteColour(BaseModel):
    colour: Colour


class Person(BaseModel):
    name: str
    age: int = Field(ge=0, le=130)
    # Bounded as a real form bounds it: unbounded, greedy decoding of this small model repeats
    # "john_" in the address until the token limit (valid JSON so far, but cut short).
    email: str | None = Field(max_length=64)


class Address(BaseModel):
    street: str
    city: str
    postcode: str


class Customer(BaseModel):
    name: str
    address: Address
    vip: bool


class Step(BaseModel):
    number: int = Field(ge=1, le=10)
    action: str


class Recipe(BaseModel):
    title: str
    steps: list[Step] = Field(min_length=1, max_length=3)


class Point(BaseModel):
    x: float = Field(ge=-100, le=100)
    y: float = Field(ge=-100, le=100)


class Segment(BaseModel):
    start: Point
    end: Point


class Answer(BaseModel):
    answer: Literal["yes", "no"]
    reason: str


class Book(BaseModel):
    title: str
    author: str
    year: int = Field(ge=1400, le=2030)


class Library(BaseModel):
    books: list[Book] = Field(min_length=1, max_length=2)


class Priority(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Task(BaseModel):
    title: str
    priority: Priority
    done: bool
    estimate_hours: float | None = Field(ge=0, le=100)


class Translation(BaseModel):
    source_language: str
    target_language: str
    text: str


class Score(BaseModel):
    home: int = Field(ge=0, le=20)
    away: int = Field(ge=0, le=20)


class Match(BaseModel):
    home_team: str
    away_team: str
    score: Score


class Ingredient(BaseModel):
    name: str
    grams: int = Field(ge=1, le=5000)


class ShoppingList(BaseModel):
    items: list[Ingredient] = Field(min_length=1, max_length=3)


class Classification(BaseModel):
    category: Literal["sport", "politics", "science", "art"]
    keywords: list[str] = Field(max_length=3)


class Contact(BaseModel):
    name: str
    phone: str | None
    tags: list[Literal["family", "work", "friend"]] = Field(max_length=2)


class Flag(BaseModel):
    enabled: bool


class Settings(BaseModel):
    theme: Literal["light", "dark"]
    font_size: int = Field(ge=8, le=32)
    notifications: Flag


class Dimensions(BaseModel):
    width_cm: float = Field(gt=0, le=500)
    height_cm: float = Field(gt=0, le=500)
    unit_price: float = Field(ge=0, le=10000)


class Review(BaseModel):
    stars: int = Field(ge=1, le=5)
    summary: str
    would_recommend: bool | None


CASES: list[tuple[type[BaseModel], str]] = [
    (City, "Which city is the capital of France?"),
    (Capital, "Describe the capital of Japan."),
    (Weather, "What is the weather like in London today?"),
    (Sentiment, "Classify the sentiment: I love this phone."),
    (Tags, "Give tags for an article about football."),
    (FavouriteColour, "What colour is the sky?"),
    (Person, "Invent a person."),
    (Customer, "Invent a customer with an address."),
    (Recipe, "How do I make tea?"),
    (Segment, "Give a line segment from the origin."),
    (Answer, "Is water wet?"),
    (Library, "Name a famous book."),
    (Task, "Create a task to buy milk."),
    (Translation, "Translate 'hello' into French."),
    (Match, "Make up a football result."),
    (ShoppingList, "What do I need for pancakes?"),
    (Classification, "Classify: the team won the cup final."),
    (Contact, "Add my colleague Sam as a contact."),
    (Settings, "Choose settings for reading at night."),
    (Dimensions, "Describe the size of a table."),
    (Review, "Review a restaurant you liked."),
    (Point, "Give a point on a map."),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory, smollm2_exported):
    """A live server with the shipped model on the default engine, and the SDK with a personal API key."""
    server = start_live_server(
        tmp_path_factory.mktemp("structured-sdk"), MODELS_DIR=str(smollm2_exported.parent), LLM_MODEL=MODEL
    )
    key = server.create_api_key(name="sdk")
    yield openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=300)
    server.stop()


def test_the_cases_are_at_least_twenty_varied_schemas():
    assert len({schema for schema, _question in CASES}) == len(CASES) >= 20


@pytest.mark.parametrize(("schema", "question"), CASES, ids=[schema.__name__ for schema, _ in CASES])
def test_the_sdks_parse_returns_an_object_of_the_schema(client, schema, question):
    try:
        completion = client.chat.completions.parse(
            model=MODEL,
            messages=[{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": question}],
            response_format=schema,
            max_tokens=300,
        )
    except openai.LengthFinishReasonError as exc:  # cut short by the token limit: not an object
        pytest.fail(f"cut short: {exc.completion.choices[0].message.content!r}")
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert isinstance(choice.message.parsed, schema), choice.message.content


def test_a_streamed_parse_ends_in_an_object_of_the_schema(client):
    with client.chat.completions.stream(
        model=MODEL,
        messages=[{"role": "user", "content": "Invent a customer with an address."}],
        response_format=Customer,
        max_tokens=300,
    ) as stream:
        deltas = [event for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 1  # it arrived in pieces
    assert isinstance(final.choices[0].message.parsed, Customer)
