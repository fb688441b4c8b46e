"""Bridges to other frameworks; each submodule imports its framework only when used."""
