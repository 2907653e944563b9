"""Calls to Mistral (or a self-hosted Mistral-compatible server): the one retry policy (retry.py), the SDK's
calls (mistral.py), the keys from Secrets Manager, server-sent events, and what an SDK refusal means."""
