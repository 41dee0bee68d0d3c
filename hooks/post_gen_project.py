"""Derive every structured config from the answers, prune what is turned off, write .env, say what next.

Runs with the generated project as its working directory.
"""

import json
import sys
from pathlib import Path

# The whole answer set, rendered by cookiecutter as a JSON string literal (safe whatever the answers hold).
CONTEXT = json.loads({{cookiecutter | jsonify | jsonify}})  # noqa: F821


# The template's hooks/ folder, from the template's Jinja extension (local_extensions.py): cookiecutter runs a
# rendered copy of this file from a temporary directory, and cruft gives no template path in the context.
HOOKS_DIR = json.loads({{template_hooks_dir | tojson | tojson}})  # noqa: F821

sys.dont_write_bytecode = True  # keep the template checkout free of __pycache__
sys.path.insert(0, HOOKS_DIR)

from answers import AnswerError, build_answers  # noqa: E402
from generate_files import write_derived_files  # noqa: E402
from prune import prune  # noqa: E402
from write_env import write_env  # noqa: E402


def next_steps(slug: str) -> str:
    return (
        f"\nGenerated {slug}/ with fresh secrets in {slug}/.env. Next:\n"
        f"  cd {slug}\n"
        "  make install      # native .venv with the pinned dependencies\n"
        "  make run_infra    # postgres, redis, emqx\n"
        "  make run_app      # django-app, MQTT handler/publisher, celery\n"
    )


def main() -> int:
    try:
        answers = build_answers(CONTEXT)
    except AnswerError as error:
        print(error, file=sys.stderr)
        return 1
    project = Path.cwd()
    prune(project, answers)
    write_derived_files(project, answers)
    write_env(project, answers.use_flower)
    # stderr: `cruft diff` renders the template with this hook and writes its diff to stdout.
    print(next_steps(answers.project_slug), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
