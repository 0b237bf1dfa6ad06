"""Forms of the browser UI. They validate what a person typed; the services do the writing."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.validators import UnicodeUsernameValidator

from avatar_creator.models import PROJECT_DESCRIPTION_MAX_CHARS
from avatar_creator.prompts import (
    NAME_MAX_CHARS,
    PERSONA_FIELDS,
    PROMPT_MAX_CHARS,
    PROMPT_MIN_CHARS,
    BodyType,
    Persona,
    PersonaField,
)
from avatar_creator.services.accounts import EMAIL_MAX_CHARS

VARIATION_CHOICES = [(1, "1"), (2, "2"), (4, "4")]
PROMPT_EXAMPLE = "Professional Indonesian woman with a modern hijab, warm smile, soft office light"

# The UI's own wording for some choices and placeholders; the values are the API's vocabulary.
CHOICE_LABELS = {"body_type": {BodyType.HALF_BODY: "Half body — portrait", BodyType.FULL_BODY: "Full body"}}
PLACEHOLDERS = {"ethnicity": "e.g. Indonesian"}


def _optional(choices, blank_label: str) -> list[tuple[str, str]]:
    return [("", blank_label), *choices]


class PlainLabels:
    """Labels without Django's trailing colon: they sit above their fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class LoginForm(PlainLabels, AuthenticationForm):
    pass


class SignupForm(PlainLabels, forms.Form):
    username = forms.CharField(
        max_length=150,
        min_length=3,
        validators=[UnicodeUsernameValidator()],
        help_text="3 to 150 characters: letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(
        max_length=EMAIL_MAX_CHARS,
        required=False,
        help_text="Optional.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        max_length=128, strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password_confirm = forms.CharField(
        label="Password again",
        max_length=128,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        password, confirm = cleaned.get("password"), cleaned.get("password_confirm")
        if password and confirm and password != confirm:
            self.add_error("password_confirm", "The two passwords are not the same.")
        return cleaned


class ProjectForm(PlainLabels, forms.Form):
    name = forms.CharField(max_length=NAME_MAX_CHARS, widget=forms.TextInput(attrs={"autofocus": True}))
    description = forms.CharField(
        max_length=PROJECT_DESCRIPTION_MAX_CHARS,
        required=False,
        help_text="Optional: who these avatars are for.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class AvatarRenameForm(PlainLabels, forms.Form):
    name = forms.CharField(max_length=NAME_MAX_CHARS)


def persona_form_field(spec: PersonaField) -> forms.Field:
    """The form field of one persona field: a select (with "Any" when optional) or a short text input."""
    if spec.choices is not None:
        labels = CHOICE_LABELS.get(spec.name, {})
        choices = [(value, labels.get(value, label)) for value, label in spec.choices.choices]
        if spec.default is None:
            return forms.ChoiceField(label=spec.label, choices=[("", "Any"), *choices], required=False)
        return forms.ChoiceField(label=spec.label, choices=choices, initial=spec.default)
    placeholder = PLACEHOLDERS.get(spec.name)
    widget = forms.TextInput(attrs={"placeholder": placeholder} if placeholder else {})
    return forms.CharField(label=spec.label, max_length=spec.max_length, required=False, widget=widget)


class PersonaFormFields:
    def persona_fields(self) -> list:
        """The bound persona fields, in PERSONA_FIELDS order (the template renders them in a loop)."""
        return [self[spec.name] for spec in PERSONA_FIELDS]


def with_persona_fields(form_class):
    """Add the persona fields (prompts.PERSONA_FIELDS) after the declared ones: a new persona field needs no change
    here."""
    form_class.base_fields.update({spec.name: persona_form_field(spec) for spec in PERSONA_FIELDS})
    form_class.declared_fields.update({spec.name: form_class.base_fields[spec.name] for spec in PERSONA_FIELDS})
    return form_class


class PreviewForm(PersonaFormFields, PlainLabels, forms.Form):
    """Phase 1: the description of the person. The persona fields are built from prompts.PERSONA_FIELDS."""

    prompt = forms.CharField(
        label="Describe the person",
        min_length=PROMPT_MIN_CHARS,
        max_length=PROMPT_MAX_CHARS,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": PROMPT_EXAMPLE, "autofocus": True, "data-char-counter": "prompt-count"}
        ),
    )

    def persona(self) -> Persona:
        """The cleaned fields as a Persona: blanks become None."""
        return Persona.from_data(self.cleaned_data)

    @classmethod
    def for_preview(cls, preview) -> "PreviewForm":
        """The form filled with what the user typed for this preview (to try again after an error), or with any
        other starting point that has the persona's fields (a preset, a saved avatar)."""
        persona = Persona.of(preview)
        return cls(initial={"prompt": persona.prompt, **{k: v or "" for k, v in persona.fields().items()}})


class VariationsForm(forms.Form):
    """How many previews one request makes (the API's `count`); shown inside the preview form."""

    count = forms.TypedChoiceField(
        label="Variations",
        choices=VARIATION_CHOICES,
        coerce=int,
        initial=1,
        required=False,
        empty_value=1,
        widget=forms.RadioSelect,
        help_text="Several candidates from one description; save the ones you like.",
    )


# The persona fields follow the prompt, in PERSONA_FIELDS order: a new persona field needs no change here.
with_persona_fields(PreviewForm)


class SaveForm(PlainLabels, forms.Form):
    name = forms.CharField(max_length=NAME_MAX_CHARS, required=False)


class UploadForm(PersonaFormFields, PlainLabels, forms.Form):
    """An own photo: the file (checked by images.py, not by the form), a name and the persona fields."""

    image = forms.FileField(
        label="Photo",
        help_text="JPEG, PNG or WebP, up to 10 MB and 4096 pixels a side.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp", "data-photo-input": ""}),
    )
    name = forms.CharField(max_length=NAME_MAX_CHARS)

    def persona(self) -> Persona:
        return Persona.from_data(self.cleaned_data, prompt="")


with_persona_fields(UploadForm)


class TokenForm(PlainLabels, forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Token name",
        help_text="Which device or script it is for, so you can tell your tokens apart.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. Laptop script", "autocomplete": "off"}),
    )
