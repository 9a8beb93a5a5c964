from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt


def api(request):
    return JsonResponse({"framework": "django", "method": request.method, "path": request.path,
                         "query": request.GET.dict()})


@csrf_exempt
def echo(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    return JsonResponse({"body": request.body.decode("utf-8", "replace"), "form": request.POST.dict()})


def hello(request, name):
    return render(request, "hello.html", {"name": name, "items": ["one", "two", "three"]})
