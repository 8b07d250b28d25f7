"""The field readings several concerns share (addon/http/fields.py): one definition each."""

from __future__ import annotations

import pytest

from addon.cache.key import cache_key
from addon.config.parameters import CacheKey
from addon.config.parameters import CacheParameters
from addon.http.fields import cookies
from addon.http.fields import extension
from addon.http.fields import media_type
from addon.http.messages import Request
from tests.conftest import evaluate


@pytest.mark.parametrize(("path", "ext"), [
    (b"/foo", b""), (b"/.mp3", b""), (b"/.foo.mp3", b"mp3"), (b"/foo.tar.bz2", b"bz2"),
    (b"/foo.", b""), (b"/foo.MP3", b"mp3"), (b"/a.b/c", b""), (b"/x.css?v=1.2", b"css"),
    (b"/\xc3\x89T\xc3\x89.CSS", b"css"),
])
def test_extension_follows_the_documented_field(path, ext):
    # facts 6.2: the same reading for the Rules language and for default caching
    assert extension(path) == ext


def test_the_rules_field_and_the_cache_read_the_extension_alike():
    from addon.cache.settings import cache_settings
    assert evaluate('http.request.uri.path.extension eq "css"', Request(target="/a/B.CSS"))
    assert cache_settings("GET", "/a/B.CSS?x=1", CacheParameters(), "pro").eligible


@pytest.mark.parametrize(("value", "jar"), [
    (b"a=1; b=2", {"a": [b"1"], "b": [b"2"]}),
    (b"a=1;a=2", {"a": [b"1", b"2"]}),
    (b"flag; =x; c=", {"c": [b""]}),
    (b"%6Eame=v", {"name": [b"v"]}),
    (None, {}),
])
def test_cookies(value, jar):
    assert cookies(value) == jar


def test_the_cache_key_and_the_rules_field_read_cookies_alike():
    headers = ((b"Cookie", b"%6Cang=fr; lang=en"),)
    key = cache_key("https", "example.com", "/a.css", headers,
                    CacheKey(cookie_include=("lang",)))
    assert "cookie lang=fr" in key  # the first value, the name read as the field reads it
    assert evaluate('http.request.cookies["lang"][0] eq "fr"', Request(headers=headers))


def test_media_type():
    assert media_type(b"Text/HTML ; charset=utf-8") == b"text/html"
    assert media_type(None) == b""
