"""ASGI entrypoint for uvicorn: `uvicorn broadcast.api.asgi:app`."""

from broadcast.api.app import create_app

app = create_app()
