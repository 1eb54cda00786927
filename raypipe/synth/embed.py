"""Text embedders for tool-graph similarity.

`NgramEmbedder` is the offline default: TF-IDF over character 3- and 4-grams of the words
(``location`` and ``destination`` share ``ati``, ``tio``, ``ion``, ``atio`` ...), hashed into a
fixed number of buckets with a stable hash so every worker agrees without a shared vocabulary,
then L2-normalised, so a dot product is a cosine. It needs nothing but numpy.

`SentenceTransformerEmbedder` loads a sentence-transformers model the user names (a local path
or a model already in the Hugging Face cache); nothing is downloaded by raypipe itself.

`make_embedder("ngram")` / `make_embedder("st:/models/all-MiniLM-L6-v2")` picks one.
"""

from __future__ import annotations

import re
import zlib
from typing import Iterable, Protocol

from raypipe.errors import MissingExtraError, RaypipeError

_WORD = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9_]")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def words(text: str) -> list[str]:
    """Lower-case words, splitting snake_case and camelCase (``fromLoc`` -> from, loc)."""
    text = _CAMEL.sub(" ", text).replace("_", " ").replace(".", " ")
    return [w.lower() for w in _WORD.findall(text) if w.strip()]


class Embedder(Protocol):
    name: str

    def embed(self, texts: list[str]):  # -> np.ndarray (len(texts), dim), rows unit-norm
        ...


class NgramEmbedder:
    """Character n-gram TF-IDF, hashed (see module doc). Fit IDF once, embed in blocks."""

    def __init__(self, dim: int = 2048, ngram: tuple[int, int] = (3, 4)):
        self.name = f"ngram-tfidf-{dim}"
        self.dim = dim
        self.ngram = ngram
        self.idf = None
        self._memo: dict[str, list[int]] = {}  # fit and embed see the same (often repeated) texts

    def _buckets(self, text: str) -> list[int]:
        if text in self._memo:
            return self._memo[text]
        out: list[int] = []
        lo, hi = self.ngram
        for w in words(text):
            padded = f"<{w}>"
            out.append(zlib.crc32(padded.encode()) % self.dim)  # the whole word counts too
            for n in range(lo, hi + 1):
                for i in range(max(1, len(padded) - n + 1)):
                    out.append(zlib.crc32(padded[i : i + n].encode()) % self.dim)
        if len(self._memo) < 200_000:
            self._memo[text] = out
        return out

    def fit(self, texts: Iterable[str]) -> "NgramEmbedder":
        import numpy as np

        df = np.zeros(self.dim, dtype=np.float64)
        n = 0
        for t in texts:
            n += 1
            df[list(set(self._buckets(t)))] += 1
        self.idf = (np.log((1 + n) / (1 + df)) + 1.0).astype(np.float32)
        return self

    def embed(self, texts: list[str]):
        import numpy as np

        if self.idf is None:
            self.fit(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, t in enumerate(texts):
            buckets = self._buckets(t)
            if buckets:
                np.add.at(out[row], buckets, 1.0)
        out *= self.idf
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use (it is an optional dependency)."""

    def __init__(self, model: str, batch_size: int = 256):
        self.name = f"st:{model}"
        self.model_name = model
        self.batch_size = batch_size
        self._model = None

    def fit(self, texts: Iterable[str]) -> "SentenceTransformerEmbedder":
        return self

    def embed(self, texts: list[str]):
        import numpy as np

        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise MissingExtraError("sentence-transformers", "embed") from None
            try:
                self._model = SentenceTransformer(self.model_name)
            except OSError as exc:
                raise RaypipeError(f"embedder {self.model_name!r}: cannot load: {exc}") from None
        vecs = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)


def make_embedder(spec: str):
    """``ngram`` / ``ngram:4096`` (offline default) or ``st:<model path or name>``."""
    if spec == "ngram" or spec.startswith("ngram:"):
        dim = spec.partition(":")[2]
        if dim and not dim.isdigit():
            raise RaypipeError(f"embedder {spec!r}: expected ngram:<dim>, e.g. ngram:2048")
        return NgramEmbedder(dim=int(dim) if dim else 2048)
    if spec.startswith("st:") and len(spec) > 3:
        return SentenceTransformerEmbedder(spec[3:])
    raise RaypipeError(f"embedder {spec!r}: use 'ngram', 'ngram:<dim>' or 'st:<model>'")
