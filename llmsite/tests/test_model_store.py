import json

import pytest

from llmsite.model_store import (
    PREPARED_MARKER,
    ModelNotFound,
    is_prepared,
    prepare_packaged_llm,
    resolve_encoder_folder,
    resolve_llm_folder,
)


def test_an_unknown_model_name_is_a_clear_error_not_a_download(tmp_path):
    with pytest.raises(ModelNotFound, match="never downloads"):
        resolve_llm_folder("meta-llama/Llama-3-8B", tmp_path)


def test_a_packaged_model_not_yet_prepared_says_how_to_prepare_it(tmp_path):
    with pytest.raises(ModelNotFound, match="prepare_models"):
        resolve_llm_folder("SmolLM2-135M-Instruct", tmp_path)


@pytest.mark.parametrize("absolute", [False, True])
def test_a_name_no_folder_can_have_is_not_found(tmp_path, absolute):
    name = "m" * 5000  # longer than any file name: looking for it raised OSError
    with pytest.raises(ModelNotFound):
        resolve_llm_folder(str(tmp_path / name) if absolute else name, tmp_path)


def test_a_local_folder_with_a_config_resolves(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text("{}")
    assert resolve_llm_folder("tiny", tmp_path) == tmp_path / "tiny"
    assert resolve_llm_folder(str(tmp_path / "tiny"), tmp_path / "elsewhere") == tmp_path / "tiny"


def test_a_half_written_folder_is_not_prepared(tmp_path):
    folder = tmp_path / "SmolLM2-135M-Instruct"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert not is_prepared(folder)
    with pytest.raises(ModelNotFound):
        resolve_llm_folder("SmolLM2-135M-Instruct", tmp_path)


def test_preparing_twice_is_a_no_op(tmp_path):
    folder = tmp_path / "SmolLM2-135M-Instruct"
    folder.mkdir()
    (folder / PREPARED_MARKER).write_text(json.dumps({"name": "SmolLM2-135M-Instruct"}))
    assert prepare_packaged_llm("HuggingFaceTB/SmolLM2-135M-Instruct", tmp_path) == (folder, False)


def test_the_packaged_encoder_is_found_offline():
    folder = resolve_encoder_folder("sentence-transformers/all-MiniLM-L6-v2")
    assert (folder / "modules.json").is_file()


def test_an_unknown_encoder_is_a_clear_error():
    with pytest.raises(ModelNotFound, match="unknown embedding model"):
        resolve_encoder_folder("e5-large")
