"""What a request means: the body and headers read at the edge (http.py, limits.py), the request models,
admission without pydantic, the OpenAI dialect, the canonical form the cache key is computed over, and the
tables of which Mistral routes are cached, relayed, owned or refused."""
