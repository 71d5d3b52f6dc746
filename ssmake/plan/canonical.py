"""A fingerprint's value: the canonical JSON of its components, and its sha256."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ssmake.plan.snapshot import Snapshot

SCHEMA_VERSION = 2

Components = dict[str, Any]


def canonical_json(value: object) -> bytes:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8. A file
    name that is not UTF-8 is hashed as its bytes on disk (surrogate escapes)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogateescape")


def upstream_outputs(marker: Mapping[str, Any] | None) -> dict[str, list[Any] | None]:
    """An upstream's outputs by content, as a downstream fingerprints them: kind ->
    [size, ETag or sha256] of the stored tarball. A rerun that stores the same
    bytes gives the same value (early cutoff)."""
    out: dict[str, list[Any] | None] = {}
    for kind, info in sorted(((marker or {}).get("outputs") or {}).items()):
        if isinstance(info, dict):
            out[kind] = [info.get("size"), info.get("sha256") or info.get("etag")]
    return out


def digest(value: object) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


class Fingerprint:
    """A task's fingerprint. Its components are worked out when first asked for: a
    plan that a stat digest answered knows the value without them."""

    __slots__ = ("_components", "_compute", "snapshot", "value")

    def __init__(
        self,
        value: str,
        components: Components | None = None,
        compute: Callable[[], Components] | None = None,
        *,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.value = value
        self._components = components
        self._compute = compute
        #: The files it was computed from (a stale task's fingerprint only).
        self.snapshot = snapshot

    @property
    def components(self) -> Components:
        if self._components is None:
            assert self._compute is not None, "a Fingerprint needs components or a way to them"
            self._components = self._compute()
        return self._components
