"""Who may open a board page or press its buttons: the API's own role tables (each board view
names the API action it shows or does) and its own errors, answered as an HTML page."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import render, resolve_url
from django_htmx.http import HttpResponseClientRedirect

from kolejka.server.grid.errors import ApiError, Forbidden
from kolejka.server.grid.models import User
from kolejka.server.grid.permissions import Roles

View = Callable[..., HttpResponseBase]


def user_of(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def page(roles: Roles) -> Callable[[View], View]:
    """A board view for users of `roles` (an API action's, such as ``TaskViewSet.roles["list"]``):
    the sign-in page for anyone signed out (a live part's poll: the whole page, through htmx's
    ``HX-Redirect``), 403 for another role; the API's errors that the view
    raises (404 for a task the user may not see, 409, ...) as an error page of their status."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            user = request.user
            if not isinstance(user, User) or not user.is_active:
                if request.headers.get("HX-Request"):
                    # A live part's poll whose session ended: the whole page goes to the
                    # sign-in, instead of the sign-in page inside the part.
                    page_url = request.headers.get("HX-Current-URL") or request.get_full_path()
                    return HttpResponseClientRedirect(
                        resolve_url(settings.LOGIN_URL) + "?" + urlencode({"next": page_url})
                    )
                return redirect_to_login(request.get_full_path())
            try:
                if user.role not in roles:
                    raise Forbidden(f"this needs the role {' or '.join(sorted(roles))}")
                return view(request, *args, **kwargs)
            except ApiError as error:
                context = {"status": error.status_code, "detail": str(error.detail)}
                return render(request, "board/error.html", context, status=error.status_code)

        return wrapped

    return decorate
