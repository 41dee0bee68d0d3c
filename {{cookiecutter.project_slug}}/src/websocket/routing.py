from django.urls import path

from websocket.consumers import DeviceEventsConsumer

websocket_urlpatterns = [
    path("ws/connect/", DeviceEventsConsumer.as_asgi()),
]
