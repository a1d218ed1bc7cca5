"""The package's shape: no import cycles, Ray only where synthesis talks to it, classifiers below both stages and
synthesis apart from evaluation, modules and functions one can read.

The shape checks read every module, and every test file names the modules it guards in the last line of its
docstring; of behaviour, this file checks only the train command's help.

Guards: gen_aug/cli.py
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gen_aug"
TESTS = Path(__file__).resolve().parent
RAY_MODULES = {"gen_aug.synthesis.session", "gen_aug.synthesis.scheduler", "gen_aug.synthesis.worker"}
MAX_MODULE_LINES = 320  # "about 300": a file read in one sitting
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
NOT_GUARDED = {"__init__.py", "__main__.py"}  # a package's imports and `python -m`: no module of their own to guard


def imported(path: Path) -> set[str]:
    """Every module an import statement in the file names, at any depth (imports inside functions count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def internal_graph() -> dict[str, set[str]]:
    return {name: {m for m in imported(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}  # visiting or done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "visiting"
        stack.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == "visiting":
                return stack[stack.index(other):] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_itself_through_others():
    assert find_cycle(internal_graph()) is None


def test_only_the_synthesis_session_scheduler_and_worker_import_ray():
    users = {name for name, path in MODULES.items() if any(m == "ray" or m.startswith("ray.") for m in imported(path))}
    assert users <= RAY_MODULES, sorted(users - RAY_MODULES)


def test_synthesis_and_the_classifiers_import_nothing_of_evaluation():
    # The judge of a filter lives in classifiers/, below both stages: a synthesis never waits on evaluation's code.
    crossing = {name: sorted(m for m in deps if m.startswith("gen_aug.evaluation"))
                for name, deps in internal_graph().items()
                if name.startswith(("gen_aug.synthesis", "gen_aug.classifiers"))}
    assert not {name: found for name, found in crossing.items() if found}
    below = {name: sorted(m for m in deps if m.startswith(("gen_aug.synthesis", "gen_aug.evaluation")))
             for name, deps in internal_graph().items() if name.startswith("gen_aug.classifiers")}
    assert not {name: found for name, found in below.items() if found}


def test_the_stages_meet_only_below_them_in_output_and_classifiers():
    # Evaluation reads outputs through gen_aug.output, never through the synthesis job's modules; the output
    # library imports neither stage, so a user's reader never loads Ray or the evaluation.
    graph = internal_graph()
    crossing = {name: sorted(m for m in deps if m.startswith("gen_aug.synthesis"))
                for name, deps in graph.items() if name.startswith("gen_aug.evaluation")}
    assert not {name: found for name, found in crossing.items() if found}
    below = {name: sorted(m for m in deps if m.startswith(("gen_aug.synthesis", "gen_aug.evaluation")))
             for name, deps in graph.items() if name.startswith("gen_aug.output")}
    assert not {name: found for name, found in below.items() if found}


def test_no_module_outside_models_imports_a_family_module():
    families = {f"gen_aug.models.{family}" for family in ("cgan", "cvae", "cdm")}
    outside = {name: sorted(deps & families) for name, deps in internal_graph().items()
               if not name.startswith("gen_aug.models")}
    assert not {name: found for name, found in outside.items() if found}


def test_modules_and_functions_are_short_enough_to_read():
    long_modules = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    long_functions = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{name}.{node.name}"] = length
    assert not long_modules, long_modules
    assert not long_functions, long_functions


def test_train_help_names_every_model_family():
    from click.testing import CliRunner

    from gen_aug.cli import main
    from gen_aug.models import MODELS

    text = CliRunner().invoke(main, ["train", "--help"]).output
    assert MODELS and all(family in text for family in MODELS), (sorted(MODELS), text)


def guarded(test_file: Path) -> list[str]:
    """The paths after `Guards:` in a test file's docstring, continuation lines included; [] without that line."""
    lines = (ast.get_docstring(ast.parse(test_file.read_text())) or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Guards:")), None)
    if start is None:
        return []
    listed = " ".join([lines[start].removeprefix("Guards:"), *lines[start + 1:]])
    return [path.strip() for path in listed.split(",") if path.strip()]


def test_every_module_is_guarded_by_a_test_file():
    files = {path.relative_to(PACKAGE.parent).as_posix() for path in MODULES.values()}
    listed = {test_file.name: guarded(test_file) for test_file in sorted(TESTS.glob("test_*.py"))}
    without = [name for name, paths in listed.items() if not paths]
    unknown = [f"{name}: {path}" for name, paths in listed.items() for path in paths if path not in files]
    named = {path for paths in listed.values() for path in paths}
    unguarded = sorted(path for path in files if Path(path).name not in NOT_GUARDED and path not in named)
    assert not without, f"test files without a Guards: line ending their docstring: {without}"
    assert not unknown, f"Guards: paths that are no module under gen_aug/: {unknown}"
    assert not unguarded, f"modules that no test file's Guards: line names: {unguarded}"


def test_the_command_bounds_how_long_waiting_openmp_threads_spin_unless_the_user_says_otherwise():
    import os
    import subprocess
    import sys

    code = "import os, gen_aug.cli; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    env = {key: value for key, value in os.environ.items() if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}

    def seen(**extra):
        return subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True).stdout

    assert seen() == "20000 None\n"
    assert seen(GOMP_SPINCOUNT="5") == "5 None\n"
    assert seen(OMP_WAIT_POLICY="ACTIVE") == "None ACTIVE\n"
