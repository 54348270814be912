"""ASGI entrypoint for uvicorn: `uvicorn broadcast.api.asgi:app`."""

from broadcast.api.app import create_app
from broadcast.logs import configure_logging
from broadcast.settings import get_settings

configure_logging(get_settings())
app = create_app()
