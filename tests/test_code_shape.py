"""The shape the code keeps: small modules and functions, Keras internals reached in one module only, and no
branching on an adaptation method's name outside its module."""

import ast
from pathlib import Path

TLTF = Path(__file__).resolve().parents[1] / "tltf"
INTERNALS = TLTF / "_keras_internals.py"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


def _modules():
    return sorted(TLTF.rglob("*.py"))


def _tree(path: Path):
    return ast.parse(path.read_text())


def test_no_module_over_300_lines_and_no_function_over_50():
    long_modules = {str(p.relative_to(TLTF)): n for p in _modules()
                    if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    long_functions = {f"{p.relative_to(TLTF)}:{node.name}": node.end_lineno - node.lineno + 1
                      for p in _modules() for node in ast.walk(_tree(p))
                      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES}
    assert long_modules == {} and long_functions == {}


def _private_names_tltf_defines() -> set:
    """Underscore names tltf itself gives to attributes, methods and functions (its own, not Keras')."""
    names = set()
    for path in _modules():
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {name for name in names if name.startswith("_")}


def _private_reaches(path: Path, own: set) -> list[str]:
    """`keras.src` imports, and underscore attributes tltf does not define read off anything but self/cls."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras.src"):
            found.append(f"import from {node.module}")
        elif isinstance(node, ast.Import) and any(a.name.startswith("keras.src") for a in node.names):
            found.append("import keras.src")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
              and node.attr not in own and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(node.attr)
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr", "setattr")
              and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
              and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__")
              and str(node.args[1].value) not in own
              and not (isinstance(node.args[0], ast.Name) and node.args[0].id in ("self", "cls"))):
            found.append(str(node.args[1].value))
    return found


def test_keras_internals_are_reached_only_from_keras_internals():
    own = _private_names_tltf_defines()
    reaches = {str(p.relative_to(TLTF)): hits for p in _modules() if p != INTERNALS
               if (hits := _private_reaches(p, own))}
    assert reaches == {}
    assert _private_reaches(INTERNALS, own)  # the one module that does: the check can see a reach


def test_no_branch_on_the_adaptation_method_outside_its_registry():
    """`adaptation.method` is read only to look the method up (`methods.get(...)`) and to report its name."""
    methods = TLTF / "adapt" / "methods"
    branches = []
    for path in _modules():
        if methods in path.parents:
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Compare) and any(_is_adaptation_method(side)
                                                     for side in (node.left, *node.comparators)):
                branches.append(f"{path.relative_to(TLTF)}:{node.lineno}")
    assert branches == []


def _is_adaptation_method(node) -> bool:
    """`adaptation.method` or `<anything>.adaptation.method`."""
    if not (isinstance(node, ast.Attribute) and node.attr == "method"):
        return False
    owner = node.value
    return (isinstance(owner, ast.Name) and owner.id == "adaptation") or (
        isinstance(owner, ast.Attribute) and owner.attr == "adaptation")
