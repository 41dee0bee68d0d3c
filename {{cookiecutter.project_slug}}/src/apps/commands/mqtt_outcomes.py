"""The publisher service's outcomes of queued commands: `sent` (the broker has it) or `expired`."""

import uuid

from apps.commands.models import CommandState
from apps.commands.recording import recorder
from apps.commands.services import OUTCOME_LISTENER
from apps.commands.transitions import Transition
from apps.mqtt_service import outcomes

_STATES = {outcomes.SENT: CommandState.SENT, outcomes.EXPIRED: CommandState.EXPIRED}
# Seconds the publisher waits for an unreachable database before giving up on an outcome: it holds a slot of
# the publishing window meanwhile. A command whose `sent` was lost still ends right: a reply moves it on from
# queued, and the deadline sweep expires it otherwise.
PATIENCE_SECONDS = 10.0


@outcomes.publish_outcome(OUTCOME_LISTENER)
async def record_publish_outcome(outcome: outcomes.PublishOutcome) -> None:
    transition = Transition(uuid.UUID(outcome.command_id), _STATES[outcome.status], outcome.at)
    await recorder("publish-outcomes", PATIENCE_SECONDS).record(transition)
