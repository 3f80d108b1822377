"""Helpers shared by the tests: real servers and real peers on loopback."""
