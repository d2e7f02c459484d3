"""`modules`: the Python modules dbt exposes to Jinja that the macros use."""

import re  # noqa: F401 - read by the macros as modules.re
