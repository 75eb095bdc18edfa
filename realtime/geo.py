"""The country of a client address, looked up in memory at /track from the offline database
the `geoip2fast` package ships (IPv4 and IPv6); only the two-letter code is ever kept.

An address the database does not know (private, reserved, or new), or a database that
failed to load, gives UNKNOWN: the event is counted all the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

UNKNOWN = "ZZ"
DATA_FILE = "geoip2fast-ipv6.dat.gz"  # the package's country file with IPv6 ranges too


@dataclass
class Countries:
    """Loaded once per process (about 0.3 s and 50 MB); a lookup takes microseconds."""

    database: Any = field(default=None, repr=False)

    @classmethod
    def load(cls) -> Countries:
        try:
            from geoip2fast import GeoIP2Fast

            return cls(GeoIP2Fast(verbose=False, geoip2fast_data_file=DATA_FILE))
        except Exception as error:  # any failure means unknown countries
            log.error("country database not loaded, countries will be %s: %s", UNKNOWN,
                      type(error).__name__)
            return cls(None)

    def country(self, address: str) -> str:
        if self.database is None or not address:
            return UNKNOWN
        try:
            code = self.database.lookup(address).country_code
        except Exception:  # a lookup never fails an event
            return UNKNOWN
        return code if isinstance(code, str) and len(code) == 2 and code.isalpha() else UNKNOWN
