"""What happens to a request, one module per use case (completions, embeddings, catalog, responses, passthrough,
health, streaming; account/ for Mistral's stateful routes), over the cache flow they share (answers.py).
The use cases reach the Lambda container's pieces through `container.current()`; nothing below them does."""
