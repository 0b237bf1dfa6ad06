from django.conf import settings

from avatar_creator import selectors


def avatar_creator(request):
    """What every page shows: the balance, the save cost and whether previews are offline drawings."""
    user = getattr(request, "user", None)
    context = {
        "save_cost": settings.AVATAR_SAVE_COST,
        "offline_generator": settings.AVATAR_GENERATOR == "offline",
    }
    if user is not None and user.is_authenticated:
        context["credit_balance"] = selectors.credit_balance_for_user(user=user)
    return context
