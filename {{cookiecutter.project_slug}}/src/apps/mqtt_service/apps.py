from django.apps import AppConfig


class MqttServiceConfig(AppConfig):
    name = "apps.mqtt_service"
    verbose_name = "MQTT service"
