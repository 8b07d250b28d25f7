"""`make bench`: Rules-language evaluation cost, as ratios against a baseline in this run.

Reports the median time to evaluate a typical 3-clause expression and a 50-rule file
against one request, next to a baseline (a dict lookup and comparison, the floor for any
field test in Python) measured the same way in the same process.
"""

from __future__ import annotations

import statistics
import time

from addon.facts import RequestFacts
from addon.rules import FieldValues
from addon.rules import Phase
from addon.rules import compile_expression
from addon.rulesfile import parse_rules

REQUEST = RequestFacts(
    method="GET", scheme="https", host="www.example.com", target="/static/js/app.min.js?v=3",
    headers=((b"Host", b"www.example.com"), (b"Accept-Encoding", b"gzip, br, zstd"),
             (b"User-Agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/140"),
             (b"Cookie", b"session=abc123; theme=dark")),
    client_ip="192.0.2.10",
)
THREE_CLAUSES = ('http.host eq "www.example.com" and starts_with(http.request.uri.path, '
                 '"/static/") and http.request.uri.path.extension in {"js" "css" "png"}')


def median_ns(fn, repeat: int = 2000, inner: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - t) / inner)
    return statistics.median(samples)


def fifty_rules() -> str:
    templates = [
        'http.host eq "site{n}.example.com"',
        'starts_with(http.request.uri.path, "/section{n}/")',
        'http.request.uri.path.extension in {{"ext{n}" "js{n}"}}',
        'any(http.request.headers["accept-encoding"][*] contains "enc{n}")',
        'http.request.uri.path matches "^/api/v{n}/"',
        'lower(http.user_agent) contains "bot{n}" and not ssl',
        'http.cookie contains "flag{n}=1" or http.request.method eq "PUT"',
    ]
    rules = []
    for n in range(50):
        expr = templates[n % len(templates)].format(n=n)
        rules.append(f"  - expression: '{expr}'\n    action_parameters: {{cache: true}}\n")
    return "plan: pro\ncache_rules:\n" + "".join(rules)


def main() -> None:
    baseline_values = {"http.host": b"www.example.com"}
    baseline = median_ns(lambda: baseline_values["http.host"] == b"www.example.com")

    expr = compile_expression(THREE_CLAUSES, Phase.REQUEST)
    assert expr.matches(FieldValues(REQUEST))
    three = median_ns(lambda: expr.matches(FieldValues(REQUEST)))

    zone = parse_rules(fifty_rules(), "bench.yaml")
    assert len(zone.cache_rules) == 50
    fifty = median_ns(lambda: zone.matching("cache_rules", FieldValues(REQUEST)), repeat=500)

    t = time.perf_counter()
    parse_rules(fifty_rules(), "bench.yaml")
    load_ms = (time.perf_counter() - t) * 1000

    print(f"baseline (dict lookup + compare)          {baseline / 1000:8.3f} us")
    print(f"3-clause expression, one request          {three / 1000:8.3f} us"
          f"  ({three / baseline:6.1f}x baseline)")
    print(f"50-rule file, one request (all evaluated) {fifty / 1000:8.3f} us"
          f"  ({fifty / baseline:6.1f}x baseline)")
    print(f"compile the 50-rule file once             {load_ms:8.3f} ms")


if __name__ == "__main__":
    main()
