"""Cloudflare's Rules language: parse, check and evaluate rule expressions.

expr = compile_expression('starts_with(http.request.uri.path, "/static/")')
expr.matches(FieldValues(request_facts))
"""

from addon.expressions.compiler import Expression
from addon.expressions.compiler import compile_expression
from addon.expressions.errors import ExpressionError
from addon.expressions.errors import NotEmulatedError
from addon.expressions.fields import FIELDS
from addon.expressions.fields import FieldValues
from addon.expressions.schema import Phase

__all__ = [
    "FIELDS",
    "Expression",
    "ExpressionError",
    "FieldValues",
    "NotEmulatedError",
    "Phase",
    "compile_expression",
]
