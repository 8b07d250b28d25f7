"""The Rules-language engine: every operator, function, field and error (issue 2)."""

from __future__ import annotations

import pytest

from addon.expressions import ExpressionError
from addon.expressions import FieldValues
from addon.expressions import NotEmulatedError
from addon.expressions import Phase
from addon.expressions import compile_expression
from addon.expressions.fields import normalize_path
from addon.http.messages import Request
from tests.conftest import REQUEST
from tests.conftest import evaluate

# ---- comparison operators, both spellings ----


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('http.host eq "www.example.com"', True),
        ('http.host == "www.example.com"', True),
        ('http.host eq "WWW.example.com"', False),  # case-sensitive
        ('http.host ne "other"', True),
        ('http.host != "www.example.com"', False),
        ("http.response.code lt 300", True),
        ("http.response.code < 200", False),
        ("http.response.code le 200", True),
        ("http.response.code <= 199", False),
        ("http.response.code gt 199", True),
        ("http.response.code > 200", False),
        ("http.response.code ge 200", True),
        ("http.response.code >= 201", False),
        ('http.host lt "xyz"', True),
        ('http.user_agent contains "Test"', True),
        ('http.user_agent contains "test"', False),
        ('http.host matches "^www\\.example"', True),
        ('http.host ~ "example\\.org$"', False),
        ('http.host wildcard "*.EXAMPLE.com"', True),  # case-insensitive
        ('http.host wildcard "*.example"', False),  # whole value must match
        ('http.host strict wildcard "*.example.com"', True),
        ('http.host strict wildcard "*.EXAMPLE.com"', False),  # case-sensitive
        (r'http.host wildcard r"www\*"', False),  # escaped star is literal
        ('http.host in {"a.com" "www.example.com"}', True),
        ('http.host in {"a.com"}', False),
        ("http.response.code in {100..199 200}", True),
        ("http.response.code in {300..399}", False),
        ("ip.src in {192.0.2.0/24}", True),
        ("ip.src in {192.0.2.1..192.0.2.9}", False),
        ("ip.src in {192.0.2.1..192.0.2.19}", True),
        ("ip.src in {2001:db8::/32}", False),
        ("ip.src eq 192.0.2.10", True),
        ("ip.src ne 192.0.2.10", False),
        ("http.response.code eq 0xc8", True),
        ('http.host eq http.host', True),
    ],
)
def test_comparison_operators(expression, expected):
    assert evaluate(expression) is expected


# ---- logical operators, precedence, bare booleans, literals ----


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("ssl", True),
        ("not ssl", False),
        ("!ssl", False),
        ("not not ssl", True),
        ("true", True),
        ("false", False),
        ("ssl and false", False),
        ("ssl && true", True),
        ("false or ssl", True),
        ("false || false", False),
        ("ssl xor ssl", False),
        ("ssl ^^ false", True),
        # not > and > xor > or
        ("true or true and false", True),
        ("(true or true) and false", False),
        ("true xor true or true", True),
        ("true xor (true or true)", False),
        ("false and false xor true", True),
        ("not false and false", False),
        ("not (false and false)", True),
    ],
)
def test_logical_operators_and_precedence(expression, expected):
    assert evaluate(expression) is expected


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', b'a"b'),
        (r'"a\\b"', b"a\\b"),
        (r'"\x41\102"', b"AB"),
        (r'r"a\b"', b"a\\b"),
        (r'r#"say "hi""#', b'say "hi"'),
        (r'r###"a"##b"###', b'a"##b'),
    ],
)
def test_string_literals(literal, value):
    request = Request(headers=((b"X-Test", value),))
    assert evaluate(f'http.request.headers["x-test"][0] eq {literal}', request)


# ---- fields ----


@pytest.mark.parametrize(
    ("expression"),
    [
        'http.request.method eq "GET"',
        'http.request.version eq "HTTP/2"',
        'http.request.uri eq "/static/app.CSS?x=1&y=%41"',
        'http.request.uri.path eq "/static/app.CSS"',
        'http.request.uri.path.extension eq "css"',
        'http.request.uri.query eq "x=1&y=%41"',
        'http.request.full_uri eq "https://www.example.com/static/app.CSS?x=1&y=%41"',
        'raw.http.request.uri eq "/static/a%2Db/../app.CSS?x=1&y=%41"',
        'raw.http.request.uri.path eq "/static/a%2Db/../app.CSS"',
        'raw.http.request.uri.path.extension eq "css"',
        'raw.http.request.uri.query eq "x=1&y=%41"',
        'raw.http.request.full_uri eq "https://www.example.com/static/a%2Db/../app.CSS?x=1&y=%41"',
        'http.request.headers["accept"][1] eq "application/json"',
        'any(http.request.headers.names[*] eq "User-Agent")',
        'any(http.request.headers.values[*] eq "gzip, br")',
        "not http.request.headers.truncated",
        'http.cookie contains "theme=dark"',
        'http.request.cookies["theme"][0] eq "dark"',
        'http.request.cookies["b c"][0] eq "1"',
        'http.user_agent eq "Mozilla/5.0 Test"',
        'http.referer eq "https://ref.example/"',
        'http.x_forwarded_for eq "203.0.113.9"',
        "ip.src in {192.0.2.0/24}",
        "ssl",
        "http.response.code eq 200",
        'http.response.headers["etag"][0] eq "\\"v1\\""',
        'any(http.response.headers.names[*] eq "ETag")',
        'any(http.response.headers.values[*] contains "charset")',
        'http.response.content_type.media_type eq "text/html"',
        "not http.response.headers.truncated",
    ],
)
def test_fields(expression):
    assert evaluate(expression)


def test_url_normalization():
    assert normalize_path(b"/a//b/./c/../d%7e%2F") == b"/a/b/d~%2F"
    assert normalize_path(b"\\x\\y") == b"/x/y"


def test_missing_header_fields_are_empty_and_missing_keys_make_comparisons_false():
    bare = Request(headers=())
    assert evaluate('http.referer eq ""', bare)
    assert not evaluate('http.request.headers["x"][0] eq ""', bare)
    assert not evaluate('http.request.headers["x"][0] ne "y"', bare)
    assert evaluate('not http.request.headers["x"][0] eq "y"', bare)
    assert not evaluate('http.request.headers.names[99] eq "x"', bare)


# ---- indexing and functions ----


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('any(http.request.headers["accept"][*] contains "json")', True),
        ('all(http.request.headers["accept"][*] contains "json")', False),
        ('all(http.request.headers["accept"][*] contains "/")', True),
        ('any(not http.request.headers["accept"][*] contains "json")', True),
        ('any(http.request.headers[*][0] eq "gzip, br")', True),
        ('any(starts_with(http.request.headers.names[*], "X-"))', True),
        ('any(lower(http.request.headers.names[*])[*] eq "user-agent")', True),
        ('starts_with(http.request.uri.path, "/static/")', True),
        ('ends_with(http.request.uri.path, ".CSS")', True),
        ('ends_with(http.request.uri.path, ".css")', False),
        ('lower(http.request.uri.path) eq "/static/app.css"', True),
        ('upper(http.request.method) eq "GET"', True),
        ('lower(http.host) eq "www.example.com"', True),
        ("len(http.host) eq 15", True),
        ("len(http.request.headers.names) eq 8", True),
        ('concat(http.host, "/", http.request.method) eq "www.example.com/GET"', True),
        ('concat(http.request.headers["accept"], http.request.headers["accept"])[3] eq '
         '"application/json"', True),
        ('substring(http.host, 4) eq "example.com"', True),
        ('substring(http.host, 0, 3) eq "www"', True),
        ('substring(http.host, -3) eq "com"', True),
        ('url_decode(http.request.uri.query) eq "x=1&y=A"', True),
        ('url_decode(raw.http.request.uri.path) contains "a-b"', True),
    ],
)
def test_functions(expression, expected):
    assert evaluate(expression) is expected


def test_url_decode_options_and_non_ascii():
    req = Request(target="/?q=%2541+b%u00e9")
    assert evaluate('url_decode(http.request.uri.query) eq "q=%41 b%u00e9"', req)
    assert evaluate('url_decode(http.request.uri.query, "r") eq "q=A b%u00e9"', req)
    assert evaluate('url_decode(http.request.uri.query, "ur") eq "q=A b\\xc3\\xa9"', req)
    # lower() is ASCII-only, len() counts bytes
    req = Request(headers=((b"X", "ÀB".encode()),))
    assert evaluate('lower(http.request.headers["x"][0]) eq "\\xc3\\x80b"', req)
    assert evaluate('len(http.request.headers["x"][0]) eq 3', req)


def test_regex_is_linear_time_re2():
    # catastrophic for a backtracking engine, instant for RE2
    req = Request(headers=((b"X", b"a" * 5000 + b"!"),))
    assert not evaluate('http.request.headers["x"][0] matches "^(a+)+$"', req)


# ---- errors a user can act on ----


@pytest.mark.parametrize(
    ("expression", "message", "column", "hint"),
    [
        ('http.hots eq "x"', "unknown field `http.hots`", 1, "did you mean `http.host`"),
        ("lowr(http.host) eq \"x\"", "unknown function `lowr()`", 1, "did you mean `lower()`"),
        ('http.response.code contains "2"', "operator `contains` needs a String", 20,
         "integers and IP addresses"),
        ('http.host eq 200', "expected a quoted string", 14, 'write "200"'),
        ('http.response.code eq "200"', "expected an Integer, not a string", 23, "without quotes"),
        ("ssl eq true", "cannot be used on a Boolean", 5, "ssl` or `not ssl"),
        ('http.request.headers["a"][*] eq "x"', "`[*]` can only be used inside a function", 26,
         "any(...)"),
        ('any(starts_with(http.host, http.request.headers.names[*]))',
         "`[*]` is only allowed in a function's first argument", 54, ""),
        ('http.host EQ "a"', "operator `EQ` must be lowercase", 11, "write `eq`"),
        ('ssl AND ssl', "operator `AND` must be lowercase", 5, "write `and`"),
        ('NOT ssl', "operator `NOT` must be lowercase", 1, "write `not`"),
        ('http.host eq "abc', "unterminated string", 14, 'close the string'),
        ('http.host eq r#"abc"', "unterminated raw string", 14, 'close it with `"#`'),
        ('http.host eq example.com', "unknown field `example.com`", 14,
         'quote it: "example.com"'),
        ('http.host in {"a", "b"}', "unexpected `,` in set", 18, "separated by spaces"),
        ('http.host matches "(a)\\1"', "invalid regular expression", 19, "no backreferences"),
        ('http.host matches "(?=a)"', "invalid regular expression", 19, "look-around"),
        ('http.host wildcard "a**"', "may not contain `**`", 20, ""),
        ('http.host eq "\\n"', "invalid escape", 15, "raw string"),
        ("http.host", "expected a Boolean, but this is a String", 1, "compare it"),
        ('lower("A") eq "a"', "must be a field or a function, not a literal", 7, ""),
        ('substring(http.host) eq "a"', "takes 2 to 3 argument(s), got 1", 1, ""),
        ('http.request.headers["a"] eq "b"', "cannot be used on an Array<String>", 27, "any(x[*]"),
        ("http.response.code in {200..100}", "incompatible range bounds", 24, ""),
        ("ip.src eq 10.0.0.0/8", "is not an IP address", 11, "in a set"),
        ('http.host ends_with "x"', "`ends_with` is not an operator", 11, "function form"),
        ("(ssl", "expected `)`", 5, ""),
        ("ssl ssl", "expected `and`, `or`, `xor`", 5, ""),
        ("", "expression is empty", 1, "write `true`"),
    ],
)
def test_errors_have_position_caret_and_hint(expression, message, column, hint):
    with pytest.raises(ExpressionError) as info:
        compile_expression(expression, Phase.RESPONSE)
    e = info.value
    assert message in e.message
    assert (e.line, e.column) == (1, column), str(e)
    assert hint in e.hint
    text = str(e)
    assert f"(line 1, column {column})" in text
    caret_line = text.split("\n")[2]
    assert caret_line.index("^") - 4 == column - 1


def test_response_field_in_request_phase_is_rejected():
    with pytest.raises(ExpressionError) as info:
        compile_expression("http.response.code eq 200", Phase.REQUEST)
    assert "response field" in info.value.message
    assert "compression rules" in info.value.hint
    compile_expression("http.response.code eq 200", Phase.RESPONSE)


def test_expression_over_4096_characters_is_rejected():
    clause = 'http.host eq "a" or '
    long = clause * (4096 // len(clause) + 1) + "ssl"
    assert len(long) > 4096
    with pytest.raises(ExpressionError, match="at most 4096"):
        compile_expression(long)
    fits = clause * ((4096 - 3) // len(clause)) + "ssl"
    compile_expression(fits)


def test_error_position_on_a_later_line():
    with pytest.raises(ExpressionError) as info:
        compile_expression('ssl\n  and http.hots eq "x"')
    assert (info.value.line, info.value.column) == (2, 7)


@pytest.mark.parametrize(
    "expression",
    ['ip.src.country eq "US"', 'regex_replace(http.host, "a", "b") eq "x"', "http.host in $list"],
)
def test_valid_cloudflare_syntax_outside_the_emulated_subset(expression):
    with pytest.raises(NotEmulatedError):
        compile_expression(expression)


def test_fields_used_are_reported():
    e = compile_expression('http.host eq "a" and starts_with(http.request.uri.path, "/x")')
    assert e.fields == {"http.host", "http.request.uri.path"}
    assert e.matches(FieldValues(REQUEST)) is False
