"""The types of the Rules language and the phases rules run in (facts 7.2)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Type:
    kind: str  # "bytes" | "int" | "bool" | "ip" | "array" | "map"
    inner: Type | None = None

    def __str__(self) -> str:
        names = {"bytes": "String", "int": "Integer", "bool": "Boolean", "ip": "IP address"}
        if self.kind == "array":
            return f"Array<{self.inner}>"
        if self.kind == "map":
            return f"Map<{self.inner}>"
        return names[self.kind]


BYTES = Type("bytes")
INT = Type("int")
BOOL = Type("bool")
IP = Type("ip")


def array(t: Type) -> Type:
    return Type("array", t)


def map_of(t: Type) -> Type:
    return Type("map", t)


class Phase(Enum):
    """Where a rule runs; response phases also see `http.response.*` fields."""

    REQUEST = "request"
    RESPONSE = "response"
