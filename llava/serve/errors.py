"""What can go wrong with a request, as one exception type that carries its HTTP status.

The API turns a ServeError into OpenAI's error body; the web app shows its message. Either way the user reads what
happened (model still loading, image too large, prompt too long), never a generic "network error".
"""

from __future__ import annotations


class ServeError(Exception):
    status = 400
    kind = "invalid_request_error"  # OpenAI's error "type"

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class BadRequest(ServeError):
    pass


class Unauthorized(ServeError):
    status, kind = 401, "authentication_error"


class Forbidden(ServeError):
    status, kind = 403, "permission_error"


class NotFound(ServeError):
    status, kind = 404, "not_found_error"


class TooLarge(ServeError):
    status = 413


class Busy(ServeError):
    status, kind = 429, "rate_limit_error"


class Unavailable(ServeError):
    """The model is still loading, failed to load, or ran out of memory: the request was fine."""

    status, kind = 503, "service_unavailable"
