from django import forms
from django.core.exceptions import ValidationError

from apps.devices.models import Device
from apps.devices.passwords import MIN_PASSWORD_LENGTH, validate_device_password


class DeviceAdminForm(forms.ModelForm):
    """Takes a plain password twice and stores only its hash and salt.

    The password is required when a device is created and optional on edit (empty keeps the current one).
    """

    password1 = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=(
            f"At least {MIN_PASSWORD_LENGTH} characters, and not easy to guess (no repeats, sequences, "
            "keyboard walks or words): a long random string. Leave empty to keep the current password."
        ),
    )
    password2 = forms.CharField(
        label="Password confirmation",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    class Meta:
        model = Device
        fields = ["username", "name", "owner", "is_active"]

    def clean_password1(self) -> str:
        password = self.cleaned_data.get("password1", "")
        if not password and self.instance.pk is None:
            raise ValidationError("A new device needs a password.", code="required")
        if password:
            validate_device_password(password, self.cleaned_data.get("username") or self.instance.username)
        return password

    def clean(self) -> dict:
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2", "")
        if password1 and password1 != password2:
            self.add_error(
                "password2", ValidationError("The two passwords differ.", code="password_mismatch")
            )
        return cleaned

    def save(self, commit: bool = True) -> Device:
        device = super().save(commit=False)
        password = self.cleaned_data.get("password1")
        if password:
            device.set_password(password)
        if commit:
            device.save()
            self.save_m2m()
        return device
