"""kgrag: question answering over documents and a knowledge graph, with citations and honest refusals."""

from rag.errors import IndexLoadError, InputError, KgragError, ModelLoadError
from rag.types import Answer, Citation, Conflict, Evidence, Passage

__all__ = [
    "Answer",
    "Citation",
    "Conflict",
    "Evidence",
    "IndexLoadError",
    "InputError",
    "KgragError",
    "ModelLoadError",
    "Passage",
    "QAPipeline",
]


def __getattr__(name: str):
    # The pipeline module is light too, but keep `import rag` free of everything beyond the types.
    if name == "QAPipeline":
        from rag.pipeline import QAPipeline

        return QAPipeline
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
