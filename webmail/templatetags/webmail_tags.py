"""Small template helpers of the webmail."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def icon(name: str, label: str = "") -> str:
    """An icon from the page's SVG sprite (templates/webmail/_icons.html)."""
    if label:
        return format_html(
            '<svg class="icon" role="img" aria-label="{}"><use href="#i-{}"></use></svg>',
            label,
            name,
        )
    return format_html('<svg class="icon" aria-hidden="true"><use href="#i-{}"></use></svg>', name)


@register.filter
def initial(text: str) -> str:
    for char in text or "":
        if char.isalnum():
            return char.upper()
    return "?"


@register.filter
def avatar_hue(text: str) -> int:
    """A stable colour class (0-7) per correspondent."""
    return sum((text or "").encode("utf-8")) % 8
