"""The architecture as a test: imports only point down the layers (README, "How it works")."""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

# lower number = lower layer; a package may import its own modules and anything strictly lower
RANK = {
    "core": 0, "config": 0, "log": 0, "console": 0,
    "store": 1, "data": 1, "exchange": 1,
    "book": 2,
    "signals": 3, "risk": 3, "execution": 3,
    "strategies": 4,
    "engine": 5,
    "research": 6, "emulator": 6, "fast": 6, "ops": 6,
    "tune": 7,  # sweeps replay on the fast path (bot.fast)
    "cli": 8, "__main__": 9,
}


def package_of(path: Path) -> str:
    rel = path.relative_to(BOT)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def bot_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bot."):
            found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("bot.")]
    return found


def test_every_package_has_a_layer():
    packages = {package_of(p) for p in BOT.rglob("*.py")} - {"__init__"}
    assert packages <= set(RANK), f"give these a layer in RANK: {packages - set(RANK)}"


def test_imports_point_down_only():
    violations = []
    for path in sorted(BOT.rglob("*.py")):
        own = package_of(path)
        if own == "__init__":
            continue
        for line, target in bot_imports(path):
            if target != own and RANK[target] >= RANK[own]:
                violations.append(f"{path.relative_to(BOT.parent)}:{line}: {own} (layer {RANK[own]}) imports {target} (layer {RANK[target]})")
    assert not violations, "\n".join(violations)


# the operator surface (bot.ops) is a tool beside the product: the engine, and everything below
# it, reaches it only through bot.engine.observer and never imports a web server or Prometheus
WEB_LIBRARIES = ("aiohttp.web", "prometheus_client")


def test_trading_layers_import_no_web_server():
    violations = []
    for path in sorted(BOT.rglob("*.py")):
        own = package_of(path)
        if own == "__init__" or RANK.get(own, 99) > RANK["engine"]:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] + [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                if any(name == lib or name.startswith(lib + ".") for lib in WEB_LIBRARIES):
                    violations.append(f"{path.relative_to(BOT.parent)}:{node.lineno}: {own} imports {name} (only bot.ops and the emulator serve HTTP)")
    assert not violations, "\n".join(violations)
