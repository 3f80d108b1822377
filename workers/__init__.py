"""`recorder-worker`: stores finished recordings in S3 or Cloudflare Stream (docs/operations.md)."""
