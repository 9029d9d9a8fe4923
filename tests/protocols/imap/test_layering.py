"""The IMAP package's layering (issue 15): the command modules never import the session at
run time, and the session reaches the commands only through their dispatch tables."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "protocols" / "imap"


def runtime_imports(path: Path) -> set[str]:
    """Modules a file imports outside `if TYPE_CHECKING:` blocks (nested imports too)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", "") == "TYPE_CHECKING":
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                found.add(child.module)
                found.update(f"{child.module}.{alias.name}" for alias in child.names)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(tree)
    return found


def test_commands_never_import_the_session():
    for path in sorted((PACKAGE / "commands").glob("*.py")):
        assert "protocols.imap.session" not in runtime_imports(path), path.name


def test_session_reaches_commands_only_through_the_dispatch_tables():
    imported = {
        name
        for name in runtime_imports(PACKAGE / "session.py")
        if name.startswith("protocols.imap.commands")
    }
    assert imported <= {
        "protocols.imap.commands",
        "protocols.imap.commands.HANDLERS",
        "protocols.imap.commands.UPDATES",
    }


def test_leaf_modules_import_no_other_imap_module_but_responses():
    for name in ("errors.py", "flags.py", "worker.py"):
        imported = {n for n in runtime_imports(PACKAGE / name) if n.startswith("protocols.imap")}
        assert imported <= {"protocols.imap", "protocols.imap.responses"}, name
