"""Mistral's account routes under AccountRoutes=owned (files, batch jobs, fine-tuning, agents, conversations,
libraries): each caller sees and uses only what it created here, recorded in the ownership ledger."""
