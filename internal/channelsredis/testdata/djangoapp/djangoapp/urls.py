"""HTTP routes: /healthz, which herald bench polls before it connects, and
the two views of herald's connect callback test: /login sets a signed
cookie naming the user (Django's own signing, with SECRET_KEY), and
/herald/connect/ is the app's answer to herald's callback, reading that
cookie as the app would read its session."""
import json

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

SALT = "herald-connect-test"


def healthz(request):
    return HttpResponse("ok\n", content_type="text/plain")


def login(request):
    response = HttpResponse("signed in\n", content_type="text/plain")
    response.set_signed_cookie("user", request.GET["user"], salt=SALT)
    return response


@csrf_exempt
def herald_connect(request):
    """herald forwards the client's cookies and says where it connected:
    /ws/chat/<room>/ joins group chat_<room>, for a signed-in user."""
    if request.method != "POST":
        return JsonResponse({"detail": "POST only"}, status=405)
    user = request.get_signed_cookie("user", default=None, salt=SALT)
    if user is None:
        return JsonResponse({"detail": "sign in first"}, status=403)
    parts = [p for p in json.loads(request.body)["path"].split("/") if p]
    if len(parts) != 3 or parts[:2] != ["ws", "chat"]:
        return JsonResponse({"detail": "no such room"}, status=403)
    return JsonResponse({"user": user, "groups": ["chat_" + parts[2]]})


urlpatterns = [
    path("healthz", healthz),
    path("login", login),
    path("herald/connect/", herald_connect),
]
