"""Reject a bad answer with one clear line before anything is generated.

Exit status 1 makes cookiecutter stop and delete the half-created project folder.
"""

import json
import os
import sys
from pathlib import Path

# The whole answer set, rendered by cookiecutter as a JSON string literal (safe whatever the answers hold).
CONTEXT = json.loads({{cookiecutter | jsonify | jsonify}})  # noqa: F821


# Kept identical in both hooks: neither can import shared code before it has found the hooks folder.
def template_hooks_dir() -> Path:
    """The template's hooks/ folder: cookiecutter runs a rendered copy of this file from a temp dir."""
    repo = Path(CONTEXT["_repo_dir"])
    if repo.is_absolute():
        candidates = [repo]
    else:
        # cookiecutter runs hooks while its own working directory is the template (Linux exposes it),
        # and a relative template path was given relative to the shell's directory.
        candidates = [Path(f"/proc/{os.getppid()}/cwd"), Path(os.environ.get("PWD", os.getcwd())) / repo]
    for candidate in candidates:
        if (candidate / "hooks" / "answers.py").is_file():
            return (candidate / "hooks").resolve()
    sys.exit(f"Cannot find the template's hooks folder from {repo}; pass the full template path.")


sys.dont_write_bytecode = True  # keep the template checkout free of __pycache__
sys.path.insert(0, str(template_hooks_dir()))

from answers import AnswerError, build_answers  # noqa: E402


def main() -> int:
    try:
        build_answers(CONTEXT)
    except AnswerError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
