"""jq's common subset evaluated in Python (see compile.py), with libjq for the rest."""

from engine.jq.compile import compile_tree
from engine.jq.lexer import Unsupported
from engine.jq.parser import parse
from engine.jq.values import JqError, result

__all__ = ["JqError", "Unsupported", "compile_tree", "parse", "result"]
