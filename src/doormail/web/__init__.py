"""The FastAPI application: API routers, the settings UI and authentication."""
