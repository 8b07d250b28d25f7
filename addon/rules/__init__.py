"""Cloudflare's Rules language: parse, check and evaluate rule expressions.

expr = compile_expression('starts_with(http.request.uri.path, "/static/")')
expr.matches(FieldValues(request_facts))
"""

from addon.rules.compiler import Expression
from addon.rules.compiler import compile_expression
from addon.rules.errors import ExpressionError
from addon.rules.errors import NotEmulatedError
from addon.rules.fields import FieldValues
from addon.rules.schema import FIELDS
from addon.rules.schema import Phase

__all__ = [
    "FIELDS",
    "Expression",
    "ExpressionError",
    "FieldValues",
    "NotEmulatedError",
    "Phase",
    "compile_expression",
]
