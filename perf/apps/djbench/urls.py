from django.http import JsonResponse
from django.shortcuts import render
from django.urls import path

ITEMS = list(range(10))


def hello(request, name):
    return render(request, "hello.html", {"name": name, "items": ITEMS})


def json_endpoint(request):
    return JsonResponse({"message": "Hello, World!", "id": 1, "ok": True, "tags": ["a", "b"]})


urlpatterns = [path("hello/<str:name>", hello), path("json", json_endpoint)]
