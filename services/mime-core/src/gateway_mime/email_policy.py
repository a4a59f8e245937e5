"""policy.default, minus two costs it pays on every header it parses (measured: docs/performance.md).

Behaviour is policy.default's own: the same header classes, the same parse; only work already done is reused.

- `HeaderRegistry.__getitem__` builds a new class (ABCMeta) for every header object it makes: a quarter of the
  time of a header parse. The class for each specialised header class is built once here.
- `Message.get` parses the header again on every call, and the walk asks for a part's Content-Type up to eight
  times (content type, charset, filename, disposition, defects, and the parser's own multipart checks). Header
  objects are never modified once made, so the parse of a short (name, value) pair is kept in a bounded LRU shared
  by every message (the same Content-Type lines recur across messages too).
"""

from __future__ import annotations

from email import headerregistry
from email.policy import EmailPolicy
from functools import lru_cache
from typing import Any

# Values longer than this are parsed every time (hostile or huge headers must not fill the cache).
_MEMO_MAX_CHARS = 512
_MEMO_ENTRIES = 1024


class _OneClassPerType(headerregistry.HeaderRegistry):
    """The stdlib registry, with the class it combines for each header type built once instead of per header."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type] = {}

    def __getitem__(self, name: str) -> type[headerregistry.BaseHeader]:
        cls = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(cls)
        if made is None:  # what the stdlib returns, made once per type (a race only builds an equal class twice)
            made = self._made[cls] = type("_" + cls.__name__, (cls, self.base_class), {})
        return made


class _MemoPolicy(EmailPolicy):
    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name") or len(value) > _MEMO_MAX_CHARS:
            return super().header_fetch_parse(name, value)
        return _fetch_parse(self, name, value)


@lru_cache(maxsize=_MEMO_ENTRIES)
def _fetch_parse(policy: _MemoPolicy, name: str, value: str) -> Any:
    return EmailPolicy.header_fetch_parse(policy, name, value)


POLICY = _MemoPolicy(header_factory=_OneClassPerType())
