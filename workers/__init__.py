"""`recorder-worker`: stores finished recordings in S3 or Cloudflare Stream (SPEC section 8)."""
