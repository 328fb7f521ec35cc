"""Twilio's request signature: base64(HMAC-SHA1(auth token, URL + sorted POST parameters))."""

import base64
import hashlib
import hmac
from collections.abc import Iterable


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """What Twilio puts in X-Twilio-Signature for a POST of `params` to `url`."""
    payload = url + "".join(name + value for name, value in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]], received: str) -> bool:
    if not auth_token or not received:
        return False
    return hmac.compare_digest(signature(auth_token, url, params), received)
