"""SRS-compatible config: load_config(path) -> Config; ConfigError for any problem.

parser.py: grammar -> Directive tree (file:line). schema.py: whitelist, types, defaults, SRS
legacy transform. view.py: typed Config / Vhost. errors.py: ConfigError.
"""

from .errors import ConfigError
from .parser import Directive
from .view import DEFAULT_VHOST, Config, Vhost, load_config, parse_text

__all__ = ["ConfigError", "Config", "Vhost", "Directive", "DEFAULT_VHOST", "load_config", "parse_text"]
