"""What a script did wrong, and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SieveError:
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class SieveSyntaxError(ValueError):
    """compile() found errors; .errors lists them all."""

    def __init__(self, errors: list[SieveError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(error) for error in self.errors))


class SieveRuntimeError(Exception):
    """The script failed while running: the message is kept (implicit keep)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        self.error = SieveError(line, column, message)
        super().__init__(str(self.error))
