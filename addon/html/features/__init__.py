"""The HTML features, found by looking: every module here defines FEATURE (a FeatureSpec).

Adding a feature is adding its module (and its assets and tests); the zone's settings,
the rules-file schema, the rewrite and /cdn-cgi/ read this registry.
"""

from __future__ import annotations

import importlib
import pkgutil

from addon.html.feature import FeatureSpec


def _discover() -> dict[str, FeatureSpec]:
    specs = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        spec = getattr(module, "FEATURE", None)
        if not isinstance(spec, FeatureSpec):
            raise TypeError(f"{module.__name__} defines no FEATURE = FeatureSpec(...)")
        specs.append(spec)
    return {s.name: s for s in sorted(specs, key=lambda s: s.order)}


FEATURES: dict[str, FeatureSpec] = _discover()
