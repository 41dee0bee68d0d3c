"""Remove what an answer turned off, so the generated project has no dead files or settings."""

from __future__ import annotations

import re
from pathlib import Path

from answers import Answers

_FLOWER_LINE = re.compile(r"^\s*#?\s*FLOWER_[A-Z_]*=|^flower[=<>~ ]", re.IGNORECASE)


def _drop_lines(path: Path, pattern: re.Pattern[str]) -> None:
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not pattern.search(line)]
    if kept != lines:
        path.write_text("".join(kept), encoding="utf-8")


def prune(project: Path, answers: Answers) -> None:
    if not answers.use_flower:
        (project / "compose/django/start-flower.sh").unlink(missing_ok=True)
        _drop_lines(project / ".env.example", _FLOWER_LINE)
        _drop_lines(project / "requirements.txt", _FLOWER_LINE)
