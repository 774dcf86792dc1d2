"""Which model judges, and how: a suite's ``judge:`` section, overridden by ``--judge`` on the command line.

    judge:
      backend: openai                       # hf (default) | vllm | openai | a plugin's backend
      model: Qwen2.5-7B-Instruct            # hf/vllm: alias, folder or hub id; openai: the served name
      endpoint: http://127.0.0.1:8000/v1    # openai only
      api_key_env: JUDGE_API_KEY            # the NAME of the variable holding the key, never the key

Without a section the judge is the embedded SmolLM2-135M-Instruct on the hf backend:
enough to exercise the machinery (a smoke test), not a judge whose verdicts mean much.

Everything here is checked by :meth:`JudgeConfig.check` before any model loads:
an unknown backend, an ``openai`` judge without an endpoint, an API key variable
that is not set. Each is one :class:`JudgeError` line naming the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from evalkit._util import package_schema, validate_against
from evalkit.errors import BackendError, JudgeError

__all__ = ["DEFAULT_JUDGE_MODEL", "JudgeConfig", "parse_judge_spec"]

DEFAULT_JUDGE_MODEL = "smollm2-135m-instruct"
"""The smoke-level default: it runs everywhere, offline, and tests the judging machinery."""

ResponseFormat = Literal["json_schema", "json_object", "none"]


@dataclass(frozen=True)
class JudgeConfig:
    """A judge: any backend evalkit can run, with explicit decoding."""

    backend: str = "hf"
    """A registered backend (``hf``, ``vllm``, ``openai``, or a plugin's)."""
    model: str = DEFAULT_JUDGE_MODEL
    """hf/vllm: alias, local folder or hub id; openai: the served model name."""
    endpoint: str | None = None
    """openai: the server's base URL."""
    api_key_env: str | None = None
    """openai: the name of the environment variable holding the key."""
    max_new_tokens: int = 128
    """Longest reply; a reply cut short does not parse and is repaired once."""
    seed: int = 0
    """Sent with every request (the first sample is greedy, where the seed changes nothing)."""
    batch_size: int = 32
    """Prompts per generate call (a served backend sends them ``concurrency`` at a time)."""
    response_format: ResponseFormat = "json_schema"
    """Structured output asked of a served judge; replies are validated by evalkit whatever the server does."""
    sample_temperature: float = 0.7
    """Temperature of samples 2..k of a metric with ``samples: k``."""
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    dtype: str = "float32"
    labels: Path | None = None
    """Human labels for the agreement shown in the report (absolute; resolved against the suite's folder)."""
    where: str = "judge"
    """Where the settings came from, for error messages (``suite.yaml: judge``, ``--judge``)."""
    overridden: tuple[str, ...] = field(default=())
    """Fields set on the command line (named in errors as the option, not the suite field)."""

    @classmethod
    def from_suite(cls, section: dict[str, Any] | None, suite_dir: Path, where: str) -> JudgeConfig:
        """The judge a suite's ``judge:`` section describes (the default judge when there is none).

        Raises:
            SuiteError-like JudgeError: a field of the wrong type or an unknown field, naming it.
        """
        if section is None:
            return cls(where=where)
        validate_against(section, package_schema("judge.schema.json"), where, JudgeError)
        values = dict(section)
        if "timeout" in values:
            values["timeout_s"] = float(values.pop("timeout"))
        if "labels" in values:
            values["labels"] = (suite_dir / values["labels"]).resolve()
        return cls(**values, where=where)

    def with_overrides(self, spec: str | None = None, endpoint: str | None = None, api_key_env: str | None = None) -> JudgeConfig:
        """Command-line settings (``--judge BACKEND:MODEL``, ``--judge-endpoint``, ``--judge-api-key-env``) over the suite's.

        A different backend on the command line drops the suite's endpoint and key variable,
        which belonged to the suite's judge.
        """
        changes: dict[str, Any] = {}
        if spec is not None:
            backend, model = parse_judge_spec(spec)
            changes.update(backend=backend, model=model)
            if backend != self.backend:
                changes.update(endpoint=None, api_key_env=None)
        if endpoint is not None:
            changes["endpoint"] = endpoint
        if api_key_env is not None:
            changes["api_key_env"] = api_key_env
        if not changes:
            return self
        return replace(self, **changes, overridden=tuple(sorted(set(self.overridden) | set(changes))))

    def _name(self, attr: str) -> str:
        flags = {"backend": "--judge", "model": "--judge", "endpoint": "--judge-endpoint", "api_key_env": "--judge-api-key-env"}
        return flags[attr] if attr in self.overridden else f"{self.where}.{attr}"

    def check(self) -> None:
        """Everything that can be wrong before a judge model loads or a request is sent.

        Raises:
            JudgeError: unknown backend, an openai judge without an endpoint or with a malformed one,
                an endpoint given to a local judge, an API key variable that is not set.
        """
        from evalkit.models.base import backend_names

        known = backend_names()
        if self.backend not in known:
            raise JudgeError(f"{self._name('backend')}: unknown judge backend {self.backend!r}; known backends: {', '.join(known)}")
        served = self.backend == "openai"
        if served and not self.endpoint:
            raise JudgeError(f"{self._name('endpoint')}: an openai judge needs the server's base URL, e.g. http://127.0.0.1:8000/v1 "
                             f"(set endpoint in the suite's judge: section or pass --judge-endpoint)")
        if not served and (self.endpoint or self.api_key_env):
            what = "endpoint" if self.endpoint else "api_key_env"
            raise JudgeError(f"{self._name(what)}: only an openai judge takes an endpoint and an API key variable, "
                             f"not a {self.backend} judge; drop it or use backend openai")
        if served:
            from evalkit.models.openai import api_key_from_env, check_endpoint

            try:
                check_endpoint(self.endpoint or "")
                api_key_from_env(self.api_key_env)
            except BackendError as exc:
                field_ = "endpoint" if str(exc).startswith("--endpoint") else "api_key_env"
                message = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
                raise JudgeError(f"{self._name(field_)}: {message}") from None
        if self.labels is not None and not self.labels.is_file():
            raise JudgeError(f"{self.where}.labels: {self.labels} not found; give a CSV or JSONL file relative to the suite")

    def identity(self) -> dict[str, Any]:
        """What the manifest and the report say about the judge: backend, model, endpoint (never a key)."""
        out: dict[str, Any] = {"backend": self.backend, "model": self.model}
        if self.endpoint:
            out["endpoint"] = self.endpoint
        return out

    def params(self) -> dict[str, Any]:
        """The decoding and reliability settings every judge request is made with."""
        out: dict[str, Any] = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": self.max_new_tokens, "seed": self.seed,
                               "sample_temperature": self.sample_temperature}
        if self.backend == "openai":
            out.update(response_format=self.response_format, timeout_s=self.timeout_s, max_retries=self.max_retries,
                       concurrency=self.concurrency)
        else:
            out["dtype"] = self.dtype
        return out


def parse_judge_spec(spec: str) -> tuple[str, str]:
    """``BACKEND:MODEL`` (``hf:smollm2-135m-instruct``, ``openai:gpt-4o-mini``) → (backend, model).

    Raises:
        JudgeError: no colon, or an empty part.
    """
    backend, sep, model = spec.partition(":")
    if not sep or not backend or not model:
        raise JudgeError(f"--judge {spec!r}: give BACKEND:MODEL, e.g. hf:smollm2-135m-instruct or openai:gpt-4o-mini "
                         f"(with --judge-endpoint URL)")
    return backend, model
