"""Per-dialog diversity for the generative stages (ToolFlow, MAGNET).

With a request cache and in-flight de-duplication, two dialogs that sample the same tools would
otherwise send byte-identical requests and get byte-identical dialogs. So every dialog gets:

- a persona and a scenario, drawn from its id, that its user-side prompts carry (who is asking,
  in what situation): different dialogs over the same tools ask for different things;
- a request seed, drawn from its id, sent as the `seed` parameter of every request the dialog
  makes (endpoints that honour it sample reproducibly; it is also part of the cache key, so a
  re-run reproduces each dialog from the cache and no two dialogs share an entry).

Generative stages also sample at temperature > 0 unless the user sets one (`LLMConfig`).
"""

from __future__ import annotations

from typing import Any

from raypipe.synth.sampling import dialog_rng

DEFAULT_TEMPERATURE = 0.8

PERSONAS = (
    "a nurse finishing a night shift", "a university student on a tight budget",
    "a retired engineer who likes precise answers", "a small-business owner running a bakery",
    "a parent organising a child's birthday", "a freelance photographer travelling for work",
    "a software developer in a hurry", "a high-school teacher preparing a lesson",
    "a marathon runner planning a race season", "a newcomer to the city who barely knows it",
    "a logistics coordinator at a shipping firm", "a grandmother learning to use her phone",
    "a journalist checking facts before a deadline", "a chef planning next week's menu",
    "a real-estate agent juggling several clients", "a hobby astronomer",
    "a graduate student writing a thesis", "a musician booking a small tour",
    "an accountant in tax season", "a pharmacist answering a customer",
    "a travel blogger planning a trip", "a gardener dealing with a dry summer",
    "a project manager preparing a status meeting", "a tourist who speaks little of the language",
    "a gamer organising an online tournament", "a volunteer at a food bank",
    "a data analyst exploring a new dataset", "a cyclist commuting every day",
    "a homeowner planning a renovation", "a sales representative on the road",
)

SCENARIOS = (
    "is in a rush and writes tersely", "is curious and asks follow-up questions",
    "is comparing options before deciding", "is fixing a problem that just came up",
    "is planning several days ahead", "is double-checking something they were told",
    "is helping a friend with this", "has changed their mind once already",
    "gives details in an unusual order", "is polite and chatty",
    "is sceptical and wants exact figures", "is doing this on a phone with typos",
)


def persona(seed: int, dialog_id: str) -> str:
    rng = dialog_rng(seed, f"persona:{dialog_id}")
    return f"The user is {rng.choice(PERSONAS)} who {rng.choice(SCENARIOS)}."


def request_seed(seed: int, dialog_id: str) -> int:
    return dialog_rng(seed, f"requests:{dialog_id}").randrange(1, 2**31 - 1)


class DialogClient:
    """An `LLMClient` whose every request carries the dialog's seed (and so its own cache
    entries); everything else is the wrapped client's."""

    def __init__(self, client: Any, seed: int):
        self._client, self._seed = client, seed

    async def chat(self, messages, **params):
        return await self._client.chat(messages, **{"seed": self._seed, **params})

    async def chat_json(self, messages, validate=None, **params):
        return await self._client.chat_json(messages, validate, **{"seed": self._seed, **params})

    async def ask(self, messages, parse, **params):
        return await self._client.ask(messages, parse, **{"seed": self._seed, **params})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
