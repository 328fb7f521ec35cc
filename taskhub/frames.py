"""Templates rendered once with a mark in place of each value, then filled for every use.

A page that is the same for thousands of records but for a few dozen values spends most of its
rendering in the template engine's lookups, tags and translations, each time. A `Frame` is such a
template rendered once (per language and whatever else its markup depends on) with a context in
which `fill.<name>` stands for a mark; filling it puts each value in its mark's place, escaped
as the template engine would have escaped it (safe strings as they are).

What a frame may depend on besides its marks must be in the key it is kept under; a template
that branches on a value must get that value as a real one (and the key with it), never as a
mark. Frames are kept per process, a bounded number, and not at all while DEBUG is on, so that
an edited template shows at once.
"""

import html
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

MARK = "\x00"  # around a value's name in a frame; nothing a template renders of its own contains it


def mark(name: str) -> SafeString:
    """What stands for the value `name` in a frame."""
    return mark_safe(f"{MARK}{name}{MARK}")  # noqa: S308 - a name, no markup


class Marks(dict):
    """The template's `fill`: `fill.title` renders as the mark of "title"."""

    def __missing__(self, name: str) -> SafeString:
        return mark(name)


class Frame:
    """Markup with named gaps; `fill(values)` is the markup with each value escaped into its gaps."""

    __slots__ = ("names", "texts")

    def __init__(self, markup: str) -> None:
        parts = markup.split(MARK)
        if len(parts) % 2 == 0:
            raise ValueError("a mark in the frame is cut off")
        self.texts, self.names = parts[0::2], parts[1::2]

    def fill(self, values: Mapping[str, Any]) -> SafeString:
        """Raises KeyError for a gap `values` does not fill: a page never goes out with a mark in it."""
        texts = self.texts
        out = [texts[0]]
        for name, text in zip(self.names, texts[1:], strict=True):
            value = values[name]
            # Django's `escape` of a plain string, without its check for lazy arguments (a page fills dozens)
            out.append(html.escape(value) if type(value) is str else conditional_escape(value))
            out.append(text)
        return mark_safe("".join(out))  # noqa: S308 - the template's markup and escaped values


class Frames:
    """Frames kept per process under keys that name everything their markup depends on."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.kept: dict[Hashable, Frame] = {}
        self.lock = threading.Lock()

    def get(self, key: Hashable, template_name: str, context: Callable[[], dict[str, Any]]) -> Frame:
        """The frame of `template_name` under `key`, rendered with `context()` and `fill` the first time."""
        found = self.kept.get(key)
        if found is None:
            found = Frame(render_to_string(template_name, {**context(), "fill": Marks()}))
            if not settings.DEBUG:
                with self.lock:
                    if len(self.kept) >= self.size:
                        self.kept.clear()  # keys go stale as organizations change their look; start over
                    self.kept[key] = found
        return found

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()
