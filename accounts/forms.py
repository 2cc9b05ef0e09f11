"""Browser forms."""

from django.contrib.auth.forms import UserCreationForm


class RegisterForm(UserCreationForm):
    """Username, optional email, password twice; Django's password validators apply."""

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")
