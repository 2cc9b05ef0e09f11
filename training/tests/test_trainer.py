"""The plain-Python trainer on a tiny model: labels, loss, seeds, cancelling, saving, serving."""

from __future__ import annotations

import itertools

import pytest

from training.tests.conftest import conversation, tiny_config
from training.trainer import (
    EpochDone,
    Evaluated,
    Example,
    Prepared,
    Saved,
    StepDone,
    Trainer,
    TrainingCancelled,
    TrainingError,
    encode_chat,
    encode_text,
    partial_checkpoints,
    split,
    train,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_base):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base)


def test_it_puts_the_loss_only_on_the_assistant_turns(tokenizer):
    example = Example(
        "chat",
        messages=(
            ("system", "Be brief."),
            ("user", "Hi?"),
            ("assistant", "Hello there."),
            ("user", "And llmsite?"),
            ("assistant", "It serves models."),
        ),
        source="t",
    )
    encoded = encode_chat(tokenizer, example, max_length=512)
    labelled = [token for token, label in zip(encoded.ids, encoded.labels, strict=True) if label != -100]
    assert tokenizer.decode(labelled) == "Hello there.<|im_end|>\nIt serves models.<|im_end|>\n"
    # The prompt side (system, user turns, role headers) is context only.
    assert encoded.labels[0] == -100
    assert tokenizer.decode(encoded.ids).startswith("<|im_start|>system\nBe brief.")


def test_a_conversation_cut_before_its_answer_is_skipped(tokenizer):
    long_question = conversation("word " * 200, "short answer")
    assert encode_chat(tokenizer, long_question, max_length=32) is None


def test_plain_text_becomes_windows_that_all_count(tokenizer):
    windows = encode_text(tokenizer, Example("text", text="llmsite " * 100, source="k"), max_length=32)
    assert len(windows) >= 3
    assert all(len(w.ids) <= 32 and w.ids == w.labels for w in windows)


def test_the_split_is_seeded_and_holds_at_least_one_example(small_examples):
    train_a, eval_a = split(small_examples, 0.1, seed=3)
    train_b, eval_b = split(small_examples, 0.1, seed=3)
    assert (train_a, eval_a) == (train_b, eval_b)
    assert len(eval_a) == 1 and len(train_a) == 7
    assert split(small_examples, 0.0, seed=3)[1] == []


def test_warm_up_then_decay(tiny_base, tmp_path):
    trainer = Trainer(tiny_config(tiny_base, tmp_path / "out", learning_rate=1.0, warmup_ratio=0.2))
    rates = [trainer.learning_rate(step, 10) for step in range(10)]
    assert rates[:2] == [0.5, 1.0]
    assert all(a >= b for a, b in itertools.pairwise(rates[1:])) and rates[-1] > 0


def test_the_loss_goes_down_and_a_seed_repeats_the_run_exactly(tiny_base, tmp_path, small_examples):
    runs = []
    for attempt in ("a", "b"):
        events: list = []
        result = train(
            tiny_config(tiny_base, tmp_path / attempt, epochs=3, max_steps=None), small_examples, on_event=events.append
        )
        runs.append((result, events))
    (result, events), (_, events_again) = runs
    losses = [e.loss for e in events if isinstance(e, StepDone)]
    assert losses == [e.loss for e in events_again if isinstance(e, StepDone)]
    assert result.eval_loss_after < result.eval_loss_before
    assert losses[-1] < losses[0]
    epochs = [e for e in events if isinstance(e, EpochDone)]
    assert [e.epoch for e in epochs] == [1, 2, 3] and all(e.tokens_per_second > 0 for e in epochs)
    assert isinstance(events[0], Prepared) and events[0].train_examples == 6 and events[0].eval_examples == 2
    assert [e.stage for e in events if isinstance(e, Evaluated)] == ["before", "epoch", "epoch", "epoch", "after"]
    assert isinstance(events[-1], Saved)


def test_max_steps_ends_the_run_within_an_epoch(tiny_base, tmp_path, small_examples):
    events: list = []
    result = train(
        tiny_config(tiny_base, tmp_path / "out", epochs=5, max_steps=1, eval_fraction=0.0),
        small_examples,
        on_event=events.append,
    )
    assert result.steps == 1 and result.epochs == 1
    assert result.eval_loss_before is None and result.eval_loss_after is None
    assert [e.step for e in events if isinstance(e, EpochDone)] == [1]


def test_gradient_accumulation_counts_micro_batches_per_step(tiny_base, tmp_path, small_examples):
    result = train(
        tiny_config(tiny_base, tmp_path / "out", epochs=1, max_steps=None, batch_size=1, grad_accum_steps=3),
        small_examples,
    )
    assert result.steps == 2  # 6 training examples, 3 per optimizer step


def test_it_stops_between_steps_and_saves_nothing_when_cancelled(tiny_base, tmp_path, small_examples):
    steps: list[int] = []

    def on_event(event):
        if isinstance(event, StepDone):
            steps.append(event.step)

    with pytest.raises(TrainingCancelled) as caught:
        train(
            tiny_config(tiny_base, tmp_path / "out", max_steps=50, epochs=20),
            small_examples,
            on_event=on_event,
            should_stop=lambda: len(steps) >= 2,
        )
    assert caught.value.step == 2 and steps == [1, 2]
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no temporary folder


def test_it_refuses_to_overwrite_a_folder(tiny_base, tmp_path, small_examples):
    (tmp_path / "out").mkdir()
    with pytest.raises(TrainingError, match="already exists"):
        train(tiny_config(tiny_base, tmp_path / "out"), small_examples)


def test_the_checkpoint_loads_through_the_hf_provider_and_generates(tiny_base, tmp_path, small_examples):
    from inference.providers.base import GenerationRequest, SamplingParams
    from inference.providers.hf import HFProvider

    folder = tmp_path / "tuned"
    train(tiny_config(tiny_base, folder), small_examples)
    assert {"config.json", "model.safetensors", "tokenizer.json", "llmsite-training.json"} <= {
        p.name for p in folder.iterdir()
    }
    provider = HFProvider("tuned", folder, device="cpu")
    provider.load()
    try:
        completion = provider.generate(
            GenerationRequest(prompt="What is llmsite?", sampling=SamplingParams(max_new_tokens=5))
        )
    finally:
        provider.close()
    assert completion.usage.completion_tokens >= 1


def test_partial_checkpoints_are_only_those_of_the_named_model(tmp_path):
    for name in (".a.partial-k3x_9q2z", ".a.partial-b.partial-k3x_9q2z", ".ab.partial-k3x_9q2z", "a", ".a"):
        (tmp_path / name).mkdir()
    assert [p.name for p in partial_checkpoints(tmp_path / "a")] == [".a.partial-k3x_9q2z"]
    assert [p.name for p in partial_checkpoints(tmp_path / "a.partial-b")] == [".a.partial-b.partial-k3x_9q2z"]
    assert partial_checkpoints(tmp_path / "missing" / "a") == []
