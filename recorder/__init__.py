"""Recorder: a daemon that records WebRTC rooms."""
