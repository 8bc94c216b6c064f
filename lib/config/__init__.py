"""SRS-compatible config: load_config(path) -> Config; ConfigError for any problem.

parser.py: grammar -> Directive tree (file:line). schema.py: whitelist, types, defaults, SRS
legacy transform. sections.py: the typed section classes, generated from schema.py's blocks.
view.py: builds Config / Vhost and their sections. errors.py: ConfigError.
"""

from .errors import ConfigError
from .parser import Directive
from .view import DEFAULT_VHOST, Config, Vhost, load_config, parse_text

__all__ = ["ConfigError", "Config", "Vhost", "Directive", "DEFAULT_VHOST", "load_config", "parse_text"]
