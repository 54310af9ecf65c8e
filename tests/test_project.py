"""The project's own files: set-up, generated cells, stripped notebooks, dependency floors."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from hitchhiker import course

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_environment_yml_parses_and_installs_this_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert any(str(d).startswith("python") for d in deps) and "pip" in deps
    pip_entries = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    local = [e for e in pip_entries if ".[" in e]
    assert local, f"the pip section must install this package with extras; got {pip_entries}"
    spec = local[0].split()[-1].strip("\"'")
    assert "lab" in spec and "dev" in spec
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            spec,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "Would install hitchhiker" in out.stdout


def test_dependency_floors_sit_at_or_below_colab():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.10,<3.14"
    floors = {}
    for dep in meta["dependencies"]:
        m = re.match(r"([A-Za-z0-9_-]+)>=([0-9.]+)", dep)
        assert m, f"every runtime dependency needs a floor: {dep}"
        floors[m.group(1)] = tuple(int(x) for x in m.group(2).split("."))
    colab = {"torch": (2, 11), "numpy": (2, 1), "matplotlib": (3, 10), "ipywidgets": (7, 7, 1)}
    for name, ships in colab.items():
        assert floors[name] <= ships, f"{name} floor {floors[name]} above what Colab ships {ships}"
    assert any(d.startswith("ipywidgets") and "<9" in d for d in meta["dependencies"])
    extras = meta["optional-dependencies"]
    assert {"lab", "dev"} <= set(extras)


def test_readme_and_notebook_openings_are_generated_from_one_address():
    stale = course.sync(check=True)
    assert not stale, f"run `python -m hitchhiker.course --sync`; out of date: {stale}"
    readme = (ROOT / "README.md").read_text()
    for nb in course.NOTEBOOKS:
        assert nb.colab_url in readme
        book = json.loads(nb.path.read_text())
        setup = "".join(book["cells"][1]["source"])
        assert course.REPO_URL in setup and "google.colab" in setup
    # The address is typed in exactly one place of the package.
    hits = [p for p in (ROOT / "hitchhiker").rglob("*.py") if course.REPO_URL in p.read_text()]
    assert hits == [ROOT / "hitchhiker" / "course.py"]


def test_setup_cell_takes_its_source_as_a_parameter():
    # The Colab rehearsal runs this same cell on a local clone: nothing of the address remains.
    cell = course.setup_cell_source(source="file:///tmp/clone", home="/tmp/home/course")
    assert course.REPO_URL not in cell and "/content" not in cell
    assert '"git", "clone", "--depth", "1", "file:///tmp/clone", "/tmp/home/course"' in cell
    assert course.setup_cell_source() == course.setup_cell_source(
        course.REPO_URL, course.COLAB_HOME
    )
    assert (
        cell.replace("file:///tmp/clone", course.REPO_URL).replace(
            "/tmp/home/course", course.COLAB_HOME
        )
        == course.setup_cell_source()
    )


def test_colab_pins_match_what_colab_ships():
    # tests/colab/colab-pins.txt pins the lines this file's floors are checked against.
    pins = {}
    for line in (ROOT / "tests" / "colab" / "colab-pins.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip()] = tuple(int(x) for x in version.split("."))
    assert pins["numpy"][:2] == (2, 1) and pins["matplotlib"][:2] == (3, 10)
    assert pins["ipywidgets"] == (7, 7, 1) and pins["widgetsnbextension"][:2] == (3, 6)
    assert pins["notebook"][:2] == (6, 5)
    assert "torch" not in pins  # the machine's CPU build stands in for it (see the file)


def test_every_course_notebook_exists_and_every_notebook_is_in_the_course():
    assert sorted(nb.path for nb in course.NOTEBOOKS) == NOTEBOOKS


def test_committed_notebooks_are_stripped_of_outputs():
    assert NOTEBOOKS
    for path in NOTEBOOKS:
        book = json.loads(path.read_text())
        for cell in book["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs"), f"{path.name} carries outputs: run `make strip`"
                assert cell.get("execution_count") is None, f"{path.name} carries execution counts"


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "test:" in (ROOT / "Makefile").read_text()


def module_level_imports(path: Path, package: str) -> set[str]:
    """The hitchhiker modules a file imports when it is loaded (imports inside functions and
    classes, and under ``if TYPE_CHECKING:``, do not run then). ``from pkg import name`` counts as
    importing ``pkg.name`` when that is a module, else ``pkg`` (whose ``__init__`` defines name)."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PACKAGE_FILES}
    modules = {m.removesuffix(".__init__") for m in modules}
    found: set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    if full in modules:
                        found.add(full)
                    elif base in modules:
                        found.add(base)

    visit(ast.parse(path.read_text()).body)
    return found


PACKAGE_FILES = sorted((ROOT / "hitchhiker").rglob("*.py"))


def test_no_import_cycle_among_hitchhiker_modules():
    graph = {}
    for path in PACKAGE_FILES:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        graph[name] = module_level_imports(path, package) - {name}
    assert "hitchhiker.masks.mae_recipe" in graph and graph["hitchhiker.masks.mae_recipe"]
    cycles, state = [], {}  # state: 1 on the current path, 2 done

    def walk(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
