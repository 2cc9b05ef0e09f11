import csv
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts import services as accounts_services
from usage.models import UsageCounter
from usage.services import Meter, QuotaExceeded, ledger_add, limits_set

pytestmark = pytest.mark.django_db

NOV = dict(tzinfo=UTC, year=2026, month=11)


@pytest.fixture
def keys(alice, bob):
    laptop, _ = accounts_services.api_key_create(user=alice, name="laptop")
    phone, _ = accounts_services.api_key_create(user=bob, name="phone")
    return laptop, phone


@pytest.fixture
def ledger(alice, bob, keys):
    """November: alice 3 requests (one cached, one without a key), bob 1; bob's October request is outside."""
    laptop, phone = keys

    def add(user, key, model, prompt, completion, cost, at, cached=False):
        ledger_add(
            user=user,
            api_key=key,
            model=model,
            kind="completion",
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            cached=cached,
            at=at,
        )

    add(alice, laptop, "smollm2", 100, 50, 0, datetime(day=3, hour=10, minute=15, **NOV))
    add(alice, laptop, "smollm2", 100, 50, 0, datetime(day=3, hour=10, minute=45, **NOV), cached=True)
    add(alice, None, "big-model", 1000, 500, 1_500_000, datetime(day=4, hour=8, **NOV))
    add(bob, phone, "smollm2", 10, 5, 0, datetime(day=5, hour=23, minute=59, **NOV))
    add(bob, phone, "big-model", 200, 100, 300_000, datetime(2026, 10, 20, 12, tzinfo=UTC))


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("usage", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def table(output: str) -> list[list[str]]:
    """The table's lines as cells (columns are two or more spaces apart), rules left out."""
    lines = output.splitlines()[1:]  # the heading names the span
    return [re.split(r"\s{2,}", line.strip()) for line in lines if not set(line) <= {"-", " "}]


def test_it_sums_by_user_with_totals(ledger):
    out, _ = run("report", "--since", "2026-11-01", "--until", "2026-11-30")
    assert out.splitlines()[0] == "Usage from 2026-11-01 00:00 UTC to 2026-12-01 00:00 UTC, by user"
    assert table(out) == [
        ["user", "requests", "cached", "prompt tokens", "completion tokens", "total tokens", "cost (USD)"],
        ["alice", "3", "1", "1,200", "600", "1,800", "1.500000"],
        ["bob", "1", "0", "10", "5", "15", "0.000000"],
        ["total", "4", "1", "1,210", "605", "1,815", "1.500000"],
    ]


def test_it_aligns_the_columns(ledger):
    out, _ = run("report", "--since", "2026-11-01", "--until", "2026-11-30")
    lines = out.splitlines()[1:]
    assert len({len(line) for line in lines}) == 1
    assert lines[2].startswith("alice ") and lines[-1].startswith("total ")


def test_it_sums_by_model_the_most_tokens_first(ledger):
    out, _ = run("report", "--since", "2026-11-01", "--until", "2026-11-30", "--by", "model")
    assert table(out)[1:] == [
        ["big-model", "1", "0", "1,000", "500", "1,500", "1.500000"],
        ["smollm2", "3", "1", "210", "105", "315", "0.000000"],
        ["total", "4", "1", "1,210", "605", "1,815", "1.500000"],
    ]


def test_it_sums_by_key_naming_each_key_and_its_owner(ledger, keys):
    laptop, phone = keys
    out, _ = run("report", "--since", "2026-11-01", "--until", "2026-11-30", "--by", "key")
    rows = table(out)
    assert rows[0][0] == "key"
    assert [row[0] for row in rows[1:]] == [
        "(no key: signed in)",
        f"laptop (alice, {laptop.display_prefix})",
        f"phone (bob, {phone.display_prefix})",
        "total",
    ]
    assert [row[5] for row in rows[1:]] == ["1,500", "300", "15", "1,815"]


def test_it_reports_one_users_usage(ledger):
    out, _ = run("report", "--since", "2026-10-01", "--until", "2026-11-30", "--by", "model", "--user", "bob")
    assert out.splitlines()[0].startswith("Usage of bob from 2026-10-01 00:00 UTC")
    assert table(out)[1:] == [
        ["big-model", "1", "0", "200", "100", "300", "0.300000"],
        ["smollm2", "1", "0", "10", "5", "15", "0.000000"],
        ["total", "2", "0", "210", "105", "315", "0.300000"],
    ]


def test_it_takes_a_datetime_span(ledger):
    # Hours are whole: the bucket of 2026-11-03 10:00 counts from 10:30 on, 2026-11-04 08:00 is left out.
    out, _ = run("report", "--since", "2026-11-03T10:30:00Z", "--until", "2026-11-04T08:00:00+00:00")
    assert table(out)[1:] == [
        ["alice", "2", "1", "200", "100", "300", "0.000000"],
        ["total", "2", "1", "200", "100", "300", "0.000000"],
    ]


def test_it_takes_a_span_relative_to_now(alice):
    now = timezone.now()
    for days_ago, tokens in ((2, 7), (10, 1000)):
        at = now - timedelta(days=days_ago)
        ledger_add(
            user=alice,
            api_key=None,
            model="m",
            kind="completion",
            prompt_tokens=tokens,
            completion_tokens=0,
            cost=0,
            at=at,
        )
    assert table(run("report", "--since", "7d")[0])[-1][:5] == ["total", "1", "0", "7", "0"]
    assert table(run("report", "--since", "240h")[0])[-1][:5] == ["total", "2", "0", "1,007", "0"]
    assert table(run("report")[0])[-1][:5] == ["total", "2", "0", "1,007", "0"]  # the last 30 days
    assert table(run("report", "--since", "7d", "--until", "1d")[0])[-1][:5] == ["total", "1", "0", "7", "0"]


def test_it_prints_an_empty_table_with_zero_totals(db):
    out, _ = run("report", "--since", "2026-11-01", "--until", "2026-11-30")
    assert table(out)[1:] == [["total", "0", "0", "0", "0", "0", "0.000000"]]


def test_it_writes_the_rows_to_a_csv_file(ledger, tmp_path):
    path = tmp_path / "usage.csv"
    out, err = run("report", "--since", "2026-11-01", "--until", "2026-11-30", "--by", "model", "--csv", str(path))
    assert "big-model" in out  # the table too
    assert f"Wrote 2 rows to {path}" in err
    with path.open(newline="") as f:
        assert list(csv.reader(f)) == [
            ["model", "requests", "cached_requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost"],
            ["big-model", "1", "0", "1000", "500", "1500", "1.500000"],
            ["smollm2", "3", "1", "210", "105", "315", "0.000000"],
        ]


def test_it_writes_only_csv_to_stdout(ledger):
    out, _ = run("report", "--since", "2026-11-01", "--until", "2026-11-30", "--csv", "-")
    assert list(csv.reader(StringIO(out))) == [
        ["user", "requests", "cached_requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost"],
        ["alice", "3", "1", "1200", "600", "1800", "1.500000"],
        ["bob", "1", "0", "10", "5", "15", "0.000000"],
    ]


def test_csv_cells_never_start_a_spreadsheet_formula(alice):
    at = datetime(day=2, **NOV)
    ledger_add(
        user=alice, api_key=None, model="=cmd()", kind="completion", prompt_tokens=1, completion_tokens=1, cost=0, at=at
    )
    out, _ = run("report", "--since", "2026-11-01", "--by", "model", "--csv", "-")
    assert list(csv.reader(StringIO(out)))[1][0] == "'=cmd()"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "day"], "--by 'day': expected one of user, key, model"),
        (["--since", "2026-13-01"], "--since '2026-13-01': expected a date"),
        (["--since", "2026-02-30"], "--since '2026-02-30': expected a date"),
        (["--since", "last week"], "--since 'last week': expected a date"),
        (["--since", "2026-11-01", "--until", "tomorrow"], "--until 'tomorrow': expected a date"),
        (["--since", "2026-11-10", "--until", "2026-11-01T00:00Z"], "must be after --since"),
        (["--since", "1d", "--until", "2d"], "must be after --since"),
        (["--user", "nobody"], "No user named 'nobody'"),
    ],
)
def test_it_rejects_bad_values(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("report", *args)


def test_it_says_why_a_csv_file_cannot_be_written(ledger, tmp_path):
    with pytest.raises(CommandError, match="--csv"):
        run("report", "--since", "2026-11-01", "--csv", str(tmp_path / "missing" / "usage.csv"))


def test_prune_removes_counters_older_than_40_days(db):
    now = timezone.now()
    for days_ago in (41, 45, 39, 0):
        UsageCounter.objects.create(
            subject="user:1", kind="tokens_per_day", window_start=now - timedelta(days=days_ago)
        )
    out, _ = run("prune")
    assert out.strip() == "Removed 2 usage counters older than 40 days."
    assert UsageCounter.objects.count() == 2
    with pytest.raises(CommandError, match="--days must be more than 31"):
        run("prune", "--days", "31")


def test_recount_drops_holds_a_crash_left_and_keeps_what_the_ledger_holds(db, alice, usage_clock):
    limits_set(user=alice, values={"tokens_per_day": 1000})
    Meter(user=alice).reserve(model="m", prompt_tokens=100, max_tokens=100).settle(
        prompt_tokens=100, completion_tokens=50
    )
    Meter(user=alice).reserve(model="m", prompt_tokens=100, max_tokens=600)  # its process dies: never settled
    with pytest.raises(QuotaExceeded):
        Meter(user=alice).reserve(model="m", prompt_tokens=100, max_tokens=100)  # 150 + 700 + 200 > 1000
    out, _ = run("recount")
    assert out.startswith("Dropped 1 usage counters")
    Meter(user=alice).reserve(model="m", prompt_tokens=100, max_tokens=100)  # 150 settled + 200 held
    assert UsageCounter.objects.get(kind="tokens_per_day").used == 350
