"""AccountRoutes=owned on the models routes: a caller sees only the fine-tuned models its own jobs made.

Mistral's `GET /v1/models` lists every model of the account, the fine-tuned ones (`ft:...`) of every caller's
jobs included. The list stays cached once per container and table (catalog.list_models, MODELS_TTL_SECONDS,
scope "shared"): it is Mistral's answer, the same for everyone. What each caller is shown is filtered after the
cache, on every request, so a list filtered for one caller is never stored and never served to another. Base
models stay visible to every caller (the key's allow-lists still apply). A fine-tuned model's card
(`GET /v1/models/{id}`) is checked before the cache is read: another caller's, or one the ledger does not know,
is the same 404 as a model that does not exist.

Cost: nothing when the list holds no fine-tuned model; otherwise one ledger Query (the caller's own models,
read from the ledger's owner index) per listing, and one GetItem-sized BatchGetItem per fine-tuned card read.
"""

from __future__ import annotations

from typing import Any

from mistral_gateway.container import current, settings
from mistral_gateway.platform.errors import NotFound


def is_fine_tuned(card: Any) -> bool:
    """A fine-tuned model's card (Mistral names them `ft:...` and types them `fine-tuned`)."""
    if not isinstance(card, dict):
        return False
    model_id = card.get("id")
    return (isinstance(model_id, str) and model_id.startswith("ft:")) or card.get("type") == "fine-tuned"


def filtering() -> bool:
    return settings().account_routes == "owned"


def own_fine_tuned(caller: str | None, cards: list[Any]) -> set[str] | None:
    """The fine-tuned model ids this caller may see among `cards`, or None when nothing needs filtering."""
    if not filtering() or not any(is_fine_tuned(card) for card in cards):
        return None
    from mistral_gateway.stores.ledger import LedgerUnavailable, owner_of

    ledger = current().ledger
    if not ledger.table_name:
        raise LedgerUnavailable()
    return set(ledger.ids(owner_of(caller), "model"))


def visible(card: Any, own: set[str] | None) -> bool:
    return own is None or not is_fine_tuned(card) or card.get("id") in own


def check_card(model_id: str, caller: str | None) -> None:
    """GET /v1/models/{ft:...}: the caller's own fine-tuned model, or the 404 of a model that does not exist."""
    if not filtering() or not model_id.startswith("ft:"):
        return
    from mistral_gateway.stores.ledger import LedgerUnavailable, owner_of

    ledger = current().ledger
    if not ledger.table_name:
        raise LedgerUnavailable()
    if ledger.owners([("model", model_id)]).get(("model", model_id)) != owner_of(caller):
        raise model_not_found(model_id)


def model_not_found(model_id: str) -> NotFound:
    return NotFound(f"Model not found: {model_id}", param="model_id", code="model_not_found")
