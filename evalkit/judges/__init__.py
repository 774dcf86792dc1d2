"""LLM judges: any backend evalkit runs, asked for small schema-validated JSON verdicts.

    config.py     JudgeConfig: the suite's judge: section and --judge, checked before any model loads
    judge.py      Judge: the handle model-backed metrics receive (cache, batches, one repair turn, counts)
    parse.py      finding and validating the JSON of a reply; the repair turn; response_format
    prompts.py    the judge prompts, reply schemas and built-in rubrics
    stage.py      the run's judging step: bind the judge to the run, record it in the manifest
    agreement.py  agreement with human labels (accuracy, Cohen's κ, confusion) and `evalkit judge calibrate`

The judged metrics themselves are in :mod:`evalkit.metrics.judged`.
"""

from evalkit.judges.config import DEFAULT_JUDGE_MODEL, JudgeConfig, parse_judge_spec
from evalkit.judges.judge import CALL_ERROR, PARSE_FAILURE, Judge, JudgeReply, JudgeRequest, unbound_judge

__all__ = [
    "CALL_ERROR",
    "DEFAULT_JUDGE_MODEL",
    "PARSE_FAILURE",
    "Judge",
    "JudgeConfig",
    "JudgeReply",
    "JudgeRequest",
    "parse_judge_spec",
    "unbound_judge",
]
