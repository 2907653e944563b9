"""The operator's tools: the `mistral-gateway` CLI (cli.py: chat, and keys_cli.py: the keys command), caller
keys and their usage plan (keys.py), budgets (quota.py), exact spend per key (spend.py), checks of a build
(build_check.py) and of a deployed stack (smoke.py, after_deploy.py), the OpenAPI document exported to a file
(openapi_export.py). They work on make serve's local state or on a deployed stack."""
