"""ASGI entry point for uvicorn: ``uvicorn service.api.app:app``."""

from service.api.main import create_app

app = create_app()
