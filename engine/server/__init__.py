"""The hosted server: the studio service over HTTP, with API keys (``wfstudio serve``)."""

from engine.server.app import API_PREFIX, API_VERSION, create_app
from engine.server.keys import SCOPES, ApiKey, KeyStore, NewApiKey

__all__ = ["API_PREFIX", "API_VERSION", "SCOPES", "ApiKey", "KeyStore", "NewApiKey",
           "create_app"]
