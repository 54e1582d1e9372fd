"""The reader-server client's logic without a network: reply parsing, URL and config checks, options."""

from __future__ import annotations

import pytest

from rag import answering
from rag.config import make_config
from rag.errors import InputError
from rag.reader import ReaderConfig, make_output
from rag.server_reader import OpenAIReader, ServerError, check_server_url, parse_completion


def completion(text: str, logprobs: list[float] | None = None) -> dict:
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": f"t{i}", "logprob": lp, "top_logprobs": []}
                                          for i, lp in enumerate(logprobs)]}
    return {"id": "x", "object": "chat.completion", "choices": [choice]}


def test_parse_completion_reads_text_and_token_logprobs() -> None:
    assert parse_completion(completion(" Paris [P1] ", [-0.1, -0.5])) == ("Paris [P1]", [-0.1, -0.5])


def test_parse_completion_without_logprobs_gives_none() -> None:
    assert parse_completion(completion("Paris")) == ("Paris", [])
    assert parse_completion({"choices": [{"message": {"content": "Paris"}, "logprobs": None}]}) == ("Paris", [])


def test_parse_completion_maps_infinite_logprob_to_a_floor() -> None:
    assert parse_completion(completion("x", [float("-inf")]))[1] == [-1e4]


@pytest.mark.parametrize("body", [{}, {"choices": []}, {"choices": [{"text": "legacy"}]}, {"error": "boom"}])
def test_parse_completion_rejects_what_is_not_a_chat_completion(body: dict) -> None:
    with pytest.raises(ServerError, match="not a chat completion"):
        parse_completion(body)


@pytest.mark.parametrize("url", ["localhost:8000/v1", "ftp://host/v1", "http://", "", "   "])
def test_bad_server_urls_are_one_input_error(url: str) -> None:
    with pytest.raises(InputError, match="reader server URL"):
        check_server_url(url)
    with pytest.raises(InputError, match="reader server URL"):
        ReaderConfig(server_url=url)


def test_server_url_is_normalised() -> None:
    assert check_server_url(" http://127.0.0.1:8000/v1/ ") == "http://127.0.0.1:8000/v1"


def test_an_adapter_needs_a_local_reader() -> None:
    with pytest.raises(InputError, match="adapter"):
        ReaderConfig(server_url="http://127.0.0.1:8000/v1", adapter="/tmp/lora")


def test_timeout_must_be_positive() -> None:
    with pytest.raises(InputError, match="server_timeout_s"):
        ReaderConfig(server_url="http://127.0.0.1:8000/v1", server_timeout_s=0)


def test_pipeline_options_reach_the_reader_config() -> None:
    config = make_config("default", reader_server_url="http://127.0.0.1:9/v1", reader_server_model="big")
    assert config.reader.server_url == "http://127.0.0.1:9/v1" and config.reader.server_model == "big"


@pytest.mark.parametrize("option", [{"kg_reader_choice": True}, {"use_reader_adapter": True}])
def test_local_only_features_are_refused_with_a_server(option: dict) -> None:
    with pytest.raises(InputError, match="local reader"):
        make_config("default", reader_server_url="http://127.0.0.1:9/v1", **option)


def test_constructing_the_reader_touches_no_network() -> None:
    # The unit-test guard refuses any socket connect: construction must not need one.
    reader = OpenAIReader(ReaderConfig(server_url="http://127.0.0.1:9/v1"))
    assert reader.base_url == "http://127.0.0.1:9/v1" and reader.model is None


def test_option_scoring_is_refused_clearly() -> None:
    reader = OpenAIReader(ReaderConfig(server_url="http://127.0.0.1:9/v1"))
    with pytest.raises(InputError, match="local reader"):
        reader.score_options("q", [], ["a", "b"])


def test_without_logprobs_only_the_evidence_decides_confidence() -> None:
    # A server that sends no log-probs must not make every answer look certain.
    answer = make_output("Paris", [])
    assert answering.reader_confidence(answer, supported=True) == 0.75
    assert answering.reader_confidence(answer, supported=False) == 0.25
    certain = make_output("Paris", [-0.01])
    assert answering.reader_confidence(certain, supported=False) > 0.49


def test_cli_reader_url_flags_become_pipeline_options() -> None:
    from rag.__main__ import _options, make_parser

    args = make_parser().parse_args(["ask", "--index", "/x", "--reader-url", "http://h:1/v1", "--reader-model", "m",
                                     "question?"])
    assert _options(args) == {"reader_server_url": "http://h:1/v1", "reader_server_model": "m"}


def test_ui_reader_options_from_argv_or_environment() -> None:
    from ui.helpers import parse_options

    from_argv = parse_options(["--index", "/x", "--reader-url", "http://h:1/v1"], {})
    assert from_argv.pipeline_options() == {"reader_server_url": "http://h:1/v1"}
    from_env = parse_options([], {"KGRAG_UI_READER_URL": "http://h:2/v1", "KGRAG_UI_READER_MODEL": "m"})
    assert from_env.pipeline_options() == {"reader_server_url": "http://h:2/v1", "reader_server_model": "m"}
    assert parse_options([], {}).pipeline_options() == {}
