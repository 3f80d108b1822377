"""The HTTP edge: control API, WHIP ingest, health, metrics and the OpenAPI document.

Handlers only translate HTTP to calls on a :class:`~recorder.api.service.RecordingsService`
and back; every decision about recordings lives behind that seam.
"""
