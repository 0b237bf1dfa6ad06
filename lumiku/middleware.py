"""The shape of the project's own middleware: one class that runs under WSGI and ASGI alike.

Django runs a sync-only middleware under ASGI by handing every request to a thread and back; the event stream and
the waiting requests must not pay that. A subclass writes `call` (sync) and `acall` (async); the server's mode
picks one when the middleware chain is built.
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
