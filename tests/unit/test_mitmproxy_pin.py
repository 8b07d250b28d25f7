"""What the edge relies on inside mitmproxy, pinned: `make test` runs this file on every
mitmproxy version pyproject.toml allows (Makefile: MITMPROXY_VERSIONS), so a release that
changes it fails here before it reaches a user."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy import version as mitmproxy_version
from mitmproxy.test import tflow

from addon.http.messages import Response
from addon.mitm.convert import stored_response

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", ["HTTP/1.1", "HTTP/2.0"])
def test_a_stored_response_is_what_mitmproxy_would_build(version):
    """stored_response skips ResponseData's type checks for speed; what it builds must stay
    identical to mitmproxy's own constructor (this fails if a mitmproxy release changes it)."""
    flow = tflow.tflow()
    flow.request.http_version = version
    fields = ((b"Content-Type", b"text/css"), (b"ETag", b'"v1"'), (b"Content-Length", b"3"))
    built = stored_response(Response(200, fields, b"abc"), flow)
    h2 = version == "HTTP/2.0"
    reference = http.Response(version.encode(), 200, b"" if h2 else b"OK",
                              tuple((k.lower(), v) for k, v in fields) if h2 else fields,
                              b"abc", None, built.timestamp_start, built.timestamp_end)
    assert built.get_state() == reference.get_state()
    assert http.Response.from_state(built.get_state()).data == built.data


def test_the_checked_versions_are_the_ones_pyproject_allows():
    """Every version the Makefile checks is allowed, and the one installed is checked."""
    from packaging.specifiers import SpecifierSet

    spec = re.search(r'^\s*"mitmproxy([<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text(),
                     re.M)
    listed = re.search(r"^MITMPROXY_VERSIONS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert spec and listed
    allowed = SpecifierSet(spec.group(1))
    versions = listed.group(1).split()
    assert versions and all(v in allowed for v in versions)
    assert mitmproxy_version.VERSION in versions
