"""Replies of devices to their commands, from the handler service (apps.mqtt_service.router)."""

import logging

from apps.commands.recording import recorder
from apps.commands.replies import parse_reply
from apps.commands.transitions import Transition
from apps.mqtt_service import topology
from apps.mqtt_service.router import DeviceMessage, message_handler

logger = logging.getLogger(__name__)


@message_handler(topology.REPLY_KIND)
async def handle_reply(message: DeviceMessage) -> None:
    """Move the command on. Only a command of the replying device moves (the topic names the device, and
    the broker lets a device publish only to its own topics); a duplicate or late reply changes nothing.
    A malformed reply raises PayloadRefusedError: the service counts and logs it and carries on."""
    reply = parse_reply(message.payload)
    transition = Transition(
        reply.command_id,
        reply.state,
        message.received_at,
        device_id=message.device_id,
        result=reply.result,
        error=reply.error,
    )
    # Until the database is back: the message stays unacknowledged meanwhile, and the broker holds the rest.
    if not await recorder("replies", patience=None).record(transition):
        logger.debug(
            "reply %s to command %s from %s changed nothing (duplicate, late, or not its command)",
            reply.state,
            reply.command_id,
            message.username,
        )
