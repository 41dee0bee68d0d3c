"""Device presence: is a device online, since when, and why it went offline.

Four sources feed it, all through the MQTT handler service except the sweep:
- `device`: the device's own `{"online": bool, "conn": "<token>"}` on `<device prefix>/<username>/presence`,
  and its Last Will (the same topic, `{"online": false, "conn": ...}`) published by the broker when the
  connection dies without a DISCONNECT;
- `broker`: EMQX client events `<event prefix>/<node>/clients/<clientid>/connected|disconnected`;
- `inactivity`: the beat task marks a device offline that stayed silent longer than its timeout;
- `activity`: any message from a device that the sweep marked offline brings it back online.

Ordering rules (apply.py), so late, duplicated and out-of-order events never move a device back:
- an online event applies only when it is newer than the last disconnect; an offline event only when it is
  newer than both the last connect and the last disconnect. An event that equals what is stored (a duplicate)
  changes nothing;
- an offline event naming a connection (`conn`) other than the device's current one is the will of an
  older connection: ignored;
- an EMQX disconnect with reason `takenover` or `discarded` ends an older connection whose client id a newer
  connection took: ignored (a device whose client id was taken by another client is caught by the sweep).
Each event is applied by one conditional UPDATE that locks the device row, so handler replicas applying the
same event concurrently change the device once. A change of `is_online` is recorded as a PresenceEvent and
pushed to the WebSocket groups of the owner and staff as `device.presence`.
"""

from apps.devices.presence.apply import AppliedChange, PresenceChange, aapply_change, apply_change

__all__ = ["AppliedChange", "PresenceChange", "aapply_change", "apply_change"]
