"""The one HTML escaping helper of kgpipe's pages (the run report and the explorer): every label, id and text
that comes from data goes through it, quotes included, so it is safe in element content and in attributes."""

from __future__ import annotations

import html
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
