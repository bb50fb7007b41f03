"""XSS payloads for tests/ui/test_xss.py. Each one, if it ever ran, would set `window.__xss`, open a dialog or
fetch a foreign origin (evil.example): the browser fixtures record all three."""

from __future__ import annotations

PAYLOADS: list[str] = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    '"><svg onload=window.__xss=1>',
    "'><img src=x onerror=alert(1)>",
    "javascript:window.__xss=1",
    "</textarea><script>alert(1)</script>",
    "</pre></code><img src=x onerror=alert(2)>",
    "{{7*7}} ${7*7} <%= 7*7 %> {{constructor.constructor('window.__xss=1')()}}",
    '<a href="javascript:alert(3)">click</a>',
    '<iframe srcdoc="<script>parent.__xss=1</script>"></iframe>',
    '<style>@import "http://evil.example/x.css";</style><link rel=stylesheet href=//evil.example/y.css>',
    '<img src="http://evil.example/pixel.png">',
    "<!--<img src=x onerror=alert(4)>-->",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(5)>",
    "\u202e<b onmouseover=alert(6)>gnp.exe \u200b\ufeff",
    '<details open ontoggle="window.__xss=1">',
    "<object data=\"javascript:alert(7)\"></object><embed src='javascript:alert(8)'>",
]

# Header values are bytes on the wire: ASCII payloads go as they are, others as UTF-8.
HEADER_PAYLOADS: list[bytes] = [p.encode("utf-8") for p in PAYLOADS]

# Header names must be HTTP tokens: these are the nastiest tokens that still parse.
HEADER_NAMES: list[bytes] = [b"x-'&`|~^!#$%*+.", b"x-%3cscript%3e", b"javascript"]

# Marks that must appear as visible text wherever payloads are rendered.
VISIBLE_MARKS: list[str] = ["<script>window.__xss=1</script>", '"><svg onload=window.__xss=1>', "{{7*7}}"]

XML_BODY = (
    '<?xml version="1.0"?>\n'
    '<?xml-stylesheet type="text/xsl" href="http://evil.example/x.xsl"?>\n'
    '<root xmlns:h="http://www.w3.org/1999/xhtml" attr="&lt;script&gt;window.__xss=1&lt;/script&gt;">'
    '<h:script>window.__xss=1</h:script>'
    '<h:img src="x" onerror="window.__xss=1"/>'
    "<![CDATA[<script>window.__xss=1</script>]]>"
    "<!-- <img src=x onerror=alert(9)> -->"
    "<text>{{7*7}} &lt;svg onload=alert(10)&gt;</text>"
    "</root>"
)

HTML_BODY = (
    "<!doctype html><html><head><script>window.__xss=1;alert('html')</script>"
    '<meta http-equiv="refresh" content="0;url=javascript:alert(11)"></head>'
    "<body onload=\"window.__xss=1\"><img src=x onerror=alert(12)>{{7*7}}</body></html>"
)

SVG_BODY = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10" '
    'onload="window.__xss=1"><script>alert(13)</script>'
    '<image href="http://evil.example/i.png" width="5" height="5"/>'
    '<foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" src="javascript:alert(14)"></iframe>'
    "</foreignObject>"
    '<rect width="10" height="10" fill="red"/></svg>'
)
