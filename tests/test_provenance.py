import ast
import functools
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import documented_folder_hash

from mathrecipes import provenance as P

# Modules that cannot change a result: they are deliberately in no fingerprint (the config
# schema reaches every job through its params instead; the planner runs no job).
# the workflow machinery (dagspeed.py: how Snakemake looks up script sources) changes no output
NOT_RESULT_AFFECTING = {"config", "runlog.py", "cli.py", "py.typed", "plan", "dagspeed.py"}


def _entries_claimed():
    claimed = set()
    for entries in (P.COMMON, *P.STAGE_MODULES.values()):
        for e in entries:
            claimed |= {str(f.relative_to(P.PACKAGE_DIR)) for f in P._files_of(e)}
    return claimed


def test_every_module_belongs_to_a_stage():
    modules = {
        str(p.relative_to(P.PACKAGE_DIR))
        for p in P.PACKAGE_DIR.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    unclaimed = {
        m for m in modules - _entries_claimed() if m.split("/")[0] not in NOT_RESULT_AFFECTING
    }
    assert not unclaimed, f"add these to provenance.STAGE_MODULES: {sorted(unclaimed)}"


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    copy = tmp_path / "mathrecipes"
    shutil.copytree(P.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(P, "PACKAGE_DIR", copy)
    return copy


def test_editing_one_module_changes_only_its_stages(package_copy):
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "grading" / "engine.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {"grade"}


def test_grader_version_hashes_the_grade_stage_modules():
    from mathrecipes.grading.settings import source_files

    grade = {f for e in P.STAGE_MODULES["grade"] for f in P._files_of(e)}
    assert set(source_files()) == grade


def test_latex_answer_edit_reingests_resynthesizes_and_regrades(package_copy):
    # gold answers at ingest, the answer types of synthesized rows and model answers at grading
    # are read by the same module
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "latex.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    assert {s for s in before if before[s] != after[s]} == {"ingest", "synthesize", "grade"}


def test_prompt_format_edit_retrains_regenerates_and_rescores(package_copy):
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "prompting.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    # the served references are asked with the students' prompt too
    changed = {s for s in before if before[s] != after[s]}
    assert changed == {"train", "generate", "likelihood", "reference"}


def test_decoding_is_shared_and_evaluation_is_not(package_copy):
    """The local-model teachers fingerprint the decoders they share with evaluation, not the
    evaluation stage: a generation.py edit regenerates and reruns no teacher."""

    def changed_by(path: str) -> set:
        before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
        with open(package_copy / path, "a") as fh:
            fh.write("\n# an edit\n")
        return {s for s in before if P.code_fingerprint(s) != before[s]}

    assert changed_by("generation.py") == {"generate"}
    assert changed_by("decoding/decoders.py") == {"generate", "teacher_local", "likelihood"}


def test_likelihood_fingerprint_has_the_training_encoding_and_no_grader(package_copy):
    """The likelihood rule scores the tokens training builds: a training/data.py edit rescores,
    a grader or a training-loop edit does not; its own module changes it alone."""

    def changed_by(path: str) -> set:
        before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
        with open(package_copy / path, "a") as fh:
            fh.write("\n# an edit\n")
        return {s for s in before if P.code_fingerprint(s) != before[s]}

    assert changed_by("likelihood.py") == {"likelihood"}
    # generation's prompt ids too
    assert changed_by("training/data.py") == {"train", "teacher_local", "likelihood", "generate"}
    assert changed_by("resumable.py") == {"generate", "likelihood"}
    assert "likelihood" not in changed_by("grading/engine.py")
    assert "likelihood" not in changed_by("training/loop.py")


def test_records_edit_changes_every_stage(package_copy):
    before = {s: P.code_fingerprint(s) for s in P.STAGE_MODULES}
    with open(package_copy / "records.py", "a") as fh:
        fh.write("\n# an edit\n")
    assert all(P.code_fingerprint(s) != before[s] for s in P.STAGE_MODULES)


def test_unknown_stage():
    with pytest.raises(KeyError, match="unknown stage"):
        P.code_fingerprint("nope")


def test_manifest_records_inputs_outputs_and_params(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello")
    out = tmp_path / "out.parquet"
    with P.Manifest("select", inputs=[src], params={"a": 1}) as m:
        out.write_bytes(b"data")
        m.add(summary={"rows": 3})
        path = m.write([out])
    doc = json.loads(path.read_text())
    assert path == tmp_path / "out.manifest.json"
    assert doc["inputs"][str(src)] == P.file_sha256(src)
    assert doc["outputs"][str(out)] == P.file_sha256(out)
    assert doc["params"] == {"a": 1} and doc["summary"] == {"rows": 3}
    assert doc["code_fingerprint"] == P.code_fingerprint("select")
    assert "python" in doc["versions"] and doc["stage"] == "select"
    assert set(doc) == {"stage", "code_fingerprint", "params", "inputs", "outputs", "versions",
                        "host", "platform", "pid", "started", "wall_time_s", "summary"}  # fmt: skip


def test_folder_hash_ignores_its_manifest(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "a.bin").write_bytes(b"1")
    h = P.path_sha256(d)
    (d / "manifest.json").write_text("{}")
    assert P.path_sha256(d) == h
    (d / "a.bin").write_bytes(b"2")
    assert P.path_sha256(d) != h
    assert P.manifest_path_for(Path("x/seed-0")) == Path("x/seed-0/manifest.json")


CELL = {
    "student": "nano",
    "recipe": "better",
    "benchmark": "id_test",
    "train": {"results/recipes/better/train.parquet": "ab" * 32},
    "synthesis_shards": {},
    "seeds": {"0": {"checkpoint": {"results/checkpoints/nano/better/seed-0": "cd" * 32}}},
}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (json.dumps({"nano/better/id_test": CELL})[:60], "is not valid JSON (Unterminated string"),
        ("\xff\xfe", "is not valid JSON (not UTF-8"),
        ("[1, 2]", "has the wrong shape: expected a JSON object of cells, got list"),
        (
            json.dumps({"nano/better/id_test": {**CELL, "seeds": [1]}}),
            "has the wrong shape: cell 'nano/better/id_test': 'seeds' is not an object",
        ),
        (
            json.dumps({"nano/better/id_test": {**CELL, "train": {"x": 3}}}),
            "has the wrong shape: cell 'nano/better/id_test': train['x'] is not a sha256 hex",
        ),
    ],
    ids=["truncated", "not-utf8", "not-cells", "seeds-list", "hash-number"],
)
def test_trace_on_a_corrupt_provenance_file_is_a_clear_error(tmp_path, capsys, text, problem):
    from mathrecipes.cli import main

    prov = tmp_path / "provenance.json"
    prov.write_bytes(text.encode("latin-1") if text == "\xff\xfe" else text.encode())
    assert main(["trace", "nano/better/id_test", "--provenance", str(prov)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {prov} {problem}")
    assert "written by the make_tables rule: rebuild it with " in err
    assert "snakemake --cores all --forcerun make_tables" in err and "Traceback" not in err
    prov.write_text(json.dumps({"nano/better/id_test": CELL}))  # the shape trace reads
    assert main(["trace", "nano/better/id_test", "--provenance", str(prov)]) == 0
    assert "seed-0  sha256:cdcdcdcdcdcd" in capsys.readouterr().out


def test_folder_hash_is_what_the_documented_command_computes_and_ignores_snakemake_files(
    tmp_path,
):
    d = tmp_path / "seed-0"
    (d / "sub").mkdir(parents=True)
    (d / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    (d / "config.json").write_text('{"a": 1}\n')
    (d / "sub" / "b.txt").write_text("b\n")
    (d / "sub-a").write_text("sorted by path bytes, not by path parts\n")
    (d / "manifest.json").write_text('{"outputs": {}}\n')  # written by the job: not hashed
    h = P.path_sha256(d)
    (d / ".snakemake_timestamp").write_text("")  # Snakemake adds it after the job
    assert P.path_sha256(d) == h  # so the manifest's hash can be reproduced after the run
    assert documented_folder_hash(d) == h
    (d / "sub" / "b.txt").write_text("c\n")
    assert P.path_sha256(d) != h and documented_folder_hash(d) == P.path_sha256(d)


# ------------------------------------------------------------------ fingerprints cover imports
# Every package module a stage's jobs can run must be in the stage's fingerprint (COMMON and its
# STAGE_MODULES entries), or below: a static walk (ast, nothing imported) from the stage's own
# modules and the scripts of its rules, along every `mathrecipes` import (module and function
# level; a name taken from a package follows the package's re-exports and lazy __getattr__ maps).

REPO = Path(__file__).resolve().parents[1]

# Reached modules that cannot change a stage's outputs: module (a file, or a folder for every file
# under it) -> the stages allowed to reach it outside their fingerprint ("*": every stage). The
# walk does not go past them.
ALLOWED = {
    # the job's log file and progress bars
    "runlog.py": "*",
    # the config schema: every value a job depends on reaches it as params (rules/common.smk);
    # the jobs only re-read those params into the same models
    "config": "*",
    # how a served teacher or reference is reached (base_url, concurrency, retries, cache_dir):
    # travels as resources precisely so that editing it reruns nothing (docs/references.md)
    "teachers/operational.py": ("reference",),
    # the grader checking synthesized answers: deliberately not in the synthesis fingerprint (a
    # grader edit re-grades evaluations but reruns no teacher and retrains nothing); its version
    # is in every shard's manifest (docs/synthesis.md, synthesis/checking.py)
    "grading": ("synthesize", "weakness_seeds"),
    # imported by synthesis/weakness.py inside weakness_seeds() and find_seeds() only: the
    # weakness_seeds stage (whose fingerprint holds it); the weakness method reads their seeds
    "embedding.py": ("synthesize",),
    # synthesis/weakness.py also holds the weakness synthesis method (stage synthesize), which
    # imports these; weakness_seeds() and find_seeds(), all the weakness_seeds job runs, use
    # none of them (records.py's readers, embedding.py and the module's own _norm)
    "answers.py": ("weakness_seeds",),
    "synthesis/__init__.py": ("weakness_seeds",),  # module level: the lazy exports' names only
    "synthesis/base.py": ("weakness_seeds",),
    "synthesis/rephrase.py": ("weakness_seeds",),
    # imported by training/data.py for the students' encode_prompts / prompt_texts; the local
    # teachers' bos_ids and encode_texts (teachers/local.py) tokenize their own text with none
    "prompting.py": ("teacher_local",),
    # imported inside prompting.draw_examples only, the evaluation prompts' few-shot filter
    # (eval_format); training formats no few-shot prompt (PromptFormat, format_prompt/target)
    "textnorm.py": ("train",),
    # run as the parent package of training/data.py: its module level only names the training
    # loop's lazy exports (train_student, ...), which these stages never ask for
    "training/__init__.py": ("generate", "likelihood", "teacher_local"),
    # run as the parent package of teachers/base.py, openai_backend.py, operational.py: the
    # synthesis teachers' factory (make_teacher); served.py builds its OpenAIBackend itself
    "teachers/__init__.py": ("reference",),
}

# Single names imported from a module the stage otherwise does not run: (module, name) -> the
# stages allowed to import that name alone without the module in their fingerprint.
ALLOWED_NAMES = {
    # silences transformers' progress bars while a model loads (training/model.py's other code
    # builds and trains models: not run by these stages)
    ("training/model.py", "transformers_progress"): ("generate", "likelihood", "teacher_local"),
    # the generations' file contract (columns and types) the reference writes: the rest of
    # generation.py is the students' decoders, whose edits must ask no server again
    # (docs/references.md). The answers do not depend on it; a contract change (ARCHITECTURE:
    # file contracts) is made with its readers and needs `snakemake -R generate_reference`
    ("generation.py", "OUTPUT_SCHEMA"): ("reference",),
}

# The synthesis jobs' code param is synth_fingerprint() (rules/common.smk): "synthesize", and for
# an entry whose teacher or judge runs a local model "synthesize" + "teacher_local". So what the
# local backends import is checked against both (the stage "teacher_local", which starts at the
# backends), and the "synthesize" walk stops at them.
LOCAL_BACKENDS = ("teachers/hf_backend.py", "teachers/vllm_backend.py", "teachers/local.py")
EXTRA_COVER = {"teacher_local": ("synthesize",)}
EXTRA_ROOTS = {"teacher_local": LOCAL_BACKENDS}
STOP_AT = {"synthesize": LOCAL_BACKENDS}


def _rel(path: Path) -> str:
    return path.relative_to(P.PACKAGE_DIR).as_posix()


def _module_file(dotted: str) -> str | None:
    """mathrecipes.a.b -> 'a/b.py' or 'a/b/__init__.py' (None: not a package module)."""
    parts = dotted.split(".")
    if parts[0] != "mathrecipes":
        return None
    base = P.PACKAGE_DIR.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return _rel(base / "__init__.py")
    if base.with_suffix(".py").is_file():
        return _rel(base.with_suffix(".py"))
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """The `mathrecipes` imports of one file as (dotted module, names or None, where): where is
    'module', 'function' or 'getattr' (inside a package's lazy __getattr__); imports under
    `if TYPE_CHECKING:` are not run and are left out. importlib.import_module("...") counts."""

    def __init__(self) -> None:
        self.found: list[tuple[str, tuple[str, ...] | None, str]] = []
        self.where = "module"

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        outer = self.where
        if outer == "module":  # a nested function keeps its outer function's kind
            self.where = "getattr" if node.name == "__getattr__" else "function"
        self.generic_visit(node)
        self.where = outer

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] == "mathrecipes":
                self.found.append((alias.name, None, self.where))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        assert node.level == 0, "relative imports: extend the walk in tests/test_provenance.py"
        if node.module and node.module.split(".")[0] == "mathrecipes":
            self.found.append((node.module, tuple(a.name for a in node.names), self.where))

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        arg = node.args[0] if node.args else None
        constant = str(arg.value) if isinstance(arg, ast.Constant) else ""
        if name == "import_module" and constant.split(".")[0] == "mathrecipes":
            self.found.append((constant, None, self.where))
        self.generic_visit(node)


@functools.cache
def _parsed(path: str) -> tuple[ast.Module, tuple]:
    file = REPO / path if path.startswith("scripts/") else P.PACKAGE_DIR / path
    tree = ast.parse(file.read_text(), filename=str(file))
    visitor = _Imports()
    visitor.visit(tree)
    return tree, tuple(visitor.found)


def _bound_at_module_level(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == name:
                return True
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
    return False


def _lazy_map(tree: ast.Module, name: str) -> str | None:
    """The submodule a module-level {name: "submodule"} map (grading's _HOME) sends ``name`` to."""
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Dict):
            for k, v in zip(value.keys, value.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == name and isinstance(v, ast.Constant):
                    return str(v.value)
    return None


def _parents(dotted: str) -> list[tuple[str, bool]]:
    """Importing a.b.c runs the __init__ of a and a.b (module level only)."""
    parts = dotted.split(".")
    files = (_module_file(".".join(parts[:i])) for i in range(1, len(parts)))
    return [(f, False) for f in files if f]


def _targets(dotted: str, names: tuple[str, ...] | None) -> list[tuple[str, bool]]:
    """What one import runs: (file, whole) pairs; whole=False: a package __init__ run for its
    module level only (a parent of the imported module)."""
    file = _module_file(dotted)
    assert file, f"no module {dotted}"
    out = _parents(dotted)
    if names is None or not file.endswith("__init__.py"):
        return [*out, (file, True)]
    tree, found = _parsed(file)
    for name in names:
        if _module_file(f"{dotted}.{name}"):  # a submodule
            out += [(file, False), (_module_file(f"{dotted}.{name}"), True)]
        elif _bound_at_module_level(tree, name):
            out.append((file, True))
        elif (sub := _lazy_map(tree, name)) and _module_file(f"{dotted}.{sub}"):
            out += [(file, False), (_module_file(f"{dotted}.{sub}"), True)]
        else:  # whatever the lazy __getattr__ imports
            out.append((file, True))
            for mod, ns, where in found:
                if where == "getattr":
                    out += _targets(mod, ns)
    return out


def _covered(stage: str) -> set[str]:
    entries = (*P.COMMON, *P.STAGE_MODULES[stage])
    for extra in EXTRA_COVER.get(stage, ()):
        entries += P.STAGE_MODULES[extra]
    return {_rel(f) for e in entries for f in P._files_of(e)}


def _allowed(module: str, stage: str) -> str | None:
    for entry, stages in ALLOWED.items():
        if (module == entry or module.startswith(entry + "/")) and (
            stages == "*" or stage in stages
        ):
            return entry
    return None


def _allowed_name(module: str, name: str, stage: str) -> bool:
    stages = ALLOWED_NAMES.get((module, name))
    return stages is not None and (stages == "*" or stage in stages)


def _rule_stages() -> dict[str, set[str]]:
    """stage -> the scripts its rules run, from rules/*.smk (a rule's `script:` and the stage of
    its `code=fingerprint("<stage>")` param, synth_fingerprint(): "synthesize")."""
    scripts: dict[str, set[str]] = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)[1:]:
            script = re.search(r"^\s+script:\s*\n\s+\"\.\./(scripts/\w+\.py)\"", block, re.M)
            code = re.search(r"code=(?:fingerprint\(\"(\w+)\"\)|(synth_fingerprint)\(\))", block)
            rule = block.split(":")[0]
            assert script and code, f"{smk.name}: {rule} has no script: or no code= fingerprint"
            stage = code.group(1) or "synthesize"
            scripts.setdefault(stage, set()).add(script.group(1))
    return scripts


def _walk(stage: str, scripts: set[str]):
    """Breadth-first from the stage's roots: (uncovered: module -> chain, allowed used)."""
    roots = {_rel(f) for e in P.STAGE_MODULES[stage] for f in P._files_of(e)}
    roots |= set(EXTRA_ROOTS.get(stage, ())) | scripts
    covered, stop = _covered(stage), set(STOP_AT.get(stage, ()))
    chain = {r: (r,) for r in roots}
    queue = [(r, True) for r in sorted(roots)]
    seen: set[tuple[str, bool]] = set()
    uncovered: dict[str, tuple[str, ...]] = {}
    used: set = set()
    while queue:
        module, whole = queue.pop(0)
        if (module, whole) in seen or module in stop:
            continue
        seen.add((module, whole))
        if (entry := _allowed(module, stage)) is not None:
            used.add(entry)
            continue
        if module not in covered and not module.startswith("scripts/"):
            uncovered.setdefault(module, chain[module])
        for dotted, names, where in _parsed(module)[1]:
            if where == "getattr" or (where == "function" and not whole):
                continue
            file = _module_file(dotted)
            if names and file and all(_allowed_name(file, n, stage) for n in names):
                used |= {(file, n) for n in names}
                continue
            for target, target_whole in _targets(dotted, names):
                chain.setdefault(target, (*chain[module], target))
                queue.append((target, target_whole))
    return uncovered, used


@functools.cache
def _walks():
    scripts = _rule_stages()
    return {s: _walk(s, scripts.get(s, set())) for s in P.STAGE_MODULES}


def test_rules_name_every_stage_and_the_synthesis_fingerprint_joins_teacher_local():
    scripts = _rule_stages()
    assert set(scripts) == set(P.STAGE_MODULES) - {"teacher_local"}
    assert scripts["generate"] == {"scripts/generate_answers.py"}  # students' and probes'
    body = (REPO / "rules" / "common.smk").read_text().split("def synth_fingerprint")[1]
    body = body.split("\ndef ")[0]
    assert 'code_fingerprint("synthesize")' in body and 'code_fingerprint("teacher_local")' in body


@pytest.mark.parametrize("stage", list(P.STAGE_MODULES))
def test_stage_fingerprint_covers_every_module_its_jobs_import(stage):
    uncovered, _ = _walks()[stage]
    lines = [f"  {m}  (via {' -> '.join(chain)})" for m, chain in sorted(uncovered.items())]
    assert not uncovered, (
        f"stage {stage!r} runs modules outside its code fingerprint: add them to "
        f"provenance.STAGE_MODULES[{stage!r}], or (if they cannot change its outputs) to ALLOWED "
        "in tests/test_provenance.py with the reason:\n" + "\n".join(lines)
    )


def test_the_allow_lists_have_no_stale_entries():
    used = set().union(*(u for _, u in _walks().values()))
    for entry in ALLOWED:
        assert (P.PACKAGE_DIR / entry).exists(), f"ALLOWED: no module {entry}"
        assert entry in used, f"ALLOWED: no stage reaches {entry}; remove it"
    for module, name in ALLOWED_NAMES:
        assert _bound_at_module_level(_parsed(module)[0], name), f"no {name} in {module}"
        assert (module, name) in used, f"ALLOWED_NAMES: nothing imports {name} from {module}"


def test_the_walk_follows_lazy_package_exports():
    def files(dotted, names):
        return {f for f, whole in _targets(dotted, names) if whole}

    assert files("mathrecipes.grading", ("grade_file",)) == {"grading/files.py"}  # _HOME map
    assert files("mathrecipes.synthesis", ("synthesize_shard",)) == {  # __getattr__'s import
        "synthesis/__init__.py",
        "synthesis/shards.py",
    }
    assert files("mathrecipes.training", ("train_student",)) >= {"training/loop.py"}
    assert files("mathrecipes", ("runlog",)) == {"runlog.py"}  # a submodule
    # a name defined in the package: the package, function-level imports included
    assert files("mathrecipes.sources", ("open_source",)) == {"sources/__init__.py"}
    sources = _parsed("sources/__init__.py")[1]
    assert ("mathrecipes.sources.hf", ("HFSource",), "function") in sources
    # importing a submodule runs its parents' module level only
    assert ("training/__init__.py", False) in _targets("mathrecipes.training.data", None)
