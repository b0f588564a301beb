"""Reports: self-contained HTML pages (inline CSS, base64 figures and images)."""

from .html import HtmlReport

__all__ = ["HtmlReport"]
