"""The one error type a client ever sees: a 4xx naming the field that was wrong."""


class RequestError(Exception):
    """A request we refuse; `field` names the part of the request at fault."""

    def __init__(self, field: str, message: str, code: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = f"{field}: {message}"
        self.code = code

    @property
    def type(self) -> str:
        return {400: "BadRequest", 413: "PayloadTooLarge", 503: "ServiceUnavailable"}.get(
            self.code, "Error"
        )

    def to_json(self) -> dict:
        return {"code": self.code, "type": self.type, "message": self.message, "field": self.field}
