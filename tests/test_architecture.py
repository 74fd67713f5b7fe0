"""Imports run one way (DESIGN.md §5): config -> layers -> models -> packing -> kernels ->
sampling -> command lines. Each module, imported alone, loads no module of a later tier; and
no function imports a module of a later tier (a cycle hidden from import time)."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pixelcnn

PACKAGE = Path(pixelcnn.__file__).parent
KERNELS = Path(pixelcnn.kernels.__file__).parent

TIERS = [   # a module may import its own tier and earlier ones
    {"config", "likelihood", "data", "images", "cli", "version", "distributed"},  # no models
    {"layers"},
    {"models"},
    {"packing", "checkpoint", "cache"},                                # the packed layout
    {"kernels"},
    {"sampling"},
    {"evaluate", "training", "train", "sample", "sample_cli", "__init__"},  # CLIs, the API
]


def tier(name: str) -> int:
    """Tier of a module name such as 'pixelcnn.sampling.cached' ('pixelcnn' itself: the API)."""
    parts = name.split(".")[1:] or ["__init__"]
    return next(t for t, members in enumerate(TIERS) if parts[0] in members)


def modules() -> dict:
    """{dotted name: file} of every module of the package, kernels included. (Found by path,
    not imported: importing pixelcnn.sample, the `-m` entry point, would bind that name.)"""
    found = {}
    for root, prefix in ((PACKAGE, "pixelcnn"), (KERNELS, "pixelcnn.kernels")):
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).with_suffix("").parts
            if root == PACKAGE and rel[0] == "kernels":
                continue
            rel = rel[:-1] if rel[-1] == "__init__" else rel
            found[".".join((prefix,) + rel)] = path
    return found


PROBE = """
import importlib, json, sys, types
package, names = sys.argv[1], json.loads(sys.argv[2])
import torch  # noqa: F401  (loaded once; only pixelcnn modules are re-imported)
loaded = {}
for name in names:
    for m in [m for m in sys.modules if m == "pixelcnn" or m.startswith("pixelcnn.")]:
        del sys.modules[m]
    stub = types.ModuleType("pixelcnn")        # the package without its __init__'s imports
    stub.__path__ = [package]
    sys.modules["pixelcnn"] = stub
    importlib.import_module(name)
    loaded[name] = sorted(m for m in sys.modules if m.startswith("pixelcnn."))
print(json.dumps(loaded))
"""


def test_each_module_alone_loads_no_later_tier():
    names = [n for n in modules() if n not in ("pixelcnn", "pixelcnn.sample")]
    done = subprocess.run([sys.executable, "-c", PROBE, str(PACKAGE), json.dumps(names)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout)
    bad = {name: [m for m in deps if tier(m) > tier(name)] for name, deps in loaded.items()}
    assert not {k: v for k, v in bad.items() if v}, bad
    assert "pixelcnn.sampling" not in loaded["pixelcnn.models"]


def test_no_function_imports_a_later_tier():
    """Function-level imports only load the same tier lazily (the Triton kernel modules)."""
    bad = []
    for name, path in modules().items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1] if node.level else []
                    target = ".".join(base + ([node.module] if node.module else []))
                elif isinstance(node, ast.Import):
                    target = node.names[0].name
                else:
                    continue
                if target.startswith("pixelcnn") and tier(target) > tier(name):
                    bad.append(f"{name}.{fn.name} imports {target}")
    assert not bad, bad
