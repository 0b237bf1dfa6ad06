"""The account pages of the browser UI: Credits & usage, and API tokens."""

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from avatar_creator import selectors, services
from avatar_creator.errors import NotFound
from avatar_creator.services.accounts import LEGACY_TOKEN_ID
from avatar_creator.ui.charts import usage_charts
from avatar_creator.ui.forms import TokenForm
from avatar_creator.ui.responses import form_status, posted, ui_view

LEDGER_PAGE_SIZE = 25


@ui_view
@require_GET
def credits(request):
    ledger = Paginator(selectors.credit_ledger_for_user(user=request.user).select_related("avatar"), LEDGER_PAGE_SIZE)
    usage = selectors.usage_for_user(user=request.user)
    context = {
        "page": ledger.get_page(request.GET.get("page")),
        "usage": usage,
        "charts": usage_charts(usage["days"]),
        "get_credits_url": settings.AVATAR_GET_CREDITS_URL,
    }
    return render(request, "avatar_creator/credits.html", context)


@ui_view
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = TokenForm(posted(request))
    issued = None
    if request.method == "POST" and form.is_valid():
        issued = services.token_issue(user=request.user, name=form.cleaned_data["name"])
        form = TokenForm()
    context = {
        "form": form,
        "issued": issued,
        "tokens": selectors.api_tokens_for_user(user=request.user),
        "legacy_token": selectors.legacy_token_for_user(user=request.user),
        "legacy_token_id": LEGACY_TOKEN_ID,
    }
    response = render(request, "avatar_creator/tokens.html", context, status=form_status(form))
    # The page may carry a token's secret: never kept by a cache or the browser's history.
    response["Cache-Control"] = "no-store"
    return response


@ui_view
@require_POST
def token_revoke(request, token_id):
    if not services.token_revoke_for_user(user=request.user, token_id=token_id):
        raise NotFound("Token not found.")
    messages.info(request, "The token is revoked: it no longer works.")
    return redirect("tokens")


@ui_view
@require_POST
def tokens_revoke_all(request):
    revoked = services.tokens_revoke_all(user=request.user)
    messages.info(request, f"All your API tokens are revoked ({revoked}). This browser stays signed in.")
    return redirect("tokens")
