"""Reject a bad answer with one clear line before anything is generated.

Exit status 1 makes cookiecutter stop and delete the half-created project folder.
"""

import json
import sys

# The whole answer set, rendered by cookiecutter as a JSON string literal (safe whatever the answers hold).
CONTEXT = json.loads({{cookiecutter | jsonify | jsonify}})  # noqa: F821


# The template's hooks/ folder, from the template's Jinja extension (local_extensions.py): cookiecutter runs a
# rendered copy of this file from a temporary directory, and cruft gives no template path in the context.
HOOKS_DIR = json.loads({{template_hooks_dir | tojson | tojson}})  # noqa: F821

sys.dont_write_bytecode = True  # keep the template checkout free of __pycache__
sys.path.insert(0, HOOKS_DIR)

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
