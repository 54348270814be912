"""ASGI entrypoint for uvicorn: `uvicorn broadcast.api.asgi:app`."""

import gc

from broadcast.api.app import create_app
from broadcast.db import get_engine
from broadcast.logs import configure_logging
from broadcast.settings import get_settings
from broadcast.subscribers import warm

configure_logging(get_settings())
app = create_app()
# The composer's reach estimates read the warm subscriber index: load it now, not on the first request.
warm.prewarm(get_engine(get_settings().resolved_database_url))

# What start-up loaded (modules, routes, schemas, settings: ~300,000 objects) lives as long as the process. Freezing
# it keeps the cyclic collector from walking it on every full collection: under a report spike those pauses were
# ~150 ms each, several per 10 s, and made the whole p99 (measured with benchmarks/inbound.py).
gc.freeze()
