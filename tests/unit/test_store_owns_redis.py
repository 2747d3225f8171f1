"""`tradepit.store` owns the Redis schema: outside it, and the few modules that speak the wire
themselves, no module imports the Redis client libraries. A reader, a stage or a metric added
elsewhere asks the store; one that reaches for Redis directly fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import tradepit

SOURCE = Path(tradepit.__file__).parent
CLIENT_LIBRARIES = ("redis", "hiredis")

# Besides `tradepit.store.*` and `tradepit.cluster.*`, the modules that may import them, and why.
ALLOWED = {
    # The stage loop's wire layer: thin hiredis connections, cluster routing, the inboxes' reads.
    "tradepit.stage.resp": "packs and parses RESP itself, for the hot paths",
    "tradepit.stage.routing": "finds a key's node on a cluster",
    "tradepit.stage.loop": "retries its commits through the wire layer's failures",
    "tradepit.stage.inboxes": "reads each inbox through the wire layer",
    "tradepit.embedded": "starts and supervises the embedded Valkey server",
    "tradepit.client": "the command path: appends and replies on the wire layer",
}
ALLOWED_PACKAGES = ("tradepit.store", "tradepit.cluster")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(module: str) -> bool:
    if module in ALLOWED:
        return True
    return any(
        module == package or module.startswith(package + ".") for package in ALLOWED_PACKAGES
    )


def test_only_the_store_and_the_wire_layer_import_redis() -> None:
    offenders = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = _module_name(path)
        if _allowed(module):
            continue
        for name in _imported(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in CLIENT_LIBRARIES:
                offenders.append(f"{module} imports {name}")
    assert not offenders, "ask tradepit.store instead:\n" + "\n".join(offenders)


def test_every_module_allowed_still_exists() -> None:
    """An exception outlives its reason unnoticed unless it is pruned when its module goes."""
    modules = {_module_name(path) for path in SOURCE.rglob("*.py")}
    assert set(ALLOWED) <= modules
