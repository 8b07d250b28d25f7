from __future__ import annotations

import pytest

from addon.expressions import FieldValues
from addon.expressions import Phase
from addon.expressions import compile_expression
from addon.http.messages import Request
from addon.http.messages import Response

REQUEST = Request(
    method="GET",
    scheme="https",
    host="www.example.com",
    target="/static/a%2Db/../app.CSS?x=1&y=%41",
    http_version="HTTP/2.0",
    headers=(
        (b"Host", b"www.example.com"),
        (b"Accept-Encoding", b"gzip, br"),
        (b"Accept", b"text/html"),
        (b"Accept", b"application/json"),
        (b"Cookie", b"session=abc; theme=dark; b%20c=1"),
        (b"User-Agent", b"Mozilla/5.0 Test"),
        (b"Referer", b"https://ref.example/"),
        (b"X-Forwarded-For", b"203.0.113.9"),
    ),
    client_ip="192.0.2.10",
)
RESPONSE = Response(
    status=200,
    headers=((b"Content-Type", b"text/HTML; charset=utf-8"), (b"ETag", b'"v1"')),
    body=b"<html></html>",
)


def evaluate(expression: str, request: Request = REQUEST,
             response: Response | None = RESPONSE) -> bool:
    return compile_expression(expression, Phase.RESPONSE).matches(FieldValues(request, response))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "e2e" in item.path.parts:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def ev():
    return evaluate
