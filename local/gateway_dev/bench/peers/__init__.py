"""Other gateways measured side by side with this one (`make bench PEERS=litellm`), each installed in a venv of its
own under the bench's work dir, never in the project's."""
