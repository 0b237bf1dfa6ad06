"""Thin viewsets: validate, call one service, shape the answer."""

import json

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import FileResponse, HttpResponse
from django.urls import get_script_prefix, reverse
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.serializers import CharField, IntegerField
from rest_framework.views import APIView

from avatar_creator import answers, events, files, selectors, services, webhooks
from avatar_creator.api import serializers as s
from avatar_creator.api.authentication import authenticate_with_preview, is_api_token
from avatar_creator.api.parsers import BoundedMultiPartParser
from avatar_creator.api.schema import envelope
from avatar_creator.errors import InvalidCredentials, NotFound
from avatar_creator.models import ACTIVE_PREVIEW_STATUSES, PreviewStatus
from avatar_creator.throttling import AuthThrottle

PROJECT_RESPONSE = envelope("ProjectResponse", project=s.ProjectOutput())
AVATAR_RESPONSE = envelope("AvatarResponse", avatar=s.AvatarOutput())
SAVED_RESPONSE = envelope("AvatarSavedResponse", avatar=s.AvatarOutput(), message=CharField())
PREVIEW_RESPONSE = envelope("PreviewResponse", preview=s.PreviewOutput())
MESSAGE_RESPONSE = envelope("MessageResponse", message=CharField())
PREFER_HEADER = OpenApiParameter(
    "Prefer", str, OpenApiParameter.HEADER, description="`respond-async`: answer 202 at once and poll the preview"
)


def validated(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer


def validated_query(serializer_class, request) -> dict:
    """The query string, validated. A plain dict, not the QueryDict: DRF reads a QueryDict like an HTML form,
    where `?status=` would mean "not given" instead of the invalid value it is."""
    return validated(serializer_class, request.query_params.dict()).validated_data


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]

    @extend_schema(
        request=s.RegisterInput, responses={201: envelope("RegisterResponse", token=CharField(), user=s.UserOutput())}
    )
    def post(self, request):
        data = validated(s.RegisterInput, request.data).validated_data
        user, token = services.user_register(username=data["username"], password=data["password"], email=data["email"])
        balance = selectors.credit_balance_for_user(user=user)
        body = {"success": True, "token": token.key, "user": s.user_data(user, balance=balance)}
        return Response(body, status=status.HTTP_201_CREATED)


class TokenView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]

    @extend_schema(request=s.TokenInput, responses={200: envelope("TokenResponse", token=CharField())})
    def post(self, request):
        data = validated(s.TokenInput, request.data).validated_data
        # authenticate() runs the password hasher even for unknown users, so timing does not reveal them.
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None:
            raise InvalidCredentials()
        issued = services.token_issue(user=user, name=data["name"] or _device_name(request))
        return Response({"success": True, "token": issued.key})


def _device_name(request) -> str:
    return request.headers.get("User-Agent", "")[:100] or "API token"


class LogoutView(APIView):
    """Revoke the token this request is made with (a session is not a token: nothing to revoke)."""

    @extend_schema(request=None, responses={200: MESSAGE_RESPONSE})
    def post(self, request):
        if is_api_token(request.auth):
            services.token_revoke(token=request.auth)
        return Response({"success": True, "message": "Signed out: this token no longer works."})


class LogoutAllView(APIView):
    @extend_schema(request=None, responses={200: MESSAGE_RESPONSE})
    def post(self, request):
        revoked = services.tokens_revoke_all(user=request.user)
        return Response({"success": True, "message": f"Signed out everywhere: {revoked} token(s) revoked."})


class MeCreditsView(APIView):
    @extend_schema(
        parameters=[s.PageQuery],
        responses={
            200: envelope(
                "CreditsResponse",
                balance=IntegerField(),
                entries=s.CreditEntryOutput(many=True),
                next=CharField(allow_null=True),
            )
        },
    )
    def get(self, request):
        query = validated_query(s.PageQuery, request)
        entries, following = page_of(request, selectors.credit_ledger_for_user(user=request.user), query)
        balance = selectors.credit_balance_for_user(user=request.user)
        body = {"success": True, "balance": balance, "entries": s.CreditEntryOutput(entries, many=True).data}
        return Response({**body, "next": following})


class MeUsageView(APIView):
    @extend_schema(responses={200: envelope("UsageResponse", usage=s.UsageOutput())})
    def get(self, request):
        return Response({"success": True, "usage": s.UsageOutput(selectors.usage_for_user(user=request.user)).data})


def page_of(request, items, query) -> tuple[list, str | None]:
    """One page of `items` by the validated `limit` and `offset` of a PageQuery, and the URL of the next (or None)."""
    offset, limit = query["offset"], query["limit"]
    page = list(items[offset : offset + limit + 1])
    following = None
    if len(page) > limit:
        params = request.query_params.copy()
        params["offset"] = str(offset + limit)
        following = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
    return page[:limit], following


class WebhookSecretView(APIView):
    @extend_schema(responses={200: envelope("WebhookSecretResponse", secret=CharField())})
    def get(self, request):
        return Response({"success": True, "secret": webhooks.webhook_secret_for_user(user=request.user)})


class MeView(APIView):
    @extend_schema(responses={200: envelope("MeResponse", user=s.UserOutput())})
    def get(self, request):
        balance = selectors.credit_balance_for_user(user=request.user)
        return Response({"success": True, "user": s.user_data(request.user, balance=balance)})


class ProjectViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9a-fA-F-]{36}"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _project(self, request, pk):
        return selectors.project_get_for_user(user=request.user, project_id=pk)

    @extend_schema(responses={200: envelope("ProjectListResponse", projects=s.ProjectOutput(many=True))})
    def list(self, request):
        projects = selectors.project_list_for_user(user=request.user)
        return Response({"success": True, "projects": s.ProjectOutput(projects, many=True).data})

    @extend_schema(request=s.ProjectInput, responses={201: PROJECT_RESPONSE})
    def create(self, request):
        data = validated(s.ProjectInput, request.data).validated_data
        project = services.project_create(
            owner=request.user, name=data["name"], description=data.get("description", "")
        )
        project = self._project(request, project.pk)
        return Response({"success": True, "project": s.ProjectOutput(project).data}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: envelope("ProjectDetailResponse", project=s.ProjectDetailOutput())})
    def retrieve(self, request, pk=None):
        project = self._project(request, pk)
        body = {"success": True, "project": s.ProjectDetailOutput(project, context={"request": request}).data}
        return Response(body)

    @extend_schema(request=s.ProjectInput(partial=True), responses={200: PROJECT_RESPONSE})
    def partial_update(self, request, pk=None):
        project = self._project(request, pk)
        data = validated(s.ProjectInput, request.data, partial=True).validated_data
        services.project_update(project=project, name=data.get("name"), description=data.get("description"))
        project = self._project(request, pk)
        return Response({"success": True, "project": s.ProjectOutput(project).data})

    @extend_schema(responses={200: MESSAGE_RESPONSE})
    def destroy(self, request, pk=None):
        project = self._project(request, pk)
        removed = services.project_delete(project=project)
        return Response({"success": True, "message": f"Project deleted with {removed} avatar(s)."})

    @extend_schema(responses={200: envelope("AvatarListResponse", avatars=s.AvatarOutput(many=True))})
    @action(detail=True, methods=["get"], url_path="avatars")
    def avatars(self, request, pk=None):
        def build() -> bytes:
            project = selectors.project_owned_by(user=request.user, project_id=pk)
            avatars = selectors.avatar_list_for_project(project=project)
            return _JSON_RENDERER.render(s.AvatarOutput(avatars, many=True, context={"request": request}).data)

        # Kept whole, as the JSON of the list, between changes of the project's avatars (answers.py); the links are
        # absolute, hence the origin.
        origin = request.build_absolute_uri(get_script_prefix())
        avatars = answers.avatar_list(project_id=pk, owner_id=request.user.pk, origin=origin, build=build)
        if _takes_plain_json(request):
            # Written into the envelope as DRF's renderer writes it (compact), without decoding the list and encoding
            # it again: on a kept list, that was a quarter of the route's CPU (bench/README.md, a ninth look).
            return HttpResponse(b'{"success":true,"avatars":' + avatars + b"}", content_type=_JSON_RENDERER.media_type)
        return Response({"success": True, "avatars": json.loads(avatars)})

    @extend_schema(
        request=s.GeneratePreviewInput,
        parameters=[PREFER_HEADER],
        responses={
            200: envelope(
                "PreviewGeneratedResponse", preview=s.PreviewWithImagesOutput(),
                previews=s.PreviewWithImagesOutput(many=True), message=CharField(),
            ),
            202: envelope("PreviewQueuedResponse", preview=s.PreviewOutput(), previews=s.PreviewOutput(many=True)),
        },
    )  # fmt: skip
    @action(detail=True, methods=["post"], url_path="avatars/generate-preview", url_name="generate-preview")
    def generate_preview(self, request, pk=None):
        project = selectors.project_owned_by(user=request.user, project_id=pk)
        serializer = validated(s.GeneratePreviewInput, request.data, context={"user": request.user})
        data = serializer.validated_data
        previews = services.previews_request(
            user=request.user, project=project, persona=serializer.persona(), seed=data.get("seed"),
            count=data["count"], webhook=data.get("webhook") or "",
        )  # fmt: skip
        if wants_async(request.headers.get("Prefer", "")):
            return preview_accepted(request, previews)
        # Under ASGI this waiting call never gets here: api/waiting.py asks for the 202 above, waits on the event
        # bus without a thread, then answers with waited_answer as below.
        events.previews_wait(previews=previews, timeout=settings.AVATAR_SYNC_WAIT)
        return Response(waited_answer(request, previews))

    @extend_schema(
        parameters=[s.PreviewListQuery],
        responses={
            200: envelope("PreviewListResponse", previews=s.PreviewOutput(many=True), next=CharField(allow_null=True))
        },
    )
    @action(detail=True, methods=["get"], url_path="previews", url_name="previews")
    def previews(self, request, pk=None):
        project = self._project(request, pk)
        query = validated_query(s.PreviewListQuery, request)
        previews = selectors.preview_list_for_project(user=request.user, project=project, status=query.get("status"))
        page, following = page_of(request, previews, query)
        body = {"success": True, "previews": [preview_data(request, p) for p in page], "next": following}
        return Response(body)

    @extend_schema(
        request={"multipart/form-data": s.UploadInput},
        responses={201: envelope("AvatarUploadedResponse", avatar=s.AvatarOutput(), message=CharField())},
    )
    @action(
        detail=True, methods=["post"], url_path="avatars/upload", url_name="upload",
        parser_classes=[BoundedMultiPartParser],
    )  # fmt: skip
    def upload(self, request, pk=None):
        project = self._project(request, pk)
        serializer = validated(s.UploadInput, request.data)
        data = serializer.validated_data
        avatar = services.avatar_upload(
            user=request.user, project=project, name=data["name"], image=data["image"],
            persona=serializer.persona(prompt_field="generationPrompt"),
        )  # fmt: skip
        body = {
            "success": True,
            "avatar": s.AvatarOutput(avatar, context={"request": request}).data,
            "message": "Photo uploaded",
        }
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="SavePreviewRequest",
            serializers=[s.SaveByPreviewInput, s.SaveLegacyInput],
            resource_type_field_name=None,
        ),
        responses={201: SAVED_RESPONSE, 200: SAVED_RESPONSE},
    )
    @action(detail=True, methods=["post"], url_path="avatars/save-preview", url_name="save-preview")
    def save_preview(self, request, pk=None):
        project = self._project(request, pk)
        if isinstance(request.data, dict) and "previewId" in request.data:
            data = validated(s.SaveByPreviewInput, request.data).validated_data
            avatar, created = services.preview_save(
                user=request.user, project=project, preview_id=data["previewId"], name=data.get("name")
            )
        else:
            serializer = validated(s.SaveLegacyInput, request.data)
            data = serializer.validated_data
            avatar = services.avatar_save_upload(
                user=request.user,
                project=project,
                name=data["name"],
                image_base64=data["imageBase64"],
                persona=serializer.persona(prompt_field="generationPrompt"),
            )
            created = True
        body = {
            "success": True,
            "avatar": s.AvatarOutput(avatar, context={"request": request}).data,
            "message": "Avatar saved successfully" if created else "Avatar already saved",
        }
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        request=s.LegacyGenerateInput,
        parameters=[PREFER_HEADER],
        responses={
            201: envelope("GenerateResponse", avatars=s.AvatarOutput(many=True), message=CharField()),
            202: envelope("GenerateQueuedResponse", previews=s.PreviewOutput(many=True), message=CharField()),
        },
    )
    @action(detail=True, methods=["post"], url_path="avatars/generate", url_name="generate")
    def generate(self, request, pk=None):
        project = self._project(request, pk)
        serializer = validated(s.LegacyGenerateInput, request.data)
        data = serializer.validated_data
        asked = {"user": request.user, "project": project, "name": data["name"], "count": data["count"],
                 "persona": serializer.persona(), "seed": data.get("seed")}  # fmt: skip
        if wants_async(request.headers.get("Prefer", "")):
            previews, _ = services.avatars_generate(**asked, wait=False)
            body = {
                "success": True,
                "previews": [preview_data(request, p) for p in previews],
                "message": "Previews queued. Poll each one, then save the ones you like.",
            }
            response = Response(body, status=status.HTTP_202_ACCEPTED)
            response["Preference-Applied"] = "respond-async"
            return response
        handoff = request.META.get("asgi.scope", {}).get(LEGACY_WAIT_HANDOFF)
        if handoff is not None:
            # Under ASGI the waiting route (waiting.py) asked: the credits held and the previews queued, it waits for
            # them without a thread and finishes the generation itself. Nothing of this answer reaches the client.
            handoff["generation"] = services.avatars_generate_begin(**asked)
            return Response(status=status.HTTP_202_ACCEPTED)
        previews, avatars = services.avatars_generate(**asked, wait=True)
        return Response(legacy_generated(request, previews, avatars), status=status.HTTP_201_CREATED)


# The scope key by which the ASGI waiting route hands the legacy generate's wait to itself: a dict the view fills with
# the HeldGeneration. A scope key, not a header: no client can send it.
LEGACY_WAIT_HANDOFF = "lumiku.legacy_wait"


def legacy_generated(request, previews, avatars) -> dict:
    """The legacy waiting generate's 201 body: the avatars saved (and charged) out of its previews."""
    return {
        "success": True,
        "avatars": s.AvatarOutput(avatars, many=True, context={"request": request}).data,
        "message": f"{len(avatars)} of {len(previews)} avatar(s) generated and saved.",
    }


MAX_PREFER_WAIT = 60


def preferred_wait(prefer: str) -> int | None:
    """RFC 7240 `Prefer: wait=N`, from the header's value: seconds to hold the answer, within 1-60; None when
    absent or not a number."""
    for token in prefer.split(","):
        name, _, value = token.split(";")[0].strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return min(max(int(value.strip()), 1), MAX_PREFER_WAIT)
    return None


def wants_async(prefer: str) -> bool:
    """RFC 7240: `Prefer: respond-async` (possibly among other preferences), from the header's value."""
    return any(token.split(";")[0].strip().lower() == "respond-async" for token in prefer.split(","))


def waited_answer(request, previews) -> dict:
    """The waiting generate-preview's 200 body once its wait is over; raises the error a client gets instead (a
    failed preview's, or GENERATION_TIMEOUT with `Location` while one is still working)."""
    unfinished = [preview for preview in previews if preview.status in ACTIVE_PREVIEW_STATUSES]
    if unfinished:
        error = services.preview_error(preview=unfinished[0])
        # The wait ran out but the job goes on: say where to follow it.
        error.headers["Location"] = reverse("api:preview-detail", kwargs={"pk": unfinished[0].pk})
        raise error
    if not any(preview.status == PreviewStatus.SUCCEEDED for preview in previews):
        raise services.preview_error(preview=previews[0])
    batch = [preview_data(request, preview, include_base64=True) for preview in previews]  # each encoded once
    return {
        "success": True,
        "preview": batch[0],
        "previews": batch,
        "message": "Preview generated successfully. Review and save if you like it.",
    }


def preview_data(request, preview, *, include_base64: bool = False) -> dict:
    return s.preview_representation(preview, request=request, include_base64=include_base64)


def preview_accepted(request, previews) -> Response:
    """The 202 of a generate-preview: the batch as `previews`, its first as `preview` (each written out once)."""
    batch = [preview_data(request, p) for p in previews]
    body = {"success": True, "preview": batch[0], "previews": batch}
    response = Response(body, status=status.HTTP_202_ACCEPTED)
    response["Location"] = reverse("api:preview-detail", kwargs={"pk": previews[0].pk})
    response["Preference-Applied"] = "respond-async"
    return response


class PreviewViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9a-fA-F-]{36}"
    http_method_names = ["get", "post", "head", "options"]

    def dispatch(self, request, *args, **kwargs):
        # The status poll, the API's hottest call: a GET with a Bearer token that takes JSON is authenticated and read
        # in one query (authenticate_with_preview) and answered here, without DRF's request wrapper, negotiation and
        # response (bench/README.md, issue 13). What this does not answer (another token or user, a session, HTML or
        # `?format=`, HEAD) goes the usual way: DRF's authenticators, then the read.
        if request.method == "GET" and self.action_map.get("get") == "retrieve" and _takes_plain_json(request):
            preview = authenticate_with_preview(request, kwargs.get("pk"))
            if preview is not None:
                body, headers = self._status_answer(request, preview)
                response = HttpResponse(_JSON_RENDERER.render(body), content_type=_JSON_RENDERER.media_type)
                for name, value in {**self.default_response_headers, **headers}.items():
                    response[name] = value
                return response
        return super().dispatch(request, *args, **kwargs)

    def _preview(self, request, pk):
        return selectors.preview_get_for_user(user=request.user, preview_id=pk)

    @extend_schema(
        parameters=[
            OpenApiParameter("include", str, description="`base64` adds imageBase64 and thumbnailBase64"),
            OpenApiParameter(
                "Prefer", str, OpenApiParameter.HEADER,
                description="`wait=N` (1-60): hold the answer until the preview is finished or N seconds passed",
            ),
        ],
        responses={200: envelope("PreviewDetailResponse", preview=s.PreviewWithImagesOutput())},
    )  # fmt: skip
    def retrieve(self, request, pk=None):
        body, headers = self._status_answer(request, self._preview(request, pk))
        return Response(body, headers=headers)

    @staticmethod
    def _status_answer(request, preview) -> tuple[dict, dict]:
        """The status read's body and headers, for a request of either kind (Django's or DRF's)."""
        include = request.GET.get("include", "")
        include_base64 = "base64" in [part.strip() for part in include.split(",")]
        wait = preferred_wait(request.headers.get("Prefer", ""))
        # Under ASGI api/waiting.py holds this wait without a thread and asks without `wait`; here (WSGI) the view
        # holds it.
        if wait is not None and not preview.is_finished:
            events.preview_wait(preview=preview, timeout=wait)
        body = {"success": True, "preview": preview_data(request, preview, include_base64=include_base64)}
        return body, ({} if wait is None else {"Preference-Applied": f"wait={wait}"})

    @extend_schema(request=None, responses={200: PREVIEW_RESPONSE})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        preview = services.preview_cancel(preview=self._preview(request, pk))
        return Response({"success": True, "preview": preview_data(request, preview)})

    @extend_schema(responses={(200, "image/*"): bytes})
    @action(detail=True, methods=["get"], url_path="image", url_name="image")
    def image(self, request, pk=None):
        return self._file(self._preview(request, pk), "image")

    @extend_schema(responses={(200, "image/jpeg"): bytes})
    @action(detail=True, methods=["get"], url_path="thumbnail", url_name="thumbnail")
    def thumbnail(self, request, pk=None):
        return self._file(self._preview(request, pk), "thumbnail")

    def _file(self, preview, name: str):
        field = getattr(preview, name)
        if preview.effective_status == PreviewStatus.EXPIRED:
            # Past its time to live: gone for its owner at once, whether or not the purge has removed the file yet.
            raise NotFound("This preview has expired; its image is no longer available.")
        if not field:
            raise NotFound("This preview has no image (yet, or any more).")
        try:
            handle = field.storage.open(field.name, "rb")
        except OSError:
            raise NotFound("This preview's image is no longer available.") from None
        response = FileResponse(handle, content_type=files.content_type_for(field.name))
        # Private to its owner: no shared caches.
        response["Cache-Control"] = "private, max-age=3600"
        response["X-Content-Type-Options"] = "nosniff"
        return response


_JSON_RENDERER = JSONRenderer()


def _takes_plain_json(request) -> bool:
    """Whether DRF would answer this request in plain JSON whatever its content negotiation: no Accept, or one that
    names JSON or anything, and no `?format=`."""
    return request.headers.get("Accept", "*/*") in ("*/*", "application/json") and "format" not in request.GET


class PresetListView(APIView):
    @extend_schema(responses={200: envelope("PresetListResponse", presets=s.PresetOutput(many=True))})
    def get(self, request):
        presets = s.PresetOutput(selectors.preset_list(), many=True, context={"request": request}).data
        return Response({"success": True, "presets": presets})


class AvatarViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9a-fA-F-]{36}"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def _avatar(self, request, pk):
        return selectors.avatar_get_for_user(user=request.user, avatar_id=pk)

    @extend_schema(responses={200: AVATAR_RESPONSE})
    def retrieve(self, request, pk=None):
        avatar = self._avatar(request, pk)
        return Response({"success": True, "avatar": s.AvatarOutput(avatar, context={"request": request}).data})

    @extend_schema(request=s.AvatarRenameInput, responses={200: AVATAR_RESPONSE})
    def partial_update(self, request, pk=None):
        avatar = self._avatar(request, pk)
        data = validated(s.AvatarRenameInput, request.data).validated_data
        services.avatar_rename(avatar=avatar, name=data["name"])
        return Response({"success": True, "avatar": s.AvatarOutput(avatar, context={"request": request}).data})

    @extend_schema(responses={200: MESSAGE_RESPONSE})
    def destroy(self, request, pk=None):
        avatar = self._avatar(request, pk)
        services.avatar_delete(avatar=avatar)
        return Response({"success": True, "message": "Avatar deleted."})
