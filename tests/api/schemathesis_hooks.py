"""Schemathesis hooks for this API: load with SCHEMATHESIS_HOOKS=tests.api.schemathesis_hooks.

WHIP bodies are `application/sdp`, which schemathesis cannot serialize by itself; an SDP offer
is text, so it goes on the wire like text/plain.
"""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias("application/sdp", "text/plain")
