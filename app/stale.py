"""Latest request wins: drop the answers of asynchronous requests that a newer one replaced.

A pane that asks the service for something (a list, a detail, a stream) takes a token from its
:class:`Generation` before the request and checks it when the answer arrives: any newer request
(or :meth:`Generation.invalidate`, e.g. on a service switch) makes older tokens stale, so a slow
answer never overwrites a newer one. Qt-free.
"""

from __future__ import annotations

from typing import NewType

Token = NewType("Token", int)


class Generation:
    """A counter of requests: :meth:`next` starts one, :meth:`is_current` tells if it is still the latest."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value = 0

    def next(self) -> Token:
        """A token for a new request; every earlier token becomes stale."""
        self._value += 1
        return Token(self._value)

    def invalidate(self) -> None:
        """Make every outstanding token stale (nothing new is requested)."""
        self._value += 1

    @property
    def token(self) -> Token:
        """The latest token, for a follow-up request that belongs to the same generation."""
        return Token(self._value)

    def is_current(self, token: Token) -> bool:
        return token == self._value

    def __repr__(self) -> str:
        return f"Generation({self._value})"
