"""The package's layout: the stages (``prefdisco.stages``) sit above the libraries, every ``python -m`` a rule runs
names a module that exists, and every module in ``stages/`` is a stage some rule runs.

Imports are read with ``ast``, those inside functions included, relative ones resolved against the module's own
name, so a lazy ``from ..stages.cascade import x`` in a library counts like a top-level one.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from conftest import REPO
from prefdisco.families import FAMILY_NAMES, get_family

PACKAGE = REPO / "src" / "prefdisco"
STAGES = "prefdisco.stages"
PYTHON_M = re.compile(r"python -m ([A-Za-z_][\w.]*)")


def module_name(path: Path) -> str:
    """The dotted name of a module file under src/prefdisco (a package's __init__ is the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module ``source`` (the text of ``module``) imports, anywhere in it, as absolute dotted names.

    ``from a import b`` counts as importing both ``a`` and ``a.b`` (``b`` may be a submodule).
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def package_modules() -> list[tuple[str, set[str]]]:
    """(name, imported modules) of every module of the package."""
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        modules.append((name, imported_modules(path.read_text(), name, path.name == "__init__.py")))
    return modules


def is_stage_import(name: str) -> bool:
    return name == STAGES or name.startswith(STAGES + ".")


def stage_names() -> list[str]:
    return sorted(p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__")


def rule_commands() -> dict[str, list[str]]:
    """module -> the rule files whose shell commands run ``python -m <module>``."""
    commands: dict[str, list[str]] = {}
    for path in sorted((REPO / "rules").glob("*.smk")) + [REPO / "Snakefile"]:
        for module in PYTHON_M.findall(path.read_text()):
            commands.setdefault(module, []).append(path.name)
    return commands


def test_import_reader_resolves_relative_and_nested_imports():
    """The reader the layout tests rely on sees what they must catch: relative imports, and imports in functions."""
    source = ("from ..stages.cascade import final_records\n"
              "def f():\n"
              "    from .. import stages\n"
              "    import prefdisco.stages.summary as s\n"
              "from .io import read_json\n")
    found = imported_modules(source, "prefdisco.judging.tables")
    assert {"prefdisco.stages.cascade", "prefdisco.stages", "prefdisco.stages.summary", "prefdisco.judging.io",
            "prefdisco.stages.cascade.final_records"} <= found
    assert imported_modules("from . import records\n", "prefdisco.stages", is_package=True) == \
        {"prefdisco.stages", "prefdisco.stages.records"}


def test_no_module_outside_the_stages_imports_a_stage():
    offenders = {name: sorted(filter(is_stage_import, imports)) for name, imports in package_modules()
                 if not is_stage_import(name)}
    offenders = {name: imports for name, imports in offenders.items() if imports}
    assert not offenders, f"libraries import stages (move what they share into a library module): {offenders}"
    # The Snakefile's helpers (rules/common.smk) are Python too, and load in the scheduler, not in a job.
    for path in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        assert not re.search(r"^\s*(from|import)\s+prefdisco\.stages\b", path.read_text(), re.MULTILINE), path.name


def test_stages_do_not_import_one_another():
    offenders = {}
    for name, imports in package_modules():
        if name.startswith(STAGES + "."):
            others = sorted(i for i in imports if i.startswith(STAGES + ".") and i != name
                            and not i.startswith(name + "."))
            if others:
                offenders[name] = others
    assert not offenders, f"stages import other stages (move the shared piece into a library module): {offenders}"


def test_every_python_m_in_the_rules_names_a_module_that_exists():
    commands = rule_commands()
    assert len([m for m in commands if m.startswith("prefdisco.")]) >= 30  # the regex still finds the commands
    missing = {module: files for module, files in commands.items() if importlib.util.find_spec(module) is None}
    assert not missing, f"rules run modules that do not exist: {missing}"
    stale = {module: files for module, files in commands.items()
             if re.fullmatch(r"prefdisco\.[a-z_]+", module) and module != "prefdisco"}
    assert not stale, f"top-level stage entry points belong in prefdisco.stages: {stale}"


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_each_familys_train_and_evaluate_modules_exist(family):
    spec = get_family(family)
    for module in (spec.train_module, spec.evaluate_module):
        assert importlib.util.find_spec(module) is not None, f"family {family}: {module} does not exist"


def test_every_module_in_stages_is_an_entry_point_a_rule_runs():
    commands = rule_commands()
    for stage in stage_names():
        module = f"{STAGES}.{stage}"
        source = (PACKAGE / "stages" / f"{stage}.py").read_text()
        assert module in commands, f"{module} is in stages/ but no rule runs it: a library belongs beside stages/"
        assert re.search(r'^if __name__ == "__main__":', source, re.MULTILINE), f"{module} has no __main__ guard"
