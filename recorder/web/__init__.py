"""The browser page served at ``/``: plain HTML, one script and one stylesheet, no build step.

The files are package data so that an installed wheel (and the Docker image) serves them.
"""
