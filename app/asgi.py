"""The ASGI entry point the `web` process serves."""

from app.factory import create_app

app = create_app()
