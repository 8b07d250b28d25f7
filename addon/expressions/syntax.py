"""The untyped syntax tree of a rule expression (parser.py makes it, compiler.py types and
compiles it). Every node knows where it stands in the source, for errors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    start: int
    end: int


@dataclass(frozen=True)
class BoolLiteral(Node):
    value: bool


@dataclass(frozen=True)
class StringLiteral(Node):
    value: bytes
    raw: bool  # r"..." strings are never unescaped


@dataclass(frozen=True)
class Word(Node):
    """An unquoted literal (integer, IP address, CIDR, range); typed by the compiler."""

    text: str


@dataclass(frozen=True)
class SetLiteral(Node):
    items: tuple[StringLiteral | Word, ...]


@dataclass(frozen=True)
class ListRef(Node):
    name: str


@dataclass(frozen=True)
class FieldRef(Node):
    name: str


@dataclass(frozen=True)
class Call(Node):
    name: str
    name_end: int
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Index(Node):
    base: Node
    key: int | str | None  # None means [*]
    key_start: int


@dataclass(frozen=True)
class Compare(Node):
    lhs: Node
    op: str
    op_start: int
    op_end: int
    rhs: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class Logical(Node):
    op: str  # "and" | "or" | "xor"
    left: Node
    right: Node


# ---- parser ---------------------------------------------------------------------------------
