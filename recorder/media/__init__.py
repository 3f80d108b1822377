"""The capture pipeline: decoded frames of a room into a file at a quality preset.

clock (timestamps to media time) -> timeline (shared with the threads) -> video / audio
pipelines (scale, mix, encode in threads) -> writer (one container) ; capture wires them.
"""
