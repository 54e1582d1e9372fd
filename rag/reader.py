"""The reader: a small chat LLM that answers from labelled evidence, with per-token log-probabilities.

Log-probabilities are the confidence signal (MODELS.md: the lowest token log-prob separated answerable from
unanswerable questions in a probe), so generation is greedy and returns them. torch and transformers are
imported inside methods only: importing this module must stay cheap.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import InputError
from rag.models import DEFAULT_READER, resolve_model
from rag.prompt import DEFAULT_MAX_EVIDENCE_CHARS, assign_labels, build_messages
from rag.types import Evidence

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class ReaderConfig:
    model: str = DEFAULT_READER
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 24
    max_evidence_chars: int = DEFAULT_MAX_EVIDENCE_CHARS
    cache_dir: str | None = None
    # A LoRA adapter folder from `python -m rag.train_reader train` (merged into the model at load); None = base.
    adapter: str | None = None
    # An OpenAI-compatible chat server (e.g. http://localhost:8000/v1) to read with instead of a local model
    # (rag.server_reader); `model` and `device` are then unused. server_model None = the one model it serves.
    server_url: str | None = None
    server_model: str | None = None
    server_api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key; the key itself is never stored
    server_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.adapter is not None and (not isinstance(self.adapter, str) or not self.adapter.strip()):
            raise InputError(f"ReaderConfig.adapter must be a folder path or None, got {self.adapter!r}")
        if self.server_url is not None:
            from rag.server_reader import check_server_url

            check_server_url(self.server_url)
            if self.adapter is not None:
                raise InputError("a LoRA adapter applies to a local reader, not to a reader server (server_url)")
        if not isinstance(self.server_timeout_s, (int, float)) or not self.server_timeout_s > 0:
            raise InputError(f"ReaderConfig.server_timeout_s must be > 0, got {self.server_timeout_s!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError(f"ReaderConfig.model must be a packaged name or a path, got {self.model!r}")
        device = self.device
        device_ok = isinstance(device, str) and (device in ("auto", "cpu", "cuda") or device.startswith("cuda:"))
        if not device_ok:
            raise InputError(f"ReaderConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise InputError(f"ReaderConfig.dtype must be auto/float32/bfloat16/float16, got {self.dtype!r}")
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= 1024:
            raise InputError(f"ReaderConfig.max_new_tokens must be in [1, 1024], got {self.max_new_tokens!r}")
        if not isinstance(self.max_evidence_chars, int) or self.max_evidence_chars < 100:
            raise InputError(f"ReaderConfig.max_evidence_chars must be at least 100, got {self.max_evidence_chars!r}")


@dataclass(frozen=True)
class ReaderOutput:
    text: str  # the answer without citation markers, trimmed
    raw_text: str  # what the model generated (decoded, without the stop token)
    cited_labels: tuple[str, ...]
    token_logprobs: tuple[float, ...]  # one per generated token, stop token excluded
    refused: bool

    @property
    def min_logprob(self) -> float:
        return min(self.token_logprobs) if self.token_logprobs else 0.0

    @property
    def mean_logprob(self) -> float:
        return sum(self.token_logprobs) / len(self.token_logprobs) if self.token_logprobs else 0.0


class Reader(Protocol):
    def read(self, question: str, evidence: Sequence[Evidence], *, instruction: str | None = None) -> ReaderOutput:
        ...


# ---- answer parsing (pure) -----------------------------------------------------------------------------

# "[P1]", "[P1, T2]", "[P1][T2]", "(P1)" and a bare "P1" at the end ("Paris P1").
_BRACKET = re.compile(r"[\[(]\s*((?:[PT]\d+)(?:\s*[,;&]\s*(?:and\s+)?[PT]\d+|\s+and\s+[PT]\d+)*)\s*[\])]")
_LABEL = re.compile(r"\b([PT]\d+)\b")
_TRAILING_BARE = re.compile(r"(?:\s*[,;]?\s*\b[PT]\d+\b)+\s*\.?\s*$")
_PREFIX = re.compile(r"^\s*(?:final\s+)?answer\s*[:\-]\s*", re.IGNORECASE)
_SOURCES_TAIL = re.compile(r"\s*\(?\b(?:sources?|evidence|citations?)\s*:.*$", re.IGNORECASE)
_TRIM = " \t\n\"'`*.,;:!?-–—"
_REFUSAL_START = re.compile(
    r"^(?:i\s+(?:do\s*n['o]?t|don't|dont)\s+know|i\s+am\s+not\s+sure|i'm\s+not\s+sure|i\s+cannot|i\s+can't"
    r"|i\s+can\s+not|cannot\s+(?:be\s+)?(?:answer|determine)|unable\s+to|no\s+answer|sorry)",
    re.IGNORECASE,
)
_REFUSAL_WHOLE = re.compile(r"^(?:unknown|not known|none|n/?a|no idea|not available)$", re.IGNORECASE)
_REFUSAL_ANY = re.compile(
    r"not\s+(?:in|mentioned\s+in|found\s+in|provided\s+in|given\s+in|stated\s+in)\s+"
    r"the\s+(?:evidence|context|text|passages?)"
    r"|(?:does|do)\s*(?:n't|\s+not)\s+(?:contain|provide|mention|say|specify)"
    r"|no\s+(?:information|mention|evidence)|not\s+enough\s+information|cannot\s+be\s+determined|is\s+not\s+specified",
    re.IGNORECASE,
)


def _dedupe(labels: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(labels))


def parse_answer(raw: str) -> tuple[str, tuple[str, ...], bool]:
    """(answer text without citations, cited labels in order, refused?) from a model's raw answer."""
    lines = [line for line in raw.replace("\u2019", "'").splitlines() if line.strip()]
    # Labels anywhere count as citations; only the first line is the answer (later lines are chatter).
    labels: list[str] = []
    for match in _BRACKET.finditer(raw):
        labels.extend(_LABEL.findall(match.group(1)))
    first = lines[0] if lines else ""
    text = _BRACKET.sub(" ", first)
    bare = _TRAILING_BARE.search(text)
    if bare and bare.start() > 0:
        labels.extend(_LABEL.findall(bare.group(0)))
        text = text[: bare.start()]
    text = _SOURCES_TAIL.sub("", _PREFIX.sub("", text))
    text = re.sub(r"\s+", " ", text).strip(_TRIM)
    wrapped = re.fullmatch(r"\[([^\[\]]+)\]", text)
    if wrapped:  # "[Paris]": small models sometimes bracket the answer itself
        text = wrapped.group(1).strip(_TRIM)
    lowered = text.lower()
    refused = bool(_REFUSAL_START.match(lowered) or _REFUSAL_WHOLE.match(lowered) or _REFUSAL_ANY.search(lowered))
    if not text and not labels:
        refused = True  # an empty answer says nothing
    return text, _dedupe(labels), refused


def _normalise(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def attribute(answer: str, evidence: Sequence[Evidence]) -> tuple[str, ...]:
    """Labels of the evidence whose text contains the answer (word-normalised): a fallback citation."""
    needle = _normalise(answer)
    if not needle:
        return ()
    return _dedupe([e.label for e in evidence if e.label and f" {needle} " in f" {_normalise(e.text)} "])


def make_output(raw: str, token_logprobs: Sequence[float], evidence: Sequence[Evidence] = ()) -> ReaderOutput:
    """Parse a raw answer; when the model cited nothing, cite the (labelled) evidence that contains it."""
    text, labels, refused = parse_answer(raw)
    if not labels and not refused:
        labels = attribute(text, evidence)
    return ReaderOutput(
        text=text,
        raw_text=raw,
        cited_labels=labels,
        token_logprobs=tuple(float(x) for x in token_logprobs),
        refused=refused,
    )


# ---- transformers backend ------------------------------------------------------------------------------


class TransformersReader:
    """Greedy chat-template reader on transformers. Cheap to construct; `warm_up()` loads the model."""

    def __init__(self, config: ReaderConfig | None = None) -> None:
        self.config = config or ReaderConfig()
        self._model: PreTrainedModel | None = None
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._stop_ids: list[int] = []
        self._load_lock = threading.Lock()
        # One generate/forward at a time: the model is shared (e.g. st.cache_resource) and torch already
        # uses every core for a single request.
        self._run_lock = threading.Lock()

    def validate(self) -> None:
        """Fail fast on an unknown model name or path, without loading anything."""
        resolve_model(self.config.model)
        if self.config.adapter is not None:
            from rag.models import check_adapter_folder

            check_adapter_folder(self.config.adapter)

    def warm_up(self) -> None:
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            from rag.models import apply_adapter, check_adapter_folder, load_causal_lm

            if self.config.adapter is not None:
                check_adapter_folder(self.config.adapter)  # before the slow model load
            model, tokenizer = load_causal_lm(
                self.config.model, device=self.config.device, dtype=self.config.dtype, cache_dir=self.config.cache_dir
            )
            if self.config.adapter is not None:
                model = apply_adapter(model, self.config.adapter)
            stop_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
            for token in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>"):
                token_id = tokenizer.convert_tokens_to_ids(token)
                if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                    stop_ids.add(token_id)
            self._stop_ids = sorted(stop_ids)
            self._tokenizer = tokenizer
            self._model = model  # set last: it is the "loaded" flag read without the lock

    def _prompt_ids(self, question: str, evidence: Sequence[Evidence], instruction: str | None) -> list[int]:
        assert self._tokenizer is not None
        # Labels are fixed here so the fallback attribution sees the ones the prompt showed.
        messages = build_messages(
            question, evidence, instruction=instruction, max_evidence_chars=self.config.max_evidence_chars
        )
        rendered = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The template already holds the special tokens; adding BOS again would shift the model.
        return list(self._tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def read(
        self,
        question: str,
        evidence: Sequence[Evidence],
        *,
        instruction: str | None = None,
        max_new_tokens: int | None = None,
    ) -> ReaderOutput:
        """Greedy answer; `max_new_tokens` overrides the config's for one call (short cross-check reads)."""
        import torch

        self.warm_up()
        assert self._model is not None
        evidence = assign_labels(evidence)
        input_ids = torch.tensor([self._prompt_ids(question, evidence, instruction)], device=self._model.device)
        return self.generate(evidence, input_ids=input_ids, max_new_tokens=max_new_tokens)

    def generate(self, evidence: Sequence[Evidence], *, input_ids: Any = None, inputs_embeds: Any = None,
                 max_new_tokens: int | None = None) -> ReaderOutput:
        """Greedy generation from prompt token ids or prompt input embeddings (`rag.soft_prompt`), parsed
        against the labelled `evidence` the prompt showed."""
        import torch

        self.warm_up()
        assert self._model is not None and self._tokenizer is not None
        prompt = input_ids if input_ids is not None else inputs_embeds
        pad_id = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else self._stop_ids[0]
        with self._run_lock, torch.inference_mode():
            out = self._model.generate(
                input_ids=input_ids,
                inputs_embeds=inputs_embeds,
                attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device),
                max_new_tokens=max_new_tokens or self.config.max_new_tokens,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=None,
                eos_token_id=self._stop_ids,
                pad_token_id=pad_id,
                output_logits=True,
                output_scores=True,
                return_dict_in_generate=True,
            )
            # Raw logits (not processed scores) so the log-probs are the model's, whatever the processors do.
            steps = out.logits if getattr(out, "logits", None) else out.scores
            scores = self._model.compute_transition_scores(out.sequences, steps, normalize_logits=True)
        # With input_ids the sequences start with the prompt; with inputs_embeds they hold the new tokens only.
        new_ids = out.sequences[0, out.sequences.shape[1] - len(steps) :].tolist()
        logprobs = scores[0].float().tolist()
        kept_ids: list[int] = []
        kept_logprobs: list[float] = []
        for token_id, logprob in zip(new_ids, logprobs):
            if token_id in self._stop_ids:
                break
            kept_ids.append(token_id)
            kept_logprobs.append(logprob if math.isfinite(logprob) else -1e4)
        raw = self._tokenizer.decode(kept_ids, skip_special_tokens=True).strip()
        return make_output(raw, kept_logprobs, evidence)

    def score_options(
        self,
        question: str,
        evidence: Sequence[Evidence],
        options: Sequence[str],
        *,
        instruction: str | None = None,
    ) -> list[float]:
        """Mean log-likelihood of each option as the assistant's answer (higher = more likely)."""
        import copy

        import torch

        if isinstance(options, str) or not options:
            raise InputError(f"options must be a non-empty sequence of strings, got {options!r}")
        if any(not isinstance(o, str) or not o.strip() for o in options):
            raise InputError(f"every option must be a non-empty string, got {list(options)!r}")
        self.warm_up()
        assert self._model is not None and self._tokenizer is not None
        prompt_ids = self._prompt_ids(question, evidence, instruction)
        device = self._model.device
        results: list[float] = []
        with self._run_lock, torch.inference_mode():
            # The prompt is shared: encode it once and reuse its KV cache for every option.
            prompt_out = self._model(input_ids=torch.tensor([prompt_ids], device=device), use_cache=True)
            prompt_cache = getattr(prompt_out, "cache", None) or prompt_out.past_key_values
            first_logprobs = torch.log_softmax(prompt_out.logits[0, -1].float(), dim=-1)
            for option in options:
                option_ids = self._tokenizer(option.strip(), add_special_tokens=False)["input_ids"]
                total = float(first_logprobs[option_ids[0]])
                if len(option_ids) > 1:
                    # transformers 5.24 names it `cache` (past_key_values is deprecated); copy: it grows in place.
                    ids = torch.tensor([option_ids[:-1]], device=device)
                    out = self._model(input_ids=ids, cache=copy.deepcopy(prompt_cache), use_cache=True)
                    logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
                    targets = torch.tensor(option_ids[1:], device=device)
                    total += float(logprobs.gather(1, targets.unsqueeze(1)).sum())
                results.append(total / len(option_ids))
        return results

    def _loaded(self) -> tuple[Any, Any]:
        """(model, tokenizer) for callers that need them (e.g. training); loads on first use."""
        self.warm_up()
        return self._model, self._tokenizer
