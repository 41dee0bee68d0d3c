"""Jinja extension of the template (named in cookiecutter.json `_extensions`).

It gives every rendered file, and the hooks, the same things the hooks' own code uses:
- the filter `answers`: `{% set a = cookiecutter | answers %}` is the normalized, validated model of
  hooks/answers.py, so a file never reads a raw answer (padding, case, strings for numbers);
- one filter per output format (hooks/formats.py): `toml`, `py`, `json_str`, `md`, `md_code`;
- the global `template_hooks_dir`, the absolute path of hooks/, which the hooks put on sys.path (cookiecutter
  runs a rendered copy of each hook from a temporary file, so a hook cannot find its folder by itself).

Keep this module small and stable: cruft renders two commits of one checkout in one process, and Python
imports this module once, so the newer render may run the older copy of it. That is why the model and the
formats are read from disk every time an environment is created, not imported.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from jinja2 import Environment
from jinja2.ext import Extension

HOOKS_DIR = Path(__file__).resolve().parent / "hooks"


def _load_fresh(name: str) -> ModuleType:
    """hooks/<name>.py as it is on disk now, under a private module name."""
    module_name = f"_iot_template_{name}"
    spec = importlib.util.spec_from_file_location(module_name, HOOKS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class body runs.
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class AnswersExtension(Extension):
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        answers = _load_fresh("answers")
        formats = _load_fresh("formats")
        environment.filters["answers"] = answers.build_answers
        environment.filters.update(formats.FILTERS)
        environment.globals["template_hooks_dir"] = str(HOOKS_DIR)
