"""template.yaml read the way the local runner and the tests need it: routes, environments, resource properties.

The template is the one description of the system; everything local (routes served, environment given to a
function, the DynamoDB table and secret created in moto) is derived from it, so code and template cannot
drift. Only the intrinsic functions the template uses are resolved, against parameter defaults (or
overrides) and local physical names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) turned into their long `Fn::` form."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@dataclass(frozen=True)
class ApiRoute:
    function: str  # logical id
    method: str  # upper case; ANY matches every method
    path: str  # API Gateway resource path, e.g. /v1/models/{model_id}
    public: bool = False  # Auth: Authorizer: NONE -> no caller key needed
    streams: bool = False  # ResponseTransferMode: RESPONSE_STREAM -> served by the function's ASGI app

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{[^/]+?\\\+\\\}", r".+", re.escape(self.path))  # {proxy+}
        regex = re.sub(r"\\\{[^/]+?\\\}", r"[^/]+", regex)
        return re.compile(f"^{regex}$")

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("ANY", method.upper()) and bool(self.pattern.match(path))


class Template:
    def __init__(
        self,
        path: Path = TEMPLATE_PATH,
        parameters: dict[str, str] | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        stack_name: str = "mistral-gateway",
    ):
        self.path = path
        self.document: dict[str, Any] = yaml.load(path.read_text(), Loader=_CfnLoader)
        self.overrides = dict(parameters or {})
        self.region = region
        self.account = account
        self.stack_name = stack_name

    # -- the document -----------------------------------------------------------------------------------
    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("Resources", {}))

    def resources_of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {name: r for name, r in self.resources.items() if r.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's properties with intrinsics resolved for local use."""
        return dict(self.resolve(self.resources[logical_id].get("Properties", {})))

    @cached_property
    def parameters(self) -> dict[str, str]:
        values = {name: str(spec.get("Default", "")) for name, spec in self.document.get("Parameters", {}).items()}
        values.update(self.overrides)
        return values

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.document.get("Conditions", {})[name]))

    def is_created(self, logical_id: str) -> bool:
        condition = self.resources[logical_id].get("Condition")
        return condition is None or self.condition(condition)

    # -- what the local runner needs ------------------------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        """The local name of a resource: its explicit name property if any, else stack-logicalid."""
        resource = self.resources[logical_id]
        props = resource.get("Properties", {})
        for key in ("TableName", "Name", "LayerName", "FunctionName"):
            if key in props:
                return str(self.resolve(props[key]))
        return f"{self.stack_name}-{logical_id}"

    def arn(self, logical_id: str) -> str:
        resource_type = self.resources[logical_id]["Type"]
        name = self.physical_name(logical_id)
        if resource_type == "AWS::DynamoDB::Table":
            return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
        if resource_type == "AWS::SecretsManager::Secret":
            return f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:{name}"
        return f"arn:aws:local:{self.region}:{self.account}:{name}"

    def routes(self) -> list[ApiRoute]:
        routes = []
        for function, resource in self.resources_of_type("AWS::Serverless::Function").items():
            for event in resource.get("Properties", {}).get("Events", {}).values():
                if event.get("Type") == "Api":
                    props = event["Properties"]
                    public = (props.get("Auth") or {}).get("Authorizer") == "NONE"
                    streams = props.get("ResponseTransferMode") == "RESPONSE_STREAM"
                    routes.append(ApiRoute(function, str(props["Method"]).upper(), str(props["Path"]), public, streams))
        return routes

    def translated(self) -> dict[str, Any]:
        """The template as SAM translates it for CloudFormation (offline): what only runs in the cloud (the
        API's integrations, authorizer, usage plan, transfer modes) can be checked on it. Code locations are
        replaced by placeholder S3 URIs, as `sam package` would."""
        from samtranslator.translator.transform import transform
        from samtranslator.yaml_helper import yaml_parse

        document = yaml_parse(self.path.read_text())
        for resource in document["Resources"].values():
            properties = resource.get("Properties", {})
            for key in ("CodeUri", "ContentUri"):
                if isinstance(properties.get(key), str):
                    properties[key] = f"s3://bucket/{properties[key]}"

        class NoManagedPolicies:
            def load(self) -> dict[str, str]:
                return {}

        return dict(transform(document, dict(self.overrides), NoManagedPolicies()))

    def streams(self, logical_id: str) -> bool:
        """Whether a function's API routes stream their answers (SAM's ResponseTransferMode)."""
        events = self.resources[logical_id].get("Properties", {}).get("Events", {}).values()
        return any(event.get("Properties", {}).get("ResponseTransferMode") == "RESPONSE_STREAM" for event in events)

    def asgi_app(self, logical_id: str) -> tuple[Path, str, str] | None:
        """(code directory, module, attribute) of a streaming function's ASGI app, from its Metadata."""
        resource = self.resources[logical_id]
        location = resource.get("Metadata", {}).get("LocalAsgiApp")
        if not location:
            return None
        module, _, attribute = str(location).partition(":")
        return self.path.parent / str(resource["Properties"]["CodeUri"]), module, attribute

    def cors_preflight_headers(self, api: str = "GatewayApi") -> dict[str, str]:
        """What API Gateway's MOCK OPTIONS method answers, from the Api's Cors property (values are quoted)."""
        cors = self.properties(api).get("Cors") or {}
        names = {
            "AllowOrigin": "Access-Control-Allow-Origin",
            "AllowHeaders": "Access-Control-Allow-Headers",
            "AllowMethods": "Access-Control-Allow-Methods",
            "MaxAge": "Access-Control-Max-Age",
        }
        return {header: str(cors[key]).strip("'") for key, header in names.items() if key in cors}

    def binary_media_types(self, api: str = "GatewayApi") -> tuple[str, ...]:
        """The API's BinaryMediaTypes as media patterns (`multipart~1form-data` -> `multipart/form-data`)."""
        types = self.properties(api).get("BinaryMediaTypes") or []
        return tuple(str(self.resolve(item)).replace("~1", "/") for item in types)

    def gateway_response_headers(self, api: str = "GatewayApi", kind: str = "DEFAULT_4XX") -> dict[str, str]:
        """The headers API Gateway adds to its own errors (GatewayResponses), e.g. Access-Control-Allow-Origin."""
        responses = self.properties(api).get("GatewayResponses") or {}
        headers = (responses.get(kind, {}).get("ResponseParameters") or {}).get("Headers") or {}
        return {name: str(value).strip("'") for name, value in headers.items()}

    def function_variables(self, logical_id: str) -> dict[str, Any]:
        """Globals' variables overlaid with the function's own, as written (intrinsic functions unresolved)."""
        merged: dict[str, Any] = {}
        globals_env = self.document.get("Globals", {}).get("Function", {}).get("Environment", {})
        merged.update(globals_env.get("Variables", {}))
        props = self.resources[logical_id].get("Properties", {})
        merged.update(props.get("Environment", {}).get("Variables", {}))
        return merged

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """The function's variables resolved (what Lambda would set)."""
        return {name: _as_env(self.resolve(value)) for name, value in self.function_variables(logical_id).items()}

    def function_setting(self, logical_id: str, key: str) -> Any:
        props = self.resources[logical_id].get("Properties", {})
        if key in props:
            return self.resolve(props[key])
        return self.resolve(self.document.get("Globals", {}).get("Function", {}).get(key))

    def code_location(self, logical_id: str) -> tuple[Path, str, str]:
        """(code directory, module name, function name) of a function's Handler."""
        props = self.resources[logical_id]["Properties"]
        module, _, function = str(props["Handler"]).rpartition(".")
        return self.path.parent / str(props["CodeUri"]), module, function

    # -- intrinsic functions ------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((name, argument),) = value.items()
            if name == "Ref":
                return self._ref(argument)
            if name == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            if name == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if name == "Fn::Not":
                return not self.resolve(argument[0])
            if name == "Fn::And":
                return all(self.resolve(item) for item in argument)
            if name == "Fn::Or":
                return any(self.resolve(item) for item in argument)
            if name == "Fn::Sub":
                return self._sub(argument)
            if name == "Fn::GetAtt":
                logical_id, attribute = argument
                return self.arn(logical_id) if attribute == "Arn" else self.physical_name(logical_id)
            if name == "Fn::Join":
                separator, items = argument
                return str(separator).join(str(item) for item in self.resolve(items))
            if name == "Fn::Split":
                separator, text = argument
                return str(self.resolve(text)).split(separator)
        return {key: self.resolve(item) for key, item in value.items()}

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        # Locally a secret is addressed by name (moto's ARNs carry a random suffix; SecretId accepts both).
        return self.physical_name(name)

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return str(self.resolve({"Fn::GetAtt": [logical_id, attribute]}))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def _as_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
