"""Any text, in any step, gets a reply and never an exception."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from bot.services import Services
from flows.i18n import SHIPPED
from flows.standard import standard_registry
from storage.models import Contact, Conversation
from tests.conftest import Phone

REGISTRY = standard_registry()
STEPS = [(flow.name, step) for flow in REGISTRY.flows.values() for step in flow.steps]

anything = st.text(st.characters(exclude_categories=()), max_size=400)  # lone surrogates too
typed = st.one_of(
    anything,
    st.sampled_from(["1", "2", "0", "99", "-1", "٣", "stop", "СТОП", "delete my data", "sos"]),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    step=st.sampled_from(STEPS),
    locale=st.sampled_from(SHIPPED),
    status=st.sampled_from(["active", "stopped"]),
    style=st.sampled_from(["sms", "telegram"]),
    text=typed,
    choice=st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["@menu", "@stop", "ru"])),
)
async def test_any_input_in_any_step_gets_one_reply(
    services: Services, step: tuple[str, str], locale: str, status: str, style: str,
    text: str, choice: str | None,
) -> None:
    phone = Phone(services, user=f"prop-{uuid.uuid4()}", style=style)
    await phone.send("hi")
    async with services.db.begin() as conn:
        contact_id = (await conn.execute(
            update(Contact).values(locale=locale, status=status)
            .where(Contact.address_hash == services.turns.address_hash("simulator", phone.user))
            .returning(Contact.id)
        )).scalar_one()
        await conn.execute(update(Conversation).where(Conversation.contact_id == contact_id)
                           .values(flow=step[0], step=step[1], data={}))
    replies = await phone.send(text if choice is None else None, choice=choice)
    assert len(replies) == 1
    assert replies[0].text.strip()


@given(payload=st.one_of(st.none(), anything, st.lists(st.sampled_from(
    [*SHIPPED, *REGISTRY.deep_links, "x", "", "RU", "Emergency"]), max_size=5).map("-".join)))
def test_any_deep_link_payload_reads_as_a_language_and_a_destination_or_nothing(
    payload: str | None,
) -> None:
    link = REGISTRY.deep_link(payload)
    assert link.locale is None or link.locale in SHIPPED
    assert link.target is None or link.target in REGISTRY.deep_links.values()
