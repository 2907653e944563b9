"""Mistral's account routes under AccountRoutes=owned: one table says, per route, who may do what.

Every caller shares the gateway's one Mistral account, so the gateway keeps an ownership ledger (ledger.py):
each resource a caller creates here is recorded with its owner (the caller's API key id), and every later
use of it is checked against that record before Mistral is asked. The access kinds:

- owned: the route creates a resource; its id (from Mistral's answer) is recorded for the caller before the
  answer leaves (no record, no answer: 503, and the resource is deleted upstream again).
- referenced: every `{..._id}` in the path must be the caller's own; anything else (another caller's, one
  the ledger does not know, one that does not exist) is the same 404, and Mistral is never called.
- derived: the path names a resource Mistral made from an owned one (an agent's versions and aliases, a
  conversation's history, messages and restarts): allowed exactly when the parent is the caller's own.
  Resources Mistral returns from an owned one (a batch job's output and error files, a fine-tuning job's
  model) are recorded for the same owner when the gateway first sees them.
- listed: the answer holds only the caller's own, in Mistral's list shape, with `total` and pages counted
  over those alone (served from the ledger's ids plus one Mistral get per item on the page: lists.py).
- refused: for every caller, owner included, with the reason (sharing outside the gateway, credentials).

An account route that no row matches is refused too (403): a new Mistral endpoint stays closed until
someone decides who owns what it creates. The README's "Account routes" table mirrors this one (a test
keeps them in step). Mode `shared` bypasses this table (single tenant), mode `off` refuses every account route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Access(StrEnum):
    OWNED = "owned"
    REFERENCED = "referenced"
    DERIVED = "derived"
    LISTED = "listed"
    REFUSED = "refused"


# Path parameter -> the kind of resource the ledger records under that id.
PARAM_KINDS = {
    "file_id": "file",
    "batch_id": "batch_job",
    "ft_job_id": "fine_tuning_job",
    "model_id": "model",
    "agent_id": "agent",
    "conversation_id": "conversation",
    "library_id": "library",
    "document_id": "document",
    "voice_id": "voice",
}
# Ids as Mistral makes them (UUIDs, "file-...", "ag_...", "ft:model:...:suffix"); anything else is a 400.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,199}$")


@dataclass(frozen=True)
class AccountRoute:
    method: str
    pattern: str  # under /v1/, e.g. "files/{file_id}/content"
    access: Access
    kind: str  # what is created or listed ("" for referenced/derived routes: the path's ids say)
    why: str

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.pattern.split("/"))


def _route(method: str, pattern: str, access: Access, kind: str, why: str) -> AccountRoute:
    return AccountRoute(method, pattern, access, kind, why)


OWN, REF, DER, LIST, NO = Access.OWNED, Access.REFERENCED, Access.DERIVED, Access.LISTED, Access.REFUSED

ROUTES: tuple[AccountRoute, ...] = (
    # files
    _route("POST", "files", OWN, "file", "an upload: recorded for the caller"),
    _route("GET", "files", LIST, "file", "only the caller's files, counted over those"),
    _route("GET", "files/{file_id}", REF, "", "the caller's own file"),
    _route("DELETE", "files/{file_id}", REF, "", "the caller's own file; forgotten by the ledger once deleted"),
    _route("GET", "files/{file_id}/content", REF, "", "the caller's own file (batch outputs included)"),
    _route("GET", "files/{file_id}/url", REF, "", "a signed URL to the caller's own file"),
    # batch jobs
    _route("POST", "batch/jobs", OWN, "batch_job", "input_files must be the caller's own; outputs become theirs"),
    _route("GET", "batch/jobs", LIST, "batch_job", "only the caller's jobs"),
    _route("GET", "batch/jobs/{batch_id}", REF, "", "the caller's job; its output and error files are recorded"),
    _route("DELETE", "batch/jobs/{batch_id}", REF, "", "the caller's own job"),
    _route("POST", "batch/jobs/{batch_id}/cancel", REF, "", "the caller's own job"),
    # fine-tuning
    _route("POST", "fine_tuning/jobs", OWN, "fine_tuning_job", "training and validation files must be the caller's"),
    _route("GET", "fine_tuning/jobs", LIST, "fine_tuning_job", "only the caller's jobs"),
    _route("GET", "fine_tuning/jobs/{ft_job_id}", REF, "", "the caller's job; the model it makes is recorded"),
    _route("POST", "fine_tuning/jobs/{ft_job_id}/cancel", REF, "", "the caller's own job"),
    _route("POST", "fine_tuning/jobs/{ft_job_id}/start", REF, "", "the caller's own job"),
    _route("PATCH", "fine_tuning/models/{model_id}", REF, "", "a model made by the caller's job"),
    _route("POST", "fine_tuning/models/{model_id}/archive", REF, "", "a model made by the caller's job"),
    _route("DELETE", "fine_tuning/models/{model_id}/archive", REF, "", "a model made by the caller's job"),
    _route("DELETE", "models/{model_id}", REF, "", "deletes a model made by the caller's job"),
    # agents
    _route("POST", "agents", OWN, "agent", "libraries in its document_library tool must be the caller's"),
    _route("GET", "agents", LIST, "agent", "only the caller's agents"),
    _route("GET", "agents/pages", NO, "", "an account-wide listing; GET /v1/agents lists the caller's own"),
    _route("GET", "agents/{agent_id}", REF, "", "the caller's own agent"),
    _route("PATCH", "agents/{agent_id}", REF, "", "the caller's own agent (tool libraries checked as on create)"),
    _route("DELETE", "agents/{agent_id}", REF, "", "the caller's own agent"),
    _route("PATCH", "agents/{agent_id}/version", DER, "", "a version of the caller's agent"),
    _route("GET", "agents/{agent_id}/versions", DER, "", "the versions of the caller's agent"),
    _route("GET", "agents/{agent_id}/versions/{version}", DER, "", "a version of the caller's agent"),
    _route("GET", "agents/{agent_id}/aliases", DER, "", "aliases of the caller's agent"),
    _route("PUT", "agents/{agent_id}/aliases", DER, "", "aliases of the caller's agent"),
    _route("DELETE", "agents/{agent_id}/aliases", DER, "", "aliases of the caller's agent"),
    # conversations
    _route("POST", "conversations", OWN, "conversation", "agent_id, if any, must be the caller's"),
    _route("GET", "conversations", LIST, "conversation", "only the caller's conversations"),
    _route("GET", "conversations/{conversation_id}", REF, "", "the caller's own conversation"),
    _route("DELETE", "conversations/{conversation_id}", REF, "", "the caller's own conversation"),
    _route("POST", "conversations/{conversation_id}", DER, "", "appends entries to the caller's conversation"),
    _route("GET", "conversations/{conversation_id}/history", DER, "", "entries of the caller's conversation"),
    _route("GET", "conversations/{conversation_id}/messages", DER, "", "messages of the caller's conversation"),
    _route("POST", "conversations/{conversation_id}/restart", DER, "", "restarts the caller's conversation"),
    # libraries and their documents
    _route("POST", "libraries", OWN, "library", "a document library, recorded for the caller"),
    _route("GET", "libraries", LIST, "library", "only the caller's libraries"),
    _route("GET", "libraries/{library_id}", REF, "", "the caller's own library"),
    _route("PUT", "libraries/{library_id}", REF, "", "the caller's own library"),
    _route("PATCH", "libraries/{library_id}", REF, "", "the caller's own library"),
    _route("DELETE", "libraries/{library_id}", REF, "", "the caller's own library"),
    _route("GET", "libraries/{library_id}/share", NO, "", "sharing reaches outside the gateway (org, workspace)"),
    _route("PUT", "libraries/{library_id}/share", NO, "", "sharing reaches outside the gateway (org, workspace)"),
    _route("DELETE", "libraries/{library_id}/share", NO, "", "sharing reaches outside the gateway (org, workspace)"),
    _route("POST", "libraries/{library_id}/documents", OWN, "document", "an upload into the caller's library"),
    _route("GET", "libraries/{library_id}/documents", LIST, "document", "the caller's library's documents"),
    _route("GET", "libraries/{library_id}/documents/{document_id}", REF, "", "a document of the caller's library"),
    _route("PUT", "libraries/{library_id}/documents/{document_id}", REF, "", "a document of the caller's library"),
    _route("PATCH", "libraries/{library_id}/documents/{document_id}", REF, "", "a document of the caller's library"),
    _route("DELETE", "libraries/{library_id}/documents/{document_id}", REF, "", "a document of the caller's library"),
    _route("GET", "libraries/{library_id}/documents/{document_id}/{aspect}", REF, "", "text, status, signed URLs"),
    _route("POST", "libraries/{library_id}/documents/{document_id}/reprocess", REF, "", "a document of the caller's"),
    # voices
    _route("POST", "audio/voices", OWN, "voice", "a cloned voice, recorded for the caller"),
    _route("GET", "audio/voices", LIST, "voice", "only the caller's voices"),
    _route("GET", "audio/voices/{voice_id}", REF, "", "the caller's own voice"),
    _route("PATCH", "audio/voices/{voice_id}", REF, "", "the caller's own voice"),
    _route("DELETE", "audio/voices/{voice_id}", REF, "", "the caller's own voice"),
    _route("GET", "audio/voices/{voice_id}/sample", REF, "", "the caller's own voice"),
    # refused for everyone
    _route("ANY", "connectors", NO, "", "connectors hold credentials for the whole account"),
    _route("ANY", "audio/agents", NO, "", "audio agents and sessions are not yet tracked by the ledger"),
    _route("ANY", "audio/sessions", NO, "", "audio agents and sessions are not yet tracked by the ledger"),
)
UNLISTED = AccountRoute("ANY", "", Access.REFUSED, "", "no owner is defined for what this route stores")

# How each kind is deleted upstream when the ledger cannot record it (no orphan), and listed.
DELETE_PATHS = {
    "file": "files/{id}",
    "batch_job": "batch/jobs/{id}/cancel",
    "fine_tuning_job": "fine_tuning/jobs/{id}/cancel",
    "agent": "agents/{id}",
    "conversation": "conversations/{id}",
    "library": "libraries/{id}",
    "document": "libraries/{parent}/documents/{id}",
    "voice": "audio/voices/{id}",
}
# The field of Mistral's answer holding a created resource's id.
ID_FIELDS = {"conversation": "conversation_id"}


@dataclass(frozen=True)
class Match:
    route: AccountRoute
    params: dict[str, str]  # path parameter -> value

    def owned_ids(self) -> list[tuple[str, str]]:
        """(kind, id) of every path id the ledger must find owned by the caller, outermost first."""
        return [(PARAM_KINDS[name], value) for name, value in self.params.items() if name in PARAM_KINDS]


def match(method: str, subpath: str) -> Match:
    """The row for `method /v1/<subpath>`; UNLISTED when none (refused). Prefix rows (`ANY connectors`) cover
    everything under them."""
    segments = subpath.strip("/").split("/")
    for route in ROUTES:
        pattern = route.segments
        if route.method == "ANY":
            if tuple(segments[: len(pattern)]) == pattern:
                return Match(route, {})
            continue
        if route.method != method.upper() or len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for expected, actual in zip(pattern, segments, strict=True):
            if expected.startswith("{"):
                params[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return Match(route, params)
    return Match(UNLISTED, {})
