"""Frames: a template rendered once with marks, filled with escaped values for every use."""

import pytest
from django.template import engines
from django.utils.safestring import mark_safe

from taskhub.frames import Frame, Frames, Marks


def render(source: str, **context) -> str:
    return engines["django"].from_string(source).render({**context, "fill": Marks()})


def test_a_frame_escapes_what_it_is_filled_with_as_the_template_would_have():
    source = '<p title="{{ fill.title }}">{{ fill.body }}</p>{{ fill.markup }}'
    frame = Frame(render(source))
    values = {"title": 'say "hi"', "body": "<script>alert(1)</script> & co", "markup": mark_safe("<b>ok</b>")}
    expected = engines["django"].from_string(source.replace("fill.", "")).render(values)
    assert frame.fill(values) == expected
    body = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
    assert frame.fill(values) == f'<p title="say &quot;hi&quot;">{body}</p><b>ok</b>'


def test_a_frame_fills_numbers_and_a_mark_used_twice():
    frame = Frame(render('<a href="{{ fill.url }}"><img src="{{ fill.url }}"></a> v{{ fill.version }}'))
    filled = frame.fill({"url": "/x?a=1&b=2", "version": 7})
    assert filled == '<a href="/x?a=1&amp;b=2"><img src="/x?a=1&amp;b=2"></a> v7'


def test_a_value_left_out_fails_rather_than_leave_a_mark_in_the_page():
    frame = Frame(render("{{ fill.one }} {{ fill.two }}"))
    with pytest.raises(KeyError):
        frame.fill({"one": "1"})


def test_markup_with_a_cut_off_mark_is_refused():
    with pytest.raises(ValueError, match="cut off"):
        Frame("<p>\x00title</p>")


def test_frames_are_rendered_once_per_key_and_bounded(settings):
    settings.DEBUG = False
    rendered = []

    def context(word):
        return lambda: rendered.append(word) or {"word": word}

    frames = Frames(size=2)
    for word in ("a", "a", "b", "a"):
        assert frames.get(word, "tracker/entry.html", context(word)) is frames.get(word, "tracker/entry.html", dict)
    assert rendered == ["a", "b"]
    frames.get("c", "tracker/entry.html", context("c"))  # a third key: the kept ones are let go
    frames.get("a", "tracker/entry.html", context("a"))
    assert rendered == ["a", "b", "c", "a"]


def test_frames_are_not_kept_while_debug_is_on(settings):
    settings.DEBUG = True
    rendered = []
    frames = Frames()
    for _ in range(2):
        frames.get("key", "tracker/entry.html", lambda: rendered.append(1) or {})
    assert rendered == [1, 1]
