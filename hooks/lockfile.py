"""The generated project's hashed locks (requirements*.txt, written by `uv pip compile`): read them, check
them against the declared requirements (requirements*.in) and cut them down to what a bake declares.

The template locks every optional requirement at once. A bake whose answers drop one (flower, bcrypt) keeps
the packages still reachable from what its .in files declare, following the lock's own `# via` annotations,
so no orphan stays behind and every kept entry keeps its hashes untouched. The result is what `make lock` in
the bake would write (a template test compiles it again to prove it).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

_ANNOTATION_INDENT = "    "
# name[extras]==version, the version optional (an unpinned .in line) and followed by markers or `\`.
_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(?:==\s*(?P<version>[^\s;\\]+))?"
)


class LockError(Exception):
    """The declared requirements and the lock disagree: the template needs `make lock`."""


def canonical(name: str) -> str:
    """PEP 503 name: what uv writes, whatever spelling a .in file uses."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Entry:
    """One locked package: its requirement and --hash lines as written, and where it comes from."""

    name: str
    version: str
    lines: tuple[str, ...]
    via: tuple[str, ...]  # "-r requirements.in", "-c requirements.txt" or names of locked packages


@dataclass(frozen=True)
class Lock:
    header: tuple[str, ...]
    entries: tuple[Entry, ...]

    def versions(self) -> dict[str, set[str]]:
        """name -> locked versions (a universal lock may hold two, under exclusive markers)."""
        found: dict[str, set[str]] = {}
        for entry in self.entries:
            found.setdefault(entry.name, set()).add(entry.version)
        return found


def parse_lock(text: str) -> Lock:
    header: list[str] = []
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        else:
            header.append(line)
    return Lock(tuple(header), tuple(_entry(block) for block in blocks))


def _entry(block: list[str]) -> Entry:
    match = _REQUIREMENT.match(block[0])
    if not match or not match.group("version"):
        raise LockError(f"not a pinned lock entry: {block[0]!r}")
    lines = [line for line in block if not line.lstrip().startswith("#")]
    via: list[str] = []
    for line in block[len(lines) :]:
        comment = line.strip().removeprefix("#").strip()
        if comment.startswith("via"):
            comment = comment.removeprefix("via").strip()
        if comment:
            via.append(comment)
    return Entry(canonical(match.group("name")), match.group("version"), tuple(lines), tuple(via))


def render_lock(lock: Lock) -> str:
    out = list(lock.header)
    for entry in lock.entries:
        out.extend(entry.lines)
        if len(entry.via) == 1:
            out.append(f"{_ANNOTATION_INDENT}# via {entry.via[0]}")
        elif entry.via:
            out.append(f"{_ANNOTATION_INDENT}# via")
            out.extend(f"{_ANNOTATION_INDENT}#   {source}" for source in entry.via)
    return "\n".join(out) + "\n"


def declared(path: Path) -> dict[str, str | None]:
    """The requirements a .in file lists itself (not through -r): name -> pinned version, None if unpinned."""
    found: dict[str, str | None] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        match = _REQUIREMENT.match(line)
        if not match:
            raise LockError(f"{path.name}: cannot read the requirement {raw!r}")
        found[canonical(match.group("name"))] = match.group("version")
    return found


def _included(path: Path) -> list[Path]:
    """path and every .in file it pulls in with -r, depth first."""
    files = [path]
    for raw in path.read_text(encoding="utf-8").splitlines():
        parts = raw.split()
        if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
            files.extend(_included(path.parent / parts[1]))
    return files


def check_declared(lock: Lock, lock_name: str, source: Path) -> list[str]:
    """What the lock gets wrong about source (a .in file and what it includes): missing or other versions."""
    locked = lock.versions()
    problems = []
    for path in _included(source):
        for name, version in declared(path).items():
            if name not in locked:
                problems.append(f"{path.name} declares {name}, which {lock_name} lacks")
            elif version is not None and locked[name] != {version}:
                problems.append(
                    f"{path.name} pins {name}=={version}, {lock_name} has {', '.join(sorted(locked[name]))}"
                )
    return problems


def prune(lock: Lock, project: Path, constraints: dict[str, set[str]]) -> Lock:
    """The entries reachable from what the project's .in files declare, with their annotations to match.

    constraints: names locked by each constraint file (`-c requirements.txt`) after its own pruning.
    """
    declared_by_file: dict[str, set[str]] = {}

    def is_declared_in(source: str, name: str) -> bool:
        if source not in declared_by_file:
            declared_by_file[source] = set(declared(project / source))
        return name in declared_by_file[source]

    def source_holds(source: str, name: str) -> bool:
        kind, _, file = source.partition(" ")
        if kind == "-r":
            return is_declared_in(file, name)
        if kind == "-c":
            return name in constraints.get(file, {name})
        return False

    def keeps(source: str, name: str) -> bool:
        return source_holds(source, name) if source.startswith("-") else source in kept

    children: dict[str, list[str]] = {}
    for entry in lock.entries:
        for parent in entry.via:
            children.setdefault(parent, []).append(entry.name)
    # Roots: what a .in file still declares. Constraint files (-c) only annotate, they pull nothing in.
    roots = {e.name for e in lock.entries if any(s[:3] == "-r " and source_holds(s, e.name) for s in e.via)}
    kept = set(roots)
    queue = deque(roots)
    while queue:
        for child in children.get(queue.popleft(), []):
            if child not in kept:
                kept.add(child)
                queue.append(child)

    entries = tuple(
        replace(entry, via=tuple(s for s in entry.via if keeps(s, entry.name)))
        for entry in lock.entries
        if entry.name in kept
    )
    return Lock(lock.header, entries)


# Each lock with the .in file it is compiled from; requirements-dev.txt is compiled with requirements.txt as a
# constraint, so it comes second.
LOCKS = (("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt"))


def prune_project_locks(project: Path) -> None:
    """Cut every lock of a bake down to its (already answer-pruned) .in files; LockError if they disagree."""
    constraints: dict[str, set[str]] = {}
    for source, lock_name in LOCKS:
        lock_path = project / lock_name
        lock = prune(parse_lock(lock_path.read_text(encoding="utf-8")), project, constraints)
        problems = check_declared(lock, lock_name, project / source)
        if problems:
            raise LockError("; ".join(problems))
        lock_path.write_text(render_lock(lock), encoding="utf-8", newline="\n")
        constraints[lock_name] = set(lock.versions())
