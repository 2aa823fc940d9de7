"""Keep secrets out of logs and error messages: passwords in connection strings are masked."""

from __future__ import annotations

import re
from typing import Final

_USERINFO: Final = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")
_PARAM_SECRETS: Final = re.compile(r"(?i)(?P<key>(password|secret|token|authmechanismproperties)=)[^&\s]*")


def redact(text: str) -> str:
    """Mask the password of every URI in ``text`` and secret-looking query parameters."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _PARAM_SECRETS.sub(lambda m: f"{m['key']}***", text)
