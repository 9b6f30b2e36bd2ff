"""The whole config: its sections, their cross-references, and :func:`load_config`."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from mathrecipes.config.base import ConfigError, Name, Strict
from mathrecipes.config.evaluation import (
    GenerationSpec,
    GradingSpec,
    LikelihoodSpec,
    TablesSpec,
)
from mathrecipes.config.planning import PlanSpec
from mathrecipes.config.recipes import RecipeSpec, SelectionSpec
from mathrecipes.config.references import ReferenceSpec, reference_problems
from mathrecipes.config.sources import (
    SOURCE_TAGS,
    BuiltinSource,
    SourceSpec,
    source_problems,
    source_spec,
)
from mathrecipes.config.students import StudentSpec
from mathrecipes.config.synthesis import (
    METHOD_TAGS,
    AnySynthesisSpec,
    JudgedSpec,
    WeaknessSpec,
)
from mathrecipes.config.teachers import TEACHER_TAGS


class Config(Strict):
    """The whole config: one experiment."""

    results: str = Field("results", description="output folder, relative to the working directory")
    seeds: list[int] = Field(
        min_length=1,
        description="training seeds (0 or more): every (student, recipe) is trained once per seed",
    )
    datasets: dict[Name, SourceSpec] = Field(
        min_length=1, description="raw training datasets, by name; source picks the kind"
    )
    benchmarks: dict[Name, SourceSpec] = Field(
        min_length=1, description="held-out evaluation sets with gold answers, by name"
    )
    synthesis: dict[Name, AnySynthesisSpec] = Field(
        default_factory=dict,
        description="synthesis entries, by name: a method applied by a teacher to a pool",
    )
    recipes: dict[Name, RecipeSpec] = Field(
        min_length=1, description="training sets selected from the pools, by name"
    )
    selection: SelectionSpec = Field(
        default_factory=SelectionSpec,
        description="how the recipes' selection runs: one job per recipe, or sharded jobs per pool",
    )
    students: dict[Name, StudentSpec] = Field(min_length=1, description="student models, by name")
    generation: GenerationSpec = Field(
        default_factory=GenerationSpec, description="how the students answer the benchmarks"
    )
    likelihood: LikelihoodSpec = Field(
        default_factory=LikelihoodSpec,
        description="how likely each student finds the benchmarks' reference solutions",
    )
    grading: GradingSpec = Field(
        default_factory=GradingSpec, description="how the answers are graded"
    )
    references: dict[Name, ReferenceSpec] = Field(
        default_factory=dict,
        description="served models evaluated beside the students (not trained here), by name: "
        "each answers every benchmark through an OpenAI-compatible server and gets its own "
        "row in the tables (student `reference`, recipe `<name>`; docs/references.md)",
    )
    tables: TablesSpec = Field(description="the tables and the figure")
    plan: PlanSpec = Field(
        default_factory=PlanSpec,
        description="throughputs `mathrecipes plan` estimates hours from (never a job parameter)",
    )

    def reference_problems(self) -> list[tuple[str, str]]:
        """Cross-references between sections, as (key path, problem) pairs."""
        problems: list[tuple[str, str]] = []
        for name in sorted(set(self.datasets) & set(self.synthesis)):
            problems.append((f"synthesis.{name}", f"name already used by datasets.{name}"))
        pools = set(self.datasets) | set(self.synthesis)
        for name, spec in self.synthesis.items():
            if spec.from_ not in pools:
                problems.append(
                    (
                        f"synthesis.{name}.from",
                        f"{spec.from_!r} is neither a dataset nor a synthesis entry",
                    )
                )
        for name, recipe in self.recipes.items():
            given = [part.weight is not None for part in recipe.mix]
            if any(given) and not all(given):
                problems.append(
                    (
                        f"recipes.{name}.mix",
                        "give a weight on every part or on none (none: pools whole)",
                    )
                )
            for i, part in enumerate(recipe.mix):
                if part.from_ not in pools:
                    problems.append(
                        (
                            f"recipes.{name}.mix.{i}.from",
                            f"{part.from_!r} is neither a dataset nor a synthesis entry",
                        )
                    )
            benches = recipe.decontaminate.benchmarks
            if benches != "all":
                for b in benches:
                    if b not in self.benchmarks:
                        problems.append(
                            (f"recipes.{name}.decontaminate.benchmarks", f"unknown benchmark {b!r}")
                        )
        if self.tables.baseline not in self.recipes:
            problems.append(("tables.baseline", f"{self.tables.baseline!r} is not a recipe"))
        if self.tables.figure_benchmarks != "all":
            for b in self.tables.figure_benchmarks:
                if b not in self.benchmarks:
                    problems.append(("tables.figure_benchmarks", f"unknown benchmark {b!r}"))
        problems.extend(self._cycles())
        if self.tables.metrics != "auto":
            if "bpb" in self.tables.metrics and not self.likelihood.enabled:
                problems.append(
                    ("tables.metrics", "bpb needs the likelihood rule (likelihood.enabled: true)")
                )
            most = max(self.generation.for_benchmark(b).n_samples for b in self.benchmarks)
            for name in self.tables.metrics:
                k = int(name.split("@")[1]) if "@" in name else 1
                if k > most:  # the tables leave it out where a benchmark has fewer samples
                    problems.append(
                        (
                            "tables.metrics",
                            f"{name} needs at least {k} samples per problem; no benchmark has "
                            f"that many (the most is {most}: generation.n_samples, "
                            "generation.benchmarks.<name>.n_samples)",
                        )
                    )
        for name, spec in self.benchmarks.items():
            if isinstance(spec, BuiltinSource) and spec.split != "test":
                problems.append(
                    (
                        f"benchmarks.{name}.split",
                        "builtin benchmarks must use split 'test' (train and test are "
                        "disjoint by construction)",
                    )
                )
        if len(set(self.seeds)) != len(self.seeds):
            problems.append(("seeds", "duplicate seed"))
        for i, seed in enumerate(self.seeds):
            if seed < 0:  # the path scheme (seed-{seed}) and torch's generators need seed >= 0
                problems.append((f"seeds.{i}", f"a training seed must be 0 or more, not {seed}"))
        problems.extend(reference_problems(self))
        problems.extend(self._format_problems())
        problems.extend(self._volume_problems())
        problems.extend(self._text_problems())
        problems.extend(self._grading_problems())
        problems.extend(self._evaluation_problems())
        return problems

    def _evaluation_problems(self) -> list[tuple[str, str]]:
        """Per-benchmark generation settings name benchmarks and datasets; a chat student needs a
        model with a chat template (a scratch student has none)."""
        problems = []
        for name, override in self.generation.benchmarks.items():
            key = f"generation.benchmarks.{name}"
            if name not in self.benchmarks:
                problems.append((key, f"unknown benchmark {name!r}"))
            if override.few_shot is not None and override.few_shot.from_ not in self.datasets:
                problems.append(
                    (f"{key}.few_shot.from", f"{override.few_shot.from_!r} is not a dataset")
                )
        for name, student in self.students.items():
            if student.prompt_format == "chat" and student.init == "scratch":
                problems.append(
                    (
                        f"students.{name}.prompt_format",
                        "chat needs a model with a chat template; a scratch student's "
                        "tokenizer has none (use plain, or init a Hub / local model)",
                    )
                )
        return problems

    def pool_bound(self, pool: str) -> tuple[int | None, str]:
        """The most rows ``pool`` can hold, as far as the config alone tells (None: unknown until
        the run), and why: a builtin dataset holds at most ``n`` rows, a local / hf dataset in a
        one-row-per-record format at most its ``limit`` (filters, dedup and decontamination may
        leave fewer); a synthesis output's size is unknown."""
        spec = self.datasets.get(pool)
        if spec is None:
            return None, "size unknown before the run (a synthesis output)"
        if isinstance(spec, BuiltinSource):
            return spec.n, f"at most {spec.n} rows (builtin n)"
        if spec.limit is not None and spec.format != "text":
            return spec.limit, f"at most {spec.limit} rows (limit)"
        return None, f"size unknown before the run (a {spec.source} file without a limit)"

    def _volume_problems(self) -> list[tuple[str, str]]:
        """``volume.count`` above what the pools can hold, where their sizes are bounded before
        the run (:meth:`pool_bound`): the same arithmetic as selection's ``T_max``
        (:mod:`mathrecipes.selection`), so a count that fails here would fail there too."""
        problems = []
        for name, recipe in self.recipes.items():
            count = recipe.volume.count
            given = [part.weight for part in recipe.mix]
            if count is None or any(
                p.from_ not in self.datasets and p.from_ not in self.synthesis for p in recipe.mix
            ):
                continue
            bounds = [self.pool_bound(part.from_) for part in recipe.mix]
            if all(w is None for w in given):  # the pools whole: the sum of their sizes
                if any(b is None for b, _ in bounds):
                    continue
                allowed = sum(b for b, _ in bounds if b is not None)
                detail = "; ".join(
                    f"{part.from_}: {why}"
                    for part, (_, why) in zip(recipe.mix, bounds, strict=True)
                )
                detail += "; no weights: the pools whole"
            elif all(w is not None for w in given):
                wsum = sum(w for w in given if w is not None)
                parts, caps = [], []
                for part, (bound, why) in zip(recipe.mix, bounds, strict=True):
                    text = f"{part.from_}, weight {part.weight:g}: {why}"
                    if bound is not None:
                        cap = math.floor(bound / (part.weight / wsum) + 1e-9)
                        caps.append(cap)
                        text += f", so at most {cap} in all"
                    parts.append(text)
                if not caps:
                    continue
                allowed, detail = min(caps), "; ".join(parts)
            else:
                continue  # reported by reference_problems
            if count > allowed:
                problems.append(
                    (
                        f"recipes.{name}.volume.count",
                        f"{count} rows asked for, but the pools allow at most {allowed} ({detail})",
                    )
                )
        return problems

    def answerless_pools(self) -> set[str]:
        """Pools whose rows have no gold answer: datasets read with format ``text``, and
        ``rewrite`` entries on such a pool (an article keeps its chunk's missing answer)."""
        pools = {n for n, s in self.datasets.items() if getattr(s, "format", None) == "text"}
        grown = True
        while grown:
            grown = False
            for name, spec in self.synthesis.items():
                if name not in pools and spec.method == "rewrite" and spec.from_ in pools:
                    pools.add(name)
                    grown = True
        return pools

    def _text_problems(self) -> list[tuple[str, str]]:
        """Raw text (no answer) may only feed rewrite and extract: not a benchmark, a recipe or
        another method."""
        problems = []
        for name, spec in self.benchmarks.items():
            if getattr(spec, "format", None) == "text":
                problems.append(
                    (f"benchmarks.{name}.format", "a benchmark needs gold answers; text has none")
                )
        answerless = self.answerless_pools()

        def why(pool: str) -> str:
            if pool in self.datasets:
                return f"{pool!r} is raw text without answers (format: text)"
            return f"{pool!r} rewrites raw text without answers (format: text)"

        for name, spec in self.synthesis.items():
            probe = spec.probe if isinstance(spec, WeaknessSpec) else None  # answers, graded
            if probe is not None and probe.dataset in answerless:
                problems.append(
                    (f"synthesis.{name}.probe.dataset", f"{why(probe.dataset)}: nothing to grade")
                )
            if spec.from_ not in answerless:
                continue
            if spec.method not in ("rewrite", "extract"):
                problems.append(
                    (
                        f"synthesis.{name}.from",
                        f"{why(spec.from_)}: only a rewrite or extract entry can read it, "
                        f"not {spec.method}",
                    )
                )
            elif (
                isinstance(spec, JudgedSpec)
                and spec.from_ in self.datasets
                and spec.text_field == "solution"
            ):
                problems.append(
                    (
                        f"synthesis.{name}.text_field",
                        f"{spec.from_!r} is raw text: its text is the problem, its solution is "
                        "empty (text_field: problem)",
                    )
                )
        for name, recipe in self.recipes.items():
            for i, part in enumerate(recipe.mix):
                if part.from_ in answerless:
                    problems.append(
                        (
                            f"recipes.{name}.mix.{i}.from",
                            f"{why(part.from_)}: train on the pairs an extract entry draws "
                            "from it instead",
                        )
                    )
        return problems

    def _grading_problems(self) -> list[tuple[str, str]]:
        from mathrecipes.grading import GradeSettings

        problems = []
        for name in self.grading.benchmarks:
            if name not in self.benchmarks:
                problems.append((f"grading.benchmarks.{name}", "not a configured benchmark"))
        for name in sorted(self.benchmarks):
            key = (
                f"grading.benchmarks.{name}"
                if name in self.grading.benchmarks
                else "grading.policy"
            )
            try:
                GradeSettings.from_dict(self.grading.settings_for(name))
            except (ValueError, TypeError) as exc:
                problems.append((key, str(exc)))
        return sorted(set(problems))

    def _format_problems(self) -> list[tuple[str, str]]:
        problems = []
        for section in ("datasets", "benchmarks"):
            for name, spec in getattr(self, section).items():
                problems.extend(source_problems(f"{section}.{name}", spec))
        return problems

    def _cycles(self) -> list[tuple[str, str]]:
        for start in self.synthesis:
            seen = [start]
            node = self.synthesis[start].from_
            while node in self.synthesis:
                if node in seen:
                    return [(f"synthesis.{start}.from", f"cycle {' -> '.join([*seen, node])}")]
                seen.append(node)
                node = self.synthesis[node].from_
        return self._probe_problems()

    def _probe_problems(self) -> list[tuple[str, str]]:
        """weakness entries: the probe's names exist, and its student's recipe does not use
        the entry (directly, through a chain, or through another weakness entry's probe)."""
        problems = []
        for name, spec in sorted(self.synthesis.items()):
            probe = spec.probe if isinstance(spec, WeaknessSpec) else None
            if probe is None:
                continue
            key = f"synthesis.{name}.probe"
            for field, section in (("dataset", "datasets"), ("student", "students")):
                if getattr(probe, field) not in getattr(self, section):
                    problems.append(
                        (f"{key}.{field}", f"{getattr(probe, field)!r} is not in {section}")
                    )
            if probe.recipe not in self.recipes:
                problems.append((f"{key}.recipe", f"{probe.recipe!r} is not a recipe"))
                continue
            path = self._recipe_path_to(probe.recipe, name, [])
            if path is not None:
                problems.append(
                    (
                        f"{key}.recipe",
                        f"cycle: the student's recipe uses this entry ({' -> '.join(path)})",
                    )
                )
        return problems

    def _recipe_path_to(self, recipe: str, target: str, seen: list[str]) -> list[str] | None:
        """A dependency path from ``recipe`` to synthesis entry ``target``, or None."""
        if recipe in seen or recipe not in self.recipes:
            return None
        seen.append(recipe)
        for part in self.recipes[recipe].mix:
            node, steps = part.from_, [f"recipes.{recipe}"]
            while node in self.synthesis:
                steps.append(f"synthesis.{node}")
                if node == target:
                    return steps
                spec = self.synthesis[node]
                if isinstance(spec, WeaknessSpec) and spec.probe is not None:
                    sub = self._recipe_path_to(spec.probe.recipe, target, seen)
                    if sub is not None:
                        return [*steps, *sub]
                node = spec.from_
        return None


def validate_source(raw: dict[str, Any], key: str = "source") -> BaseModel:
    """Validate one source spec outside a whole config (the command line uses this)."""
    try:
        spec = source_spec(raw)
    except ValidationError as exc:
        lines = [
            line.replace("config key '", f"config key '{key}.", 1) for line in _format_errors(exc)
        ]
        raise ConfigError("invalid source:\n" + "\n".join(f"  {p}" for p in lines)) from None
    problems = source_problems(key, spec)
    if problems:
        raise ConfigError(
            "invalid source:\n" + "\n".join(f"  config key '{k}': {m}" for k, m in problems)
        )
    return spec


def _format_errors(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        parts = list(err["loc"])
        # pydantic puts the tag of a tagged union into the path: datasets.<name>.<tag>.<key>
        if len(parts) > 2 and parts[0] in ("datasets", "benchmarks") and parts[2] in SOURCE_TAGS:
            del parts[2]
        # ... the method union: synthesis.<name>.<method>.<key>
        if len(parts) > 2 and parts[0] == "synthesis" and parts[2] in METHOD_TAGS:
            del parts[2]
        # ... and so does the teacher union: synthesis.<name>.teacher.<backend>.<key>
        teacher = len(parts) > 2 and parts[0] == "synthesis" and parts[2] == "teacher"
        if teacher and len(parts) > 3 and parts[3] in TEACHER_TAGS:
            del parts[3]
        loc = ".".join(str(p) for p in parts)
        if teacher and len(parts) == 3 and err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            lines.append(
                f"config key '{loc}.backend': unknown teacher backend {tag!r} "
                f"(expected one of {', '.join(TEACHER_TAGS)})"
            )
            continue
        if parts[:1] == ["synthesis"] and len(parts) == 2 and err["type"] == "union_tag_invalid":
            tag = err.get("ctx", {}).get("tag")
            lines.append(
                f"config key '{loc}.method': unknown method {tag!r} "
                f"(expected one of {', '.join(METHOD_TAGS)})"
            )
            continue
        value = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
            value = None
        elif err["type"] == "union_tag_invalid":
            loc = f"{loc}.source"
            tags = err.get("ctx", {}).get("expected_tags", "")
            msg = f"unknown source {err.get('ctx', {}).get('tag')!r} (expected one of {tags})"
            value = None
        elif err["type"] == "union_tag_not_found":
            loc = f"{loc}.source"
            msg = "required key is missing (builtin or local)"
            value = None
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        shown = "" if value is None or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"config key '{loc or '<root>'}': {msg}{shown}")
    return lines


def load_config(raw: dict[str, Any]) -> Config:
    """Validate a raw config mapping; raise :class:`ConfigError` naming the key paths at fault."""
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        problems = _format_errors(exc)
    else:
        problems = [f"config key '{key}': {msg}" for key, msg in cfg.reference_problems()]
        if not problems:
            return cfg
    raise ConfigError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))
