"""Thin viewsets: validate, call one service, shape the answer."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from avatar_creator import selectors, services
from avatar_creator.api import serializers as s
from avatar_creator.errors import ServiceError


class InvalidCredentials(ServiceError):
    code = "INVALID_CREDENTIALS"
    status = 401
    default_message = "The username or password is not correct."


def validated(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer


class AuthThrottle(SimpleRateThrottle):
    """Login and registration attempts per client address (brute force protection)."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthThrottle]

    @extend_schema(request=s.RegisterInput, responses={201: dict})
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

    @extend_schema(request=s.TokenInput, responses={200: dict})
    def post(self, request):
        data = validated(s.TokenInput, request.data).validated_data
        # authenticate() runs the password hasher even for unknown users, so timing does not reveal them.
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None:
            raise InvalidCredentials()
        return Response({"success": True, "token": services.token_for_user(user=user).key})


class MeView(APIView):
    @extend_schema(responses={200: dict})
    def get(self, request):
        balance = selectors.credit_balance_for_user(user=request.user)
        return Response({"success": True, "user": s.user_data(request.user, balance=balance)})


class ProjectViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9a-fA-F-]{36}"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _project(self, request, pk):
        return selectors.project_get_for_user(user=request.user, project_id=pk)

    @extend_schema(responses={200: s.ProjectOutput(many=True)})
    def list(self, request):
        projects = selectors.project_list_for_user(user=request.user)
        return Response({"success": True, "projects": s.ProjectOutput(projects, many=True).data})

    @extend_schema(request=s.ProjectInput, responses={201: s.ProjectOutput})
    def create(self, request):
        data = validated(s.ProjectInput, request.data).validated_data
        project = services.project_create(
            owner=request.user, name=data["name"], description=data.get("description", "")
        )
        project = self._project(request, project.pk)
        return Response({"success": True, "project": s.ProjectOutput(project).data}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.ProjectDetailOutput})
    def retrieve(self, request, pk=None):
        project = self._project(request, pk)
        body = {"success": True, "project": s.ProjectDetailOutput(project, context={"request": request}).data}
        return Response(body)

    @extend_schema(request=s.ProjectInput(partial=True), responses={200: s.ProjectOutput})
    def partial_update(self, request, pk=None):
        project = self._project(request, pk)
        data = validated(s.ProjectInput, request.data, partial=True).validated_data
        services.project_update(project=project, name=data.get("name"), description=data.get("description"))
        project = self._project(request, pk)
        return Response({"success": True, "project": s.ProjectOutput(project).data})

    @extend_schema(responses={200: dict})
    def destroy(self, request, pk=None):
        project = self._project(request, pk)
        removed = services.project_delete(project=project)
        return Response({"success": True, "message": f"Project deleted with {removed} avatar(s)."})

    @extend_schema(responses={200: s.AvatarOutput(many=True)})
    @action(detail=True, methods=["get"], url_path="avatars")
    def avatars(self, request, pk=None):
        project = self._project(request, pk)
        avatars = selectors.avatar_list_for_project(project=project)
        return Response(
            {"success": True, "avatars": s.AvatarOutput(avatars, many=True, context={"request": request}).data}
        )


class AvatarViewSet(viewsets.ViewSet):
    lookup_value_regex = r"[0-9a-fA-F-]{36}"
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def _avatar(self, request, pk):
        return selectors.avatar_get_for_user(user=request.user, avatar_id=pk)

    @extend_schema(responses={200: s.AvatarOutput})
    def retrieve(self, request, pk=None):
        avatar = self._avatar(request, pk)
        return Response({"success": True, "avatar": s.AvatarOutput(avatar, context={"request": request}).data})

    @extend_schema(request=s.AvatarRenameInput, responses={200: s.AvatarOutput})
    def partial_update(self, request, pk=None):
        avatar = self._avatar(request, pk)
        data = validated(s.AvatarRenameInput, request.data).validated_data
        services.avatar_rename(avatar=avatar, name=data["name"])
        return Response({"success": True, "avatar": s.AvatarOutput(avatar, context={"request": request}).data})

    @extend_schema(responses={200: dict})
    def destroy(self, request, pk=None):
        avatar = self._avatar(request, pk)
        services.avatar_delete(avatar=avatar)
        return Response({"success": True, "message": "Avatar deleted."})
