"""The HTML features (facts 3): which apply to a response, and the rewrite itself.

Each feature is one module in `features/` declaring a FeatureSpec (see feature.py); the
rewrite (rewrite.py) runs the ones on for a response over the document in one pass of
the engine (engine.py, lol-html).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from addon.html import charset
from addon.html.feature import HTML_TYPES
from addon.html.feature import FeatureSpec
from addon.html.feature import HtmlJob
from addon.html.features import FEATURES
from addon.html.rewrite import RewriteError
from addon.html.rewrite import RewriteResult
from addon.html.rewrite import StreamRewrite
from addon.html.rewrite import rewrite

__all__ = ["FEATURES", "HTML_TYPES", "FeatureSpec", "HtmlJob", "RewriteError",
           "RewriteResult", "StreamRewrite", "active_features", "charset", "labels", "rewrite"]


def active_features(settings: Mapping[str, Any], media_type: str, plan: str) -> tuple[str, ...]:
    """The features on for this request that rewrite a body of this media type."""
    return tuple(name for name, spec in FEATURES.items()
                 if settings.get(name) and spec.applies(media_type, plan))


def labels(names: tuple[str, ...]) -> str:
    """`Email Obfuscation, Rocket Loader` for the log."""
    return ", ".join(FEATURES[n].label for n in names)
