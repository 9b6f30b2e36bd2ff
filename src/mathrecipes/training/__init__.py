"""Student training: ``train_student(train_path, out_dir, spec, seed, threads, progress)``.

Submodules: :mod:`.data` (encoding + batching, shared with generation; no torch import),
:mod:`.tokenizer`, :mod:`.model`, :mod:`.loop`. ``train_student`` is imported lazily so that
``mathrecipes.training.data`` stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mathrecipes.training.loop import SpecError, train_student, validate_student_spec

__all__ = ["SpecError", "train_student", "validate_student_spec"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mathrecipes.training import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
