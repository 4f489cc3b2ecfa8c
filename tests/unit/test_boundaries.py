"""The folders are runtime boundaries: the image carries training/ and container/ only.

training/ must import neither container/ nor launch/, and container/ must not import launch/
(neither is in the image), at module level or inside functions.

Inside training/ and inside launch/, modules do not import each other in a cycle. Two checks:

- Imports that run when a module is imported (module level, outside ``if TYPE_CHECKING:``) never
  form a cycle: such a cycle fails or not depending on which module is imported first.
- An import inside a function runs later, once both modules exist, and is the accepted way to
  break a cycle at run time; but it still ties two modules to each other (tracking.py and
  lineage.py were such a pair), so a cycle closed by one must be listed, with its reason, in
  ``ACCEPTED_LAZY_IMPORTS``.

Every module of the package directory is walked, so a new or split module is covered unasked.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"training": {"container", "launch", "bench", "tests"}, "container": {"launch", "bench", "tests"}}
ACYCLIC = ("training", "launch", "bench")
ACCEPTED_LAZY_IMPORTS: dict[tuple[str, str], str] = {}
"""(importing module, imported module) -> why the function-level import that closes a cycle stays."""


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_stays_inside_its_boundary(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    for path in files:
        crossing = _imported_packages(path) & FORBIDDEN[package]
        assert not crossing, f"{path.relative_to(ROOT)} imports {sorted(crossing)}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_unit_tests_never_reach_for_the_integration_stack():
    """Unit tests run without the stand-ins: no integration helper, no local services, hosts or demo."""
    stack = ("tests.integration", "tests.helpers", "launch.local")
    for path in sorted((ROOT / "tests" / "unit").glob("*.py")):
        reached = sorted(m for m in _imported_modules(path) if m.startswith(stack))
        assert not reached, f"{path.relative_to(ROOT)} imports {reached}"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_nodes(body: list[ast.stmt], lazy: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run on import (module level, module-level blocks, class bodies) and, if
    ``lazy``, those in functions too; never those under ``if TYPE_CHECKING:``, which does not run."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found += _import_nodes(node.orelse, lazy)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += _import_nodes(node.body, lazy) if lazy else []
        else:
            found += _import_nodes([child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt)],
                                   lazy)
    return found


def _import_edges(package_dir: Path, root: Path, lazy: bool = False) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports when it is imported (and in functions if ``lazy``)."""
    package = package_dir.name
    paths = {_module_name(path, root): path for path in sorted(package_dir.rglob("*.py"))}
    edges: dict[str, set[str]] = {}
    for module, path in paths.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(), filename=str(path)).body, lazy):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = module.split(".")[: len(module.split(".")) - node.level + is_package] if node.level else []
            source = ".".join([*base, node.module] if node.module else base)
            targets.add(source)
            targets.update(f"{source}.{alias.name}" for alias in node.names)  # from pkg import module
        edges[module] = {t for t in targets if t in paths and t != module and t.split(".")[0] == package}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that starts and ends at the same module, or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                return [*path[path.index(target):], module, target] if target in path else [module, target]
            if target not in state and (found := visit(target, [*path, module])):
                return found
        state[module] = "done"
        return None

    for module in sorted(edges):
        if module not in state and (found := visit(module, [])):
            return found
    return None


@pytest.mark.parametrize("package", ACYCLIC)
def test_no_import_cycle_at_import_time(package):
    edges = _import_edges(ROOT / package, ROOT)
    assert len(edges) > 1
    cycle = _cycle(edges)
    assert cycle is None, f"import cycle in {package}/: {' -> '.join(cycle)}; move the shared part to its own " \
                          "module, or import inside the function that needs it"


@pytest.mark.parametrize("package", ACYCLIC)
def test_no_cycle_closed_by_an_unlisted_lazy_import(package):
    edges = _import_edges(ROOT / package, ROOT, lazy=True)
    for importer, imported in ACCEPTED_LAZY_IMPORTS:
        edges.get(importer, set()).discard(imported)
    cycle = _cycle(edges)
    assert cycle is None, f"modules of {package}/ import each other: {' -> '.join(cycle)} (counting imports " \
                          "inside functions); move the shared part to its own module, or list the lazy import " \
                          "that closes the cycle in ACCEPTED_LAZY_IMPORTS with the reason"


ENVIRONMENT_WRITERS = {("training/tracking/mlflow_client.py", "setdefault"):
                       "sets MLflow's own HTTP retry settings, which MLflow reads from the environment"}
"""Places under training/ that touch ``os.environ`` on purpose, with why; none reads the job's contract."""


def test_training_reads_no_environment_variable():
    """container/env.py is the one reader of the job's environment: training/ gets typed values
    (``JobSpec``, ``TrackingSettings``, ``SignIn``), so no job setting can be read twice or differently."""
    found = []
    for path in sorted((ROOT / "training").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                found.append((str(path.relative_to(ROOT)), node.lineno))
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and \
                    any(alias.name in ("environ", "getenv") for alias in node.names):
                found.append((str(path.relative_to(ROOT)), node.lineno))
    allowed = [(file, line) for file, line in found if any(file == f for f, _ in ENVIRONMENT_WRITERS)]
    assert [place for place in found if place not in allowed] == []
    source = (ROOT / "training" / "tracking" / "mlflow_client.py").read_text()
    assert source.count("os.environ") == 1 and "os.environ.setdefault(" in source  # the one writer, nothing more


LEANS = {"launch.commands": "a subcommand borrows from no other (tune from train, deploy from register): what two "
                             "share lives in launch/console.py",
         "launch.local.demo": "a local run borrows nothing from the demo job: what local runs share lives in "
                              "launch/local/runs.py"}
LEANS_ALLOWED = {("launch/local/tuning.py", "launch.local.demo"): "local tuning tunes the demo job",
                 ("launch/commands/__init__.py", "launch.commands"): "the package names its subcommands"}
"""(importing file, imported module) -> why it may lean on that sibling."""


@pytest.mark.parametrize("target", sorted(LEANS))
def test_no_sideways_lean_between_sibling_modules(target):
    folder = ROOT / target.rsplit(".", 1)[0].replace(".", "/") if target.endswith(".demo") else \
        ROOT / target.replace(".", "/")
    leans = []
    for path in sorted(folder.glob("*.py")):
        relative, own = str(path.relative_to(ROOT)), ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for module in _imported_modules(path):
            hit = module == target or (module.startswith(target + ".") and not target.endswith(".demo"))
            if hit and module != own and (relative, module.rsplit(".", 1)[0]) not in LEANS_ALLOWED \
                    and (relative, module) not in LEANS_ALLOWED:
                leans.append(f"{relative} imports {module}")
    assert leans == [], f"{LEANS[target]}: {leans}"


LAYERS = ("training", "contract", "errors", "objectives", "collective", "read", "environment", "hyperparameters", "model",
          "evaluation", "train", "tracking", "scoring", "job")
"""training/'s rooms, lowest first, in the order of the data's path: the contract and errors every room
uses; the objective catalog; the collective; the read (Snowflake to spilled rows); the job variables a
user sets (environment.py); the hyperparameters
(which build the read's options); the model file; the evaluation's arithmetic; training; the run's
record; batch scoring (its own story, beside the training one); and job.py, the story that calls them. A room imports only rooms below it."""


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_training_rooms_import_only_rooms_below_them():
    """The sub-packages of training/ (and its top modules) form layers: no import, at module level or in a
    function, runs back up, so no two rooms lean on each other."""
    rooms = {_room(m) for m in _import_edges(ROOT / "training", ROOT)}
    assert rooms == set(LAYERS), f"a room of training/ is missing from LAYERS, or gone: {sorted(rooms ^ set(LAYERS))}"
    upward = sorted(f"{importer} imports {imported}"
                    for importer, targets in _import_edges(ROOT / "training", ROOT, lazy=True).items()
                    for imported in targets
                    if LAYERS.index(_room(imported)) > LAYERS.index(_room(importer)))
    assert upward == [], f"imports that run back up training/'s layers ({' < '.join(LAYERS)}): {upward}"


@pytest.mark.parametrize("package", ["container", "launch", "bench"])
def test_the_shell_and_the_laptop_use_trainings_public_names_only(package):
    """container/, launch/ and bench/ import training's public names (no ``_name``, no private module), so a
    room can rearrange its insides without breaking them."""
    private = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("training"):
                names = [*node.module.split("."), *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [part for alias in node.names if alias.name.startswith("training")
                         for part in alias.name.split(".")]
            else:
                continue
            private += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                        if name.startswith("_") and name != "__version__"]
    assert private == []
