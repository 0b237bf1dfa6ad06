"""The shape of the project's own middleware: one class that runs under WSGI and ASGI alike.

A subclass writes `call` (sync) and `acall` (async); the handler's mode picks one when the middleware chain is built.
Production runs Django's WSGI handler even under ASGI (lumiku/asgi.py), so `call` is what serves there; `acall`
keeps Django's own ASGI handler (`django.core.asgi`, the async test client) from handing these to a thread and back.
"""

from abc import ABC, abstractmethod

from asgiref.sync import iscoroutinefunction, markcoroutinefunction


class DualModeMiddleware(ABC):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        return self.acall(request) if self.is_async else self.call(request)

    @abstractmethod
    def call(self, request): ...

    @abstractmethod
    async def acall(self, request): ...
