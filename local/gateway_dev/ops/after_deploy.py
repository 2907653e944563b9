"""`make deploy`, last step: what to do after `sam deploy`, with this stack's own names filled in.

Reads the stack's outputs (boto3, your normal credentials) and prints the commands that put the Mistral key
into the secret, create a caller key in the usage plan, set a budget, and try the API.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def outputs(stack: str) -> dict[str, str]:
    import boto3

    described: Any = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {item["OutputKey"]: item["OutputValue"] for item in described.get("Outputs", [])}


def instructions(values: dict[str, str], stack: str = "mistral-gateway") -> str:
    url, secret, plan = (
        values.get("ApiUrl", "<ApiUrl>"),
        values.get("MistralSecretArn", "<MistralSecretArn>"),
        values.get("UsagePlanId", "<UsagePlanId>"),
    )
    quota_table = values.get("QuotaTableName", "<QuotaTableName>")
    return f"""
Deployed. Next steps:

1. Put your Mistral key into the secret (until then the gateway answers 503):
   aws secretsmanager put-secret-value --secret-id '{secret}' --secret-string '{{"api_key": "<your Mistral key>"}}'

2. Create a caller key per app (it joins usage plan {plan}; budgets and models go to table {quota_table}):
   .venv/bin/mistral-gateway keys --stack {stack} create my-app --tokens-per-day 2000000
   KEY=<the key it printed>     # later: keys list / show / limits / models / rotate / revoke / usage

3. Check the live stack (one PASS/FAIL line per check):
   make smoke URL={url} KEY="$KEY" ARGS="--stack {stack}"

4. Try it:
   curl {url}/v1/chat/completions -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
     -d '{{"model": "mistral-small-latest", "messages": [{{"role": "user", "content": "Hello"}}]}}'
   .venv/bin/mistral-gateway chat --url {url} --key "$KEY"

Dashboard: {values.get("DashboardUrl", "<DashboardUrl>")}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="mistral-gateway")
    args = parser.parse_args(argv)
    try:
        values = outputs(args.stack)
    except Exception as error:  # no credentials, wrong region...: still print the steps, with placeholders
        print(f"(could not read the outputs of stack {args.stack!r}: {type(error).__name__})", file=sys.stderr)
        values = {}
    print(instructions(values, args.stack))
    return 0


if __name__ == "__main__":
    sys.exit(main())
