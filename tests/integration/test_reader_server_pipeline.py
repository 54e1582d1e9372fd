"""The pipeline reading through an OpenAI-compatible chat server.

- A scripted server on loopback checks the wiring and the protocol: the prompt is the local reader's, the answer
  and its log-probs flow into citations, confidence and refusal, the API key is sent, errors are one message.
- A real llama.cpp server (llama-cpp-python's OpenAI-compatible server, the `server` extra) with the packaged
  Qwen GGUF answers real sample questions; it skips when that extra is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import REPO, free_port, subprocess_env, wait_until_up

from rag.errors import ModelLoadError
from rag.metrics import contains_answer
from rag.pipeline import QAPipeline
from rag.prompt import build_messages

pytestmark = pytest.mark.integration

REACHED_READER = "nq-q1031"  # who won the first season of america's got talent -> Bianca Ryan (passages, no KG)
ANSWER = "Bianca Ryan"


class ScriptedServer:
    """Answers /v1/models and /v1/chat/completions with `answer(messages) -> (text, logprobs or None)`."""

    def __init__(self, answer: Callable[[list[dict]], tuple[str, list[float] | None]], models: tuple[str, ...] = ("m",),
                 refuse_logprobs: bool = False):
        self.answer = answer
        self.models = models
        self.refuse_logprobs = refuse_logprobs  # as llama-cpp-python's server does without logits_all
        self.requests: list[tuple[str, dict, dict]] = []  # (path, headers, body)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers), {}))
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append((self.path, dict(self.headers), body))
                if body.get("model") not in server.models:
                    self._send(404, {"error": {"message": f"model {body.get('model')} not found"}})
                    return
                if server.refuse_logprobs and body.get("logprobs"):
                    self._send(500, {"error": {"message": "logprobs is not supported for models created with "
                                                          "logits_all=False"}})
                    return
                text, logprobs = server.answer(body["messages"])
                choice: dict = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                if logprobs is not None:
                    choice["logprobs"] = {"content": [{"token": "t", "logprob": lp} for lp in logprobs]}
                self._send(200, {"object": "chat.completion", "choices": [choice]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(answer, **kwargs) -> ScriptedServer:
        servers.append(ScriptedServer(answer, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def question(sample_questions: list[dict], qid: str) -> dict:
    return next(q for q in sample_questions if q["id"] == qid)


def label_of(messages: list[dict], needle: str) -> str:
    """The label ([P1]...) under which the prompt showed the passage containing `needle`."""
    for line in messages[-1]["content"].splitlines():
        if needle in line and line.startswith("["):
            return line[1 : line.index("]")]
    raise AssertionError(f"{needle!r} is not in the prompt")


def test_pipeline_reads_through_the_server_with_the_local_prompt(sample_index: Path, sample_questions: list[dict],
                                                                 scripted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KGRAG_TEST_KEY", "secret-123")
    server = scripted(lambda messages: (f"{ANSWER} [{label_of(messages, ANSWER)}]", [-0.05, -0.1, -0.02]))
    qa = QAPipeline.load(sample_index, reader_server_url=server.url, reader_server_api_key_env="KGRAG_TEST_KEY")
    q = question(sample_questions, REACHED_READER)
    answer = qa.ask(q["question"])

    assert not answer.refused and answer.method == "reader"
    assert contains_answer(answer.text, tuple(q["answers"]))
    assert answer.confidence > 0.9
    assert answer.citations and ANSWER in answer.citations[0].text  # the cited label maps back to its passage
    _path, headers, body = next(r for r in server.requests if r[0].endswith("/chat/completions"))
    assert headers.get("Authorization") == "Bearer secret-123"
    assert body["model"] == "m" and body["temperature"] == 0.0 and body["logprobs"] is True
    # Exactly the messages the local reader would render for the evidence the pipeline chose.
    assert body["messages"][0] == build_messages(q["question"], [], instruction=None)[0]
    assert f"Question: {q['question'].strip()}" in body["messages"][-1]["content"]


def test_an_unsupported_answer_without_logprobs_is_refused(sample_index: Path, sample_questions: list[dict],
                                                           scripted) -> None:
    server = scripted(lambda messages: ("Channel Nine Perth", None))  # no log-probs, in no passage
    qa = QAPipeline.load(sample_index, reader_server_url=server.url)
    answer = qa.ask(question(sample_questions, REACHED_READER)["question"])
    assert answer.refused and answer.method == "refusal"


def test_a_server_that_refuses_logprobs_is_read_without_them(sample_index: Path, sample_questions: list[dict],
                                                             scripted) -> None:
    server = scripted(lambda messages: (f"{ANSWER} [{label_of(messages, ANSWER)}]", None), refuse_logprobs=True)
    qa = QAPipeline.load(sample_index, reader_server_url=server.url)
    question_text = question(sample_questions, REACHED_READER)["question"]
    first, second = qa.ask(question_text), qa.ask(question_text)
    assert first.text == second.text == ANSWER and not first.refused
    assert first.confidence == 0.75  # supported by the evidence, certainty unknown
    asked = [body.get("logprobs") for path, _, body in server.requests if path.endswith("/chat/completions")]
    assert asked[0] is True and asked[1:] == [None] * (len(asked) - 1)  # asked once, then no more


def test_the_model_must_be_one_the_server_serves(sample_index: Path, scripted) -> None:
    server = scripted(lambda messages: ("x", None), models=("a", "b"))
    with pytest.raises(ModelLoadError, match="serves 2 models"):
        QAPipeline.load(sample_index, reader_server_url=server.url).warm_up()
    with pytest.raises(ModelLoadError, match="does not serve 'c'"):
        QAPipeline.load(sample_index, reader_server_url=server.url, reader_server_model="c").warm_up()
    QAPipeline.load(sample_index, reader_server_url=server.url, reader_server_model="b").warm_up()


def test_concurrent_questions_share_one_reader(sample_index: Path, sample_questions: list[dict], scripted) -> None:
    server = scripted(lambda messages: (f"{ANSWER} [{label_of(messages, ANSWER)}]", [-0.05]))
    qa = QAPipeline.load(sample_index, reader_server_url=server.url)
    q = question(sample_questions, REACHED_READER)["question"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(qa.ask, [q] * 8))
    assert all(a.text == ANSWER and not a.refused for a in answers)


def test_cli_names_an_unreachable_server_in_one_line(sample_index: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    run = subprocess.run([sys.executable, "-m", "rag", "ask", "--index", str(sample_index), "--reader-url", url,
                          "who won the first season of america's got talent"],
                         check=False, capture_output=True, text=True, cwd=REPO, env=subprocess_env(), timeout=300)
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the reader server" in errors[0] and url in errors[0], run.stderr
    assert "Traceback" not in run.stderr


# ---- a real OpenAI-compatible server: llama.cpp with the packaged Qwen GGUF -----------------------------


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="llama.cpp server extra not installed (pip install -e '.[llamacpp]')")
    from rag.models import DEFAULT_READER, packaged_gguf_path

    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"  # a file: llama.cpp's chatter would fill a pipe and block
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(packaged_gguf_path(DEFAULT_READER)),
             "--model_alias", "qwen", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
             "--n_threads", str(os.cpu_count() or 2)],
            stdout=subprocess.DEVNULL, stderr=handle)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_up(url + "/models", process, log, timeout_s=180, what="the llama.cpp server")
    except BaseException:
        process.kill()
        raise
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_real_llama_cpp_server_answers_and_refuses(sample_index: Path, sample_questions: list[dict],
                                                   llama_server: str) -> None:
    qa = QAPipeline.load(sample_index, reader_server_url=llama_server)
    qa.warm_up()
    assert qa.reader.model == "qwen"  # the one model the server lists
    read = [q for q in sample_questions if q["id"].startswith("nq-")]
    answers = [qa.ask(q["question"]) for q in read]
    right = [a for a, q in zip(answers, read) if not a.refused and contains_answer(a.text, tuple(q["answers"]))]
    assert len(right) >= len(read) // 2, [(q["question"], a.text, a.refused) for a, q in zip(answers, read)]
    assert all(a.citations and a.signals["min_logprob"] < 0 for a in right)  # the server's log-probs arrived
    unanswerable = [q for q in sample_questions if not q["answers"]][:5]
    refused = sum(qa.ask(q["question"]).refused for q in unanswerable)
    assert refused >= 2, refused
