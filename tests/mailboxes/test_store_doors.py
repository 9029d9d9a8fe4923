"""The front ends reach the store's models only through its selectors and services.

No module of protocols/ or webmail/ may query a mailboxes model itself: a name imported
from mailboxes.models may be a type, a constant or a stub row to hand a service, never the
start of a query through its manager. (import-linter's no-models-in-front-ends contract,
run by .ci/run, keeps the imports themselves out; this test holds the modules it still lets
import mailboxes.models for types and constants.)
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRONT_ENDS = ("protocols", "webmail")
MANAGERS = {"objects", "_default_manager", "_base_manager"}


def _model_names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Names bound to mailboxes.models' members, and names bound to the module itself."""
    members: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.module == "mailboxes.models":
                members.update(alias.asname or alias.name for alias in node.names)
            elif node.module == "mailboxes":
                modules.update(
                    alias.asname or alias.name for alias in node.names if alias.name == "models"
                )
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "mailboxes.models":
                    modules.add(alias.asname or "mailboxes")
    return members, modules


def _queries(path: Path, root: Path = REPO) -> list[str]:
    """`file:line Name.objects` for each manager of a mailboxes model the module uses."""
    tree = ast.parse(path.read_text(), str(path))
    members, modules = _model_names(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr in MANAGERS):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in members:
            found.append(f"{path.relative_to(root)}:{node.lineno} {owner.id}.{node.attr}")
        elif isinstance(owner, ast.Attribute) and ast.unparse(owner).rsplit(".", 1)[0] in {
            *modules,
            *(f"{m}.models" for m in modules),
        }:
            found.append(f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)}")
    return found


def front_end_modules() -> list[Path]:
    return sorted(
        path
        for part in FRONT_ENDS
        for path in (REPO / part).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_no_front_end_queries_a_mailboxes_model():
    found = [query for path in front_end_modules() for query in _queries(path)]
    assert found == [], "query through selectors/services instead:\n" + "\n".join(found)


def test_the_check_sees_a_query(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from mailboxes.models import Message as M\n"
        "from mailboxes import models\n"
        "def f():\n"
        "    from mailboxes.models import Expunged, Folder\n"
        "    Folder(pk=1)\n"
        "    Expunged.objects.filter(uid=1)\n"
        "    models.Folder._default_manager.all()\n"
        "    return M.objects.count()\n"
    )
    found = sorted(_queries(sample, tmp_path))
    assert found == [
        "sample.py:6 Expunged.objects",
        "sample.py:7 models.Folder._default_manager",
        "sample.py:8 M.objects",
    ]
