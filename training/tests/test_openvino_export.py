"""A fine-tuned model is exported when its run finishes, and the OpenVINO engine serves it exactly."""

from __future__ import annotations

import pytest

from inference.export import exporter_problem
from inference.providers.base import GenerationRequest, SamplingParams
from inference.providers.hf import HFProvider
from inference.providers.openvino import OpenVINOProvider, is_exported
from inference.registry import ProviderSpec, build_provider
from jobs.testing import run_jobs
from training import services
from training.tests.conftest import FAST

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.real_model]


@pytest.mark.timeout(900)
def test_a_finished_run_is_exported_and_served_by_openvino_as_transformers_serves_it(training_settings, staff):
    if exporter_problem():
        pytest.fail(exporter_problem())  # make test installs the exporter: missing it is a broken setup
    training_settings.LLM_EXPORT_AFTER_TRAINING = True
    training_settings.LLM_ENGINE = "auto"
    run = services.run_execute(services.run_create(user=staff, source="cli", claim=True, name="tuned-ov", **FAST))
    assert run.status == "succeeded", run.error
    assert run.final_metrics["openvino_export_task"]  # the export is a job of its own, after the run
    run_jobs("training")
    run.refresh_from_db()
    folder = training_settings.MODELS_DIR / "tuned-ov"
    assert is_exported(folder, "fp32"), run.final_metrics
    assert run.final_metrics["openvino_export_seconds"] > 0

    served = build_provider(ProviderSpec("hf", "tuned-ov", "cpu"))
    assert isinstance(served, OpenVINOProvider)
    reference = HFProvider("tuned-ov", folder, device="cpu")
    served.load()
    reference.load()
    try:
        for prompt in ("What is llmsite?", "Hello", "Tell me about the sea and the sky."):
            request = GenerationRequest(prompt=prompt, sampling=SamplingParams(max_new_tokens=24))
            assert served.generate(request).text == reference.generate(request).text
    finally:
        served.close()
        reference.close()
