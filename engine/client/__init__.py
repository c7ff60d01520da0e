"""The studio service over HTTP: ``RemoteService`` talks to a hosted ``wfstudio serve``."""

from engine.client.remote import API_VERSION, IncompatibleServer, RemoteService

__all__ = ["API_VERSION", "IncompatibleServer", "RemoteService"]
