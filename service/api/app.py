"""ASGI entry point for uvicorn: ``uvicorn service.api.app:app``."""

from service.api.main import create_app
from service.memory import bound_malloc

bound_malloc()  # before the first upload: large decode buffers go back to the OS when freed
app = create_app()
