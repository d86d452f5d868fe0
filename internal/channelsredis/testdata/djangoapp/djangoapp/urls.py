"""HTTP routes: /healthz, which herald bench polls before it connects."""
from django.http import HttpResponse
from django.urls import path


def healthz(request):
    return HttpResponse("ok\n", content_type="text/plain")


urlpatterns = [path("healthz", healthz)]
