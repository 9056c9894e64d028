"""README's layout table and ARCHITECTURE.md name paths of this tree: each must exist, so a
move that forgets the map fails here (``checks/messages``, ``sqs_processor.py`` at the top of
``ingestion_lambdas`` ... were named long after they moved)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: where a short path is looked up: the repository, then the package
BASES = (REPO_ROOT, REPO_ROOT / "leanops_dagster")
_CODE = re.compile(r"`([^`\s]+)`")
_FILE_SUFFIXES = (".py", ".md", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".tf", ".txt")


def _layout_table(text: str) -> str:
    """README's ``## Layout`` section."""
    start = text.index("## Layout")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _named_paths(text: str) -> list[str]:
    """Backquoted names that are paths: with a ``/`` or a file suffix (``a/b.py``,
    ``a/b/``, ``a/b.Name`` for a name in ``a/b.py``, ``tests/x.py::test_y``)."""
    found = []
    for token in _CODE.findall(text):
        token = token.split("::")[0].rstrip(",;:")
        if token.startswith(("$", "-", "http", "s3://", "file:")) or "=" in token:
            continue
        if "/" in token or token.endswith(_FILE_SUFFIXES):
            found.append(token)
    return found


def _exists(token: str) -> bool:
    candidates = [token]
    if not token.endswith("/") and not token.endswith(_FILE_SUFFIXES):
        head, _, _ = token.rpartition(".")  # ``pipeline/layer_run.run_layer``
        candidates += [f"{token}.py", f"{head}.py" if head else token]
    for base in BASES:
        for candidate in candidates:
            if "*" in candidate:
                if list(base.glob(candidate)):
                    return True
            elif (base / candidate.rstrip("/")).exists():
                return True
    if "/" not in token:  # a file named beside the paths before it: somewhere in the tree
        return any(p for p in REPO_ROOT.rglob(token) if ".venv" not in p.parts)
    return False


def test_the_modules_each_layout_row_names_are_in_its_folder():
    """A README layout row of a folder (``leanops_dagster/checks/``) names its modules bare
    (``accountability``): each is a module or package of that folder."""
    missing = []
    for line in _layout_table((REPO_ROOT / "README.md").read_text(encoding="utf-8")).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        folders = [t for t in _CODE.findall(cells[0]) if t.endswith("/")] if cells else []
        if len(cells) < 2 or len(folders) != 1:
            continue
        folder = REPO_ROOT / folders[0]
        for name in _CODE.findall(cells[1]):
            name = name.rstrip("/")
            if re.fullmatch(r"[a-z_]+", name) and not (
                (folder / f"{name}.py").exists() or (folder / name).is_dir()
            ):
                missing.append(f"{folders[0]}{name}")
    assert not missing, f"README's layout names modules that are not in their folder: {missing}"


@pytest.mark.parametrize("document", ["README.md", "ARCHITECTURE.md"])
def test_every_path_the_maps_name_exists(document):
    text = (REPO_ROOT / document).read_text(encoding="utf-8")
    if document == "README.md":
        text = _layout_table(text)
    named = _named_paths(text)
    assert named, f"no path found in {document}"
    missing = sorted({token for token in named if not _exists(token)})
    assert not missing, f"{document} names paths that do not exist: {missing}"
