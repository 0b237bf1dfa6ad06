"""Forms of the browser UI. They validate what a person typed; the services do the writing."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.validators import UnicodeUsernameValidator

from avatar_creator.models import AgeRange, BodyType, Gender, Preview, Style

PROMPT_EXAMPLE = "Professional Indonesian woman with a modern hijab, warm smile, soft office light"
PROMPT_MIN, PROMPT_MAX = 10, 500

# The wording the product uses for body type; the values are the API's vocabulary.
BODY_TYPE_CHOICES = [(BodyType.HALF_BODY, "Half body — portrait"), (BodyType.FULL_BODY, "Full body")]


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
        required=False, help_text="Optional.", widget=forms.EmailInput(attrs={"autocomplete": "email"})
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
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"autofocus": True}))
    description = forms.CharField(
        max_length=500,
        required=False,
        help_text="Optional: who these avatars are for.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class AvatarRenameForm(PlainLabels, forms.Form):
    name = forms.CharField(max_length=100)


class PreviewForm(PlainLabels, forms.Form):
    """Phase 1: the description of the person. Field names follow the services' keyword arguments."""

    prompt = forms.CharField(
        label="Describe the person",
        min_length=PROMPT_MIN,
        max_length=PROMPT_MAX,
        widget=forms.Textarea(
            attrs={"rows": 4, "placeholder": PROMPT_EXAMPLE, "autofocus": True, "data-char-counter": "prompt-count"}
        ),
    )
    gender = forms.ChoiceField(choices=_optional(Gender.choices, "Any"), required=False)
    age_range = forms.ChoiceField(label="Age range", choices=_optional(AgeRange.choices, "Any"), required=False)
    style = forms.ChoiceField(choices=_optional(Style.choices, "Any"), required=False)
    ethnicity = forms.CharField(
        max_length=50, required=False, widget=forms.TextInput(attrs={"placeholder": "e.g. Indonesian"})
    )
    body_type = forms.ChoiceField(label="Body type", choices=BODY_TYPE_CHOICES, initial=BodyType.HALF_BODY)

    def persona(self) -> dict:
        """The cleaned fields as preview_request() takes them: blanks become None."""
        data = self.cleaned_data
        return {
            "prompt": data["prompt"],
            "gender": data["gender"] or None,
            "age_range": data["age_range"] or None,
            "style": data["style"] or None,
            "ethnicity": data["ethnicity"] or None,
            "body_type": data["body_type"],
        }

    @classmethod
    def for_preview(cls, preview: Preview) -> "PreviewForm":
        """The form filled with what the user typed for this preview (to try again after an error)."""
        return cls(
            initial={
                "prompt": preview.prompt,
                "gender": preview.gender or "",
                "age_range": preview.age_range or "",
                "style": preview.style or "",
                "ethnicity": preview.ethnicity or "",
                "body_type": preview.body_type,
            }
        )


class SaveForm(PlainLabels, forms.Form):
    name = forms.CharField(max_length=100, required=False)
