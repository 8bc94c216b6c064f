"""ConfigError: every problem with a config file, with where it happened.

Rule: str(error) is `FILE:LINE: message` (or `FILE: message` when there is no line, e.g. an
unreadable file). `.file`, `.line` and `.path` (dotted directive path such as
`vhost.cluster.origin`, or None) are kept as attributes for callers that want them.
"""


from lib.errors import SrsEdgeError


class ConfigError(SrsEdgeError):
    def __init__(self, message, file=None, line=None, path=None):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.path = path

    def __str__(self):
        if self.file is None:
            return self.message
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"
