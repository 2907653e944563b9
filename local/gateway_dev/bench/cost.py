"""Figure 7 and the memory-size projection: what a million requests cost, from this run's times.

AWS list prices live here (the one table of them); Mistral's come from `mistral_gateway.platform.economics.LIST_PRICES`,
the table the gateway itself prices answers with."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway_dev.bench.settings import MODEL

# USD, us-east-1, on-demand, from the public pricing pages of AWS Lambda (arm64), API Gateway (REST, first 333 M
# requests a month), DynamoDB (on-demand), Secrets Manager and CloudWatch Logs (standard ingestion). Taken 2026-11;
# re-check before quoting the costs.
AWS_PRICES = {
    "lambda_arm_per_gb_second": 0.0000133334,
    "lambda_per_request": 0.20 / 1e6,
    "apigw_rest_per_request": 3.50 / 1e6,
    "dynamodb_per_write_unit": 0.625 / 1e6,
    "dynamodb_per_read_unit": 0.125 / 1e6,
    "secrets_manager_per_call": 0.05 / 10_000,
    "cloudwatch_logs_per_gb": 0.50,
}

# Assumptions of the model (docs/benchmarks.md states each; the generated assumptions table shows the values).
COLD_START_SHARE = 0.01  # 1 request in 100 starts a container (init is billed since 2025-08)
TOKENS_IN, TOKENS_OUT = 500, 300  # one typical miss
READ_UNITS_PER_HIT = 1.0  # conservative: an eventually consistent GetItem of <= 4 KB is billed 0.5
READ_UNITS_PER_MISS = 1.0
WRITE_UNITS_PER_MISS = 2.0  # single-flight lease (UpdateItem) + answer (PutItem), each <= 1 KB compressed
PLATFORM_LOG_BYTES = 300  # Lambda's own START / END / REPORT lines per invocation
SECRET_READS_PER_CONTAINER_HOUR = 12  # one GetSecretValue per container per 5 minutes
ASSUMED_MISTRAL_WAIT_S = 2.0  # a real 300-token answer; the emulator answers at once
LAMBDA_FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, proportionally less below
SIZED_MEMORIES = (256, 512, 1024, LAMBDA_FULL_VCPU_MB)


@dataclass(frozen=True)
class Cost:
    """USD per million requests, by line item."""

    lambda_compute: float
    lambda_requests: float
    api_gateway: float
    dynamodb: float
    logs: float
    mistral: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.items().values())

    def items(self) -> dict[str, float]:
        return {
            "Lambda compute (arm64 GB-s)": self.lambda_compute,
            "Lambda requests": self.lambda_requests,
            "API Gateway REST": self.api_gateway,
            "DynamoDB on-demand": self.dynamodb,
            "CloudWatch Logs ingestion": self.logs,
            "Mistral tokens": self.mistral,
        }


@dataclass(frozen=True)
class Costs:
    hit: Cost
    miss: Cost
    miss_with_tokens: Cost
    hit_billed_ms: float
    miss_billed_ms: float
    secret_per_container_month: float


def mistral_prices(model: str = MODEL) -> tuple[float, float]:
    """USD per input and per output token. (Imported here: importing the gateway's package before the stack has set
    the function's environment would build its Powertools objects without it.)"""
    from mistral_gateway.platform.economics import LIST_PRICES

    per_million_in, per_million_out = LIST_PRICES[model]
    return per_million_in / 1e6, per_million_out / 1e6


def tokens_per_request() -> float:
    per_in, per_out = mistral_prices()
    return TOKENS_IN * per_in + TOKENS_OUT * per_out


def apigw_per_million() -> float:
    return AWS_PRICES["apigw_rest_per_request"] * 1e6


def billed_ms(warm_ms: float, cold_ms: float) -> float:
    """Lambda bills each invocation (its init phase included) rounded up to the millisecond."""
    return (1 - COLD_START_SHARE) * math.ceil(warm_ms) + COLD_START_SHARE * math.ceil(cold_ms)


def compute_per_million(duration_ms: float, memory_mb: int) -> float:
    return math.ceil(duration_ms) / 1000 * memory_mb / 1024 * AWS_PRICES["lambda_arm_per_gb_second"] * 1e6


def cost_per_million(
    memory_mb: int, duration_ms: float, log_bytes: float, reads: float, writes: float, *, tokens: bool
) -> Cost:
    million = 1e6
    gb_seconds = duration_ms / 1000 * memory_mb / 1024
    dynamodb = reads * AWS_PRICES["dynamodb_per_read_unit"] + writes * AWS_PRICES["dynamodb_per_write_unit"]
    return Cost(
        lambda_compute=gb_seconds * AWS_PRICES["lambda_arm_per_gb_second"] * million,
        lambda_requests=AWS_PRICES["lambda_per_request"] * million,
        api_gateway=AWS_PRICES["apigw_rest_per_request"] * million,
        dynamodb=dynamodb * million,
        logs=(log_bytes + PLATFORM_LOG_BYTES) / 2**30 * AWS_PRICES["cloudwatch_logs_per_gb"] * million,
        mistral=tokens_per_request() * million if tokens else 0.0,
    )


def costs(
    memory_mb: int, hit_ms: float, miss_ms: float, cold_hit_ms: float, cold_miss_ms: float, hit_logs: float,
    miss_logs: float,
) -> Costs:  # fmt: skip
    """Per million hits and misses from warm medians, cold in-process times and log bytes per request."""
    hit_billed, miss_billed = billed_ms(hit_ms, cold_hit_ms), billed_ms(miss_ms, cold_miss_ms)
    miss_args = (memory_mb, miss_billed, miss_logs, READ_UNITS_PER_MISS, WRITE_UNITS_PER_MISS)
    secret = SECRET_READS_PER_CONTAINER_HOUR * 24 * 30 * AWS_PRICES["secrets_manager_per_call"]
    return Costs(
        hit=cost_per_million(memory_mb, hit_billed, hit_logs, READ_UNITS_PER_HIT, 0, tokens=False),
        miss=cost_per_million(*miss_args, tokens=False),
        miss_with_tokens=cost_per_million(*miss_args, tokens=True),
        hit_billed_ms=hit_billed,
        miss_billed_ms=miss_billed,
        secret_per_container_month=secret,
    )


@dataclass(frozen=True)
class Sizing:
    """One memory size, projected from this run: CPU time stretches as Lambda's CPU share shrinks below 1 vCPU."""

    memory_mb: int
    vcpu: float
    hit_ms: float
    miss_with_wait_ms: float
    cold_hit_ms: float
    hit_compute_per_million: float
    miss_compute_per_million: float


def memory_sizing(
    hit_ms: float, hit_cpu_ms: float, miss_ms: float, miss_cpu_ms: float, cold_hit_ms: float
) -> list[Sizing]:
    rows = []
    for memory in SIZED_MEMORIES:
        stretch = max(1.0, LAMBDA_FULL_VCPU_MB / memory)
        hit = hit_ms + hit_cpu_ms * (stretch - 1)
        miss = miss_ms + miss_cpu_ms * (stretch - 1) + ASSUMED_MISTRAL_WAIT_S * 1000
        rows.append(
            Sizing(
                memory,
                min(1.0, memory / LAMBDA_FULL_VCPU_MB),
                hit,
                miss,
                cold_hit_ms * stretch,
                compute_per_million(hit, memory),
                compute_per_million(miss, memory),
            )
        )
    return rows


# The ownership ledger (AccountRoutes=owned): what one owned request adds in DynamoDB capacity.
LEDGER_READ_UNITS = 1.0  # BatchGetItem of one item, consistent read (owners are checked strongly consistent)
LEDGER_WRITE_UNITS = 2.0  # conditional PutItem of a small item + its write to the owner index (GSI)


def owned_costs(
    memory_mb: int, *, read_ms: float, create_ms: float, cold_ms: float, read_logs: float, create_logs: float
) -> tuple[Cost, Cost]:
    """USD per million owned reads (`GET /v1/files/{id}`) and creates (`POST /v1/files`), Mistral excluded: the
    whole request (Lambda, API Gateway, logs) with the ledger's DynamoDB units as its only table use."""
    read = cost_per_million(memory_mb, billed_ms(read_ms, cold_ms), read_logs, LEDGER_READ_UNITS, 0, tokens=False)
    create = cost_per_million(
        memory_mb, billed_ms(create_ms, cold_ms), create_logs, 0, LEDGER_WRITE_UNITS, tokens=False
    )
    return read, create
