"""The staff console: an aiohttp web application served by ``filterdns serve`` next to DNS.

It reaches the resolver only through ``filterdns.server.control.Control`` and the database
only through ``control.store``. Start it with ``start_web``; tests build it with
``create_app``.
"""

from filterdns.web.app import create_app, start_web
from filterdns.web.common import WebSettings

__all__ = ["WebSettings", "create_app", "start_web"]
