"""What arrives and what leaves over HTTP: the Powertools resolver, middlewares, CORS, the OpenAPI document,
the pass-through's API Gateway side, and the one "request served" line. Handlers (functions/) use this wing."""
