"""DynamoDB tables of what callers own on the shared Mistral account: the ownership ledger and the stored
/v1/responses."""
