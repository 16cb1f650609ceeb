"""WSGI and ``flask --app app`` entry point."""

from pdm_records import create_app

app = create_app()
