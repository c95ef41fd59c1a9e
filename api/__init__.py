"""The REST API of Distillery (FastAPI): `api.main.create_app` builds it."""
