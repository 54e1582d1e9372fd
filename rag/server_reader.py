"""A reader served by an OpenAI-compatible chat server (vLLM, llama.cpp's server, llama-cpp-python's server,
OpenAI itself), for users who want a larger model than the packaged 0.5B one.

It sends the same prompt as the local reader (rag.prompt.build_messages), greedy (temperature 0), and asks for
per-token log-probabilities, so the refusal rule and the calibration signals work as they do locally; the poison
defense and the stance step call `read` like any reader. A server that gives no log-probabilities, or refuses the
request for them, still works: `ReaderOutput.token_logprobs` is then empty and the confidence rule treats the
certainty as unknown (answering.reader_confidence).

Only the standard library talks HTTP: nothing to install, no network at import or construction; `warm_up()`
asks the server for its model list (one clear error when it is unreachable or does not serve the model).
The API key is read from the environment variable the config names, never stored in the config.
"""

from __future__ import annotations

import json
import logging
import math
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from rag.errors import InputError, KgragError, ModelLoadError
from rag.prompt import assign_labels, build_messages
from rag.reader import ReaderConfig, ReaderOutput, make_output
from rag.types import Evidence

log = logging.getLogger(__name__)


class ServerError(KgragError):
    """The reader server answered with an error, or with something that is not a chat completion."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail  # the server's own words, e.g. why it refused `logprobs`


def check_server_url(url: str) -> str:
    """The base URL without a trailing slash (e.g. http://localhost:8000/v1); one InputError when malformed."""
    parsed = urllib.parse.urlparse(url.strip()) if isinstance(url, str) else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"reader server URL must look like http://HOST:PORT/v1, got {url!r}")
    return url.strip().rstrip("/")


def parse_completion(body: dict[str, Any]) -> tuple[str, list[float]]:
    """(text, token log-probs) of an OpenAI chat completion; log-probs are [] when the server sent none."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError) as error:
        raise ServerError(f"the reader server's reply is not a chat completion (no choices[0].message.content): "
                          f"{json.dumps(body)[:300]}") from error
    tokens = ((choice.get("logprobs") or {}).get("content") or []) if isinstance(choice, dict) else []
    logprobs = []
    for token in tokens:
        value = token.get("logprob") if isinstance(token, dict) else None
        if isinstance(value, (int, float)):
            logprobs.append(float(value) if math.isfinite(value) else -1e4)
    return text.strip(), logprobs


class OpenAIReader:
    """Reads through `POST {server_url}/chat/completions`. Thread-safe: each call is its own request, and the
    server batches concurrent ones."""

    def __init__(self, config: ReaderConfig) -> None:
        if not config.server_url:
            raise InputError("OpenAIReader needs ReaderConfig.server_url")
        self.config = config
        self.base_url = check_server_url(config.server_url)
        self.model = config.server_model
        # Cleared when the server refuses `logprobs` (llama-cpp-python without logits_all): answers then come
        # without them, and the confidence rule counts the certainty as unknown.
        self.logprobs = True

    def warm_up(self) -> None:
        models = [m.get("id") for m in self._request("GET", "/models").get("data", []) if isinstance(m, dict)]
        if self.model is None:
            if len(models) != 1:
                raise ModelLoadError(f"the reader server at {self.base_url} serves {len(models)} models "
                                     f"({', '.join(map(str, models)) or 'none listed'}); name one with reader_server_model")
            self.model = models[0]
        elif models and self.model not in models:
            raise ModelLoadError(f"the reader server at {self.base_url} does not serve {self.model!r}; "
                                 f"it serves: {', '.join(map(str, models))}")

    def read(self, question: str, evidence: Sequence[Evidence], *, instruction: str | None = None,
             max_new_tokens: int | None = None) -> ReaderOutput:
        if self.model is None:
            self.warm_up()
        evidence = assign_labels(evidence)
        messages = build_messages(question, evidence, instruction=instruction,
                                  max_evidence_chars=self.config.max_evidence_chars)
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0.0,
                                   "max_tokens": max_new_tokens or self.config.max_new_tokens}
        body = None
        if self.logprobs:
            try:
                body = self._request("POST", "/chat/completions", {**payload, "logprobs": True, "top_logprobs": 1})
            except ServerError as error:
                if "logprob" not in error.detail.lower():
                    raise
                log.warning("the reader server at %s refuses log-probabilities (%s); reading without them, so "
                            "confidence rests on the evidence alone", self.base_url, error.detail[:120])
                self.logprobs = False
        if body is None:
            body = self._request("POST", "/chat/completions", payload)
        text, logprobs = parse_completion(body)
        return make_output(text, logprobs, evidence)

    def score_options(self, question: str, evidence: Sequence[Evidence], options: Sequence[str], *,
                      instruction: str | None = None) -> list[float]:
        raise InputError("scoring answer options needs the model's prompt log-likelihoods, which a chat server does "
                         "not give; use a local reader (no reader_server_url) for kg_reader_choice and build-prefs")

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.config.server_api_key_env, "") if self.config.server_api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(payload).encode("utf-8") if payload is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.config.server_timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            raise ServerError(f"the reader server at {self.base_url} answered {method} {path} with HTTP "
                              f"{error.code}: {detail}", detail=detail) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ModelLoadError(f"cannot reach the reader server at {self.base_url} ({reason}); start it or fix "
                                 "reader_server_url") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise ServerError(f"the reader server at {self.base_url} sent non-JSON for {method} {path}: "
                              f"{raw[:200]!r}") from None
        if not isinstance(body, dict):
            raise ServerError(f"the reader server at {self.base_url} sent {type(body).__name__} for {method} {path}")
        return body
