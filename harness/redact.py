"""Redaction of secrets in DSNs: passwords never reach reports, results.json or logs."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")
_KEYVALUE = re.compile(r"(?i)\b(password|passwd|pwd)=([^\s&;]+)")


def redact(text: str) -> str:
    """Replace passwords in DSNs (``scheme://user:pw@host``, ``password=pw``) with ``***``."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _KEYVALUE.sub(lambda m: f"{m.group(1)}=***", text)
